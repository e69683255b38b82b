use crate::wit::switchboard::plugin::types as raw;
use serde::de::DeserializeOwned;
use std::fmt;

/// What a host function refused, and why. Match on it to handle a case
/// (e.g. `AccessDenied` when sending from a number that is not yours), or
/// let `?` turn it into an [`Error`] that fails the invocation.
pub type HostError = raw::Error;

pub type DeliveryStatus = raw::DeliveryStatus;

/// An error that fails the invocation: nothing it did is committed, and
/// the event is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        Error(match e {
            HostError::AccessDenied(m) => format!("access denied: {m}"),
            HostError::QuotaExceeded(m) => format!("quota exceeded: {m}"),
            HostError::InvalidArgument(m) => format!("invalid argument: {m}"),
            HostError::OptedOut(m) => format!("recipient opted out: {m}"),
            HostError::Internal(m) => format!("host error: {m}"),
        })
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(format!("JSON: {e}"))
    }
}

impl From<String> for Error {
    fn from(e: String) -> Self {
        Error(e)
    }
}

impl From<&str> for Error {
    fn from(e: &str) -> Self {
        Error(e.to_string())
    }
}

/// An SMS received on one of the tenant's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub id: String,
    /// The sender, E.164.
    pub from: String,
    /// The tenant's number it arrived on, E.164.
    pub to: String,
    pub body: String,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
}

impl From<raw::InboundMessage> for InboundMessage {
    fn from(m: raw::InboundMessage) -> Self {
        InboundMessage { id: m.id, from: m.from, to: m.to, body: m.body, received_at: m.received_at }
    }
}

impl InboundMessage {
    /// The first word, upper-cased, without trailing punctuation: what the
    /// router matched.
    pub fn keyword(&self) -> String {
        let word = self.body.split_whitespace().next().unwrap_or("");
        word.trim_end_matches(|c: char| c.is_ascii_punctuation()).to_uppercase()
    }

    /// The text after the keyword.
    pub fn rest(&self) -> &str {
        let body = self.body.trim_start();
        body.split_once(char::is_whitespace).map_or("", |(_, rest)| rest.trim())
    }

    /// Answers the sender from the number the message arrived on.
    pub fn reply(&self, body: impl Into<String>) -> Result<String, HostError> {
        crate::messaging::Sms::new(&self.from, body).from(&self.to).send()
    }
}

/// A business event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    /// The event's JSON document.
    pub payload: String,
}

impl Event {
    /// The payload deserialized.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.payload).map_err(|e| Error(format!("event {}: {e}", self.name)))
    }
}

/// A change of state of a message this plugin sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub message_id: String,
    pub reference: Option<String>,
    pub to: String,
    pub status: DeliveryStatus,
    pub error_code: Option<String>,
    pub at: i64,
}

impl From<raw::DeliveryReport> for DeliveryReport {
    fn from(r: raw::DeliveryReport) -> Self {
        DeliveryReport {
            message_id: r.message_id,
            reference: r.reference,
            to: r.to,
            status: r.status,
            error_code: r.error_code,
            at: r.at,
        }
    }
}
