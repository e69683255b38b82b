//! Sending SMS. Messages are queued when the handler returns `Ok`.

use crate::host::messaging as raw;
use crate::types::HostError;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Sms {
    to: String,
    from: Option<String>,
    body: String,
    reference: Option<String>,
    schedule_at: Option<i64>,
}

impl Sms {
    /// A message to `to` (E.164, or national in the tenant's region).
    pub fn new(to: impl Into<String>, body: impl Into<String>) -> Self {
        Sms { to: to.into(), from: None, body: body.into(), reference: None, schedule_at: None }
    }

    /// Sends from this number or sender ID (default: the tenant's default
    /// number). It must be the tenant's own.
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// An opaque reference echoed in delivery reports.
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Sends at `at_ms` (milliseconds since the Unix epoch) instead of now.
    pub fn schedule_at(mut self, at_ms: i64) -> Self {
        self.schedule_at = Some(at_ms);
        self
    }

    /// Queues the message; returns its id.
    pub fn send(self) -> Result<String, HostError> {
        raw::send(&self.into())
    }
}

impl From<Sms> for raw::OutboundMessage {
    fn from(s: Sms) -> Self {
        raw::OutboundMessage {
            to: s.to,
            from: s.from,
            body: s.body,
            reference: s.reference,
            schedule_at: s.schedule_at,
        }
    }
}

/// Sends `body` to `to` from the tenant's default number.
pub fn send(to: impl Into<String>, body: impl Into<String>) -> Result<String, HostError> {
    Sms::new(to, body).send()
}

/// Queues several messages, all or none.
pub fn send_many(messages: impl IntoIterator<Item = Sms>) -> Result<Vec<String>, HostError> {
    let raw: Vec<raw::OutboundMessage> = messages.into_iter().map(Into::into).collect();
    raw::send_many(&raw)
}
