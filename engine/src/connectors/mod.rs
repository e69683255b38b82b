//! Carrier connectors behind one trait, listed in one table ([`build`]).
//!
//! A connector hands one message to its carrier and says what became of
//! the attempt: accepted (with the carrier's ids, one per part when the
//! carrier splits), a transient failure worth retrying, or a permanent one.
//! Connectors that receive over HTTP also parse their carrier's webhooks
//! ([`Connector::webhook`]) into inbound messages and delivery reports;
//! session connectors (SMPP) push them on the sinks they are built with.
//!
//! What surrounds every connector the same way (rate limit, concurrency,
//! circuit breaker, retries, failover) lives in [`gate`] and the
//! dispatcher, not in the connectors.

pub mod gate;
pub mod http;
pub mod simulator;
pub mod smpp;
pub mod twilio;
pub mod vonage;

use crate::clock::Clock;
use crate::sms::encoding::Encoding;
use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// The name of the connector that test-mode messages always go to.
pub const SANDBOX_CONNECTOR: &str = "sandbox";

/// An SMS as a connector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub from: String,
    pub to: String,
    pub body: String,
    pub connector: String,
    pub provider_id: Option<String>,
}

/// A channel whose items count as pending until the receiver has
/// committed them (so shutdown can wait for them).
pub struct Tracked<T> {
    tx: mpsc::UnboundedSender<T>,
    pending: Arc<AtomicUsize>,
}

impl<T> Clone for Tracked<T> {
    fn clone(&self) -> Self {
        Tracked { tx: self.tx.clone(), pending: self.pending.clone() }
    }
}

impl<T> Tracked<T> {
    pub fn new() -> (Self, TrackedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        (Tracked { tx, pending: pending.clone() }, TrackedReceiver { rx, pending })
    }

    pub fn send(&self, item: T) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(item).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

pub struct TrackedReceiver<T> {
    rx: mpsc::UnboundedReceiver<T>,
    pending: Arc<AtomicUsize>,
}

impl<T> TrackedReceiver<T> {
    /// Waits for at least one item and takes up to `limit`.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// Marks `n` received items as committed.
    pub fn committed(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::SeqCst);
    }
}

/// A message as a connector sends it.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub message_id: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub reference: Option<String>,
    pub encoding: Encoding,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The carrier's ids: one, or one per part when the carrier (or the
    /// connector) split the message.
    pub provider_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Worth retrying, here or on another connector (timeouts, 5xx, lost
    /// connections).
    #[error("transient carrier failure: {message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// The carrier asks us to slow down (HTTP 429, SMPP ESME_RTHROTTLED).
    #[error("carrier throttled the request: {message}")]
    Throttled { message: String, retry_after: Option<Duration> },
    /// Retrying cannot help (invalid number, rejected credentials...).
    /// `code` is ours: the carrier's code with the connector's prefix.
    #[error("carrier refused the message ({code}): {message}")]
    Permanent { code: String, message: String },
}

impl ConnectorError {
    pub fn transient(message: impl Into<String>) -> Self {
        ConnectorError::Transient { message: message.into(), retry_after: None }
    }
}

pub use crate::store::{InboundPart, ProviderReport};

/// A carrier's HTTP callback, as it arrived.
#[derive(Debug)]
pub struct WebhookRequest<'a> {
    /// The URL the carrier called (public form, as configured).
    pub url: &'a str,
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// The raw query string (Vonage may use GET).
    pub query: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    Inbound,
    Status,
}

/// What a webhook carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Inbound(InboundSms),
    InboundPart(InboundPart),
    Status(ProviderReport),
    /// Understood but nothing to do (e.g. an intermediate status).
    Ignored,
}

impl WebhookEvent {
    /// The event with its carrier text made storable (see [`storable`]).
    pub fn storable(self) -> Self {
        match self {
            WebhookEvent::Inbound(sms) => WebhookEvent::Inbound(sms.storable()),
            WebhookEvent::InboundPart(part) => WebhookEvent::InboundPart(storable_part(part)),
            WebhookEvent::Status(report) => WebhookEvent::Status(storable_report(report)),
            WebhookEvent::Ignored => WebhookEvent::Ignored,
        }
    }
}

/// Carrier text as the store can keep it: U+0000 becomes U+FFFD. A
/// carrier that sends a NUL (a UCS-2 zero, a stray byte in an id) cannot be
/// asked again, and PostgreSQL's text type cannot hold one; refusing would
/// lose the message, keeping it as it came would leave it unstorable.
/// Everything a carrier hands over passes through this where it enters
/// (webhooks, SMPP PDUs).
pub fn storable(text: String) -> String {
    crate::limits::nul_replaced(text)
}

impl InboundSms {
    pub fn storable(self) -> Self {
        InboundSms {
            from: storable(self.from),
            to: storable(self.to),
            body: storable(self.body),
            connector: self.connector,
            provider_id: self.provider_id.map(storable),
        }
    }
}

pub fn storable_part(p: InboundPart) -> InboundPart {
    InboundPart {
        from: storable(p.from),
        to: storable(p.to),
        reference: storable(p.reference),
        text: storable(p.text),
        provider_id: p.provider_id.map(storable),
        ..p
    }
}

pub fn storable_report(r: ProviderReport) -> ProviderReport {
    ProviderReport { provider_id: storable(r.provider_id), error_code: r.error_code.map(storable), ..r }
}

/// How to answer the carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookReply {
    pub fn empty() -> Self {
        WebhookReply { content_type: "text/plain", body: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing or wrong: answer 403.
    #[error("invalid webhook signature")]
    BadSignature,
    /// The request is malformed: answer 400 with this code and field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String, field: Option<String> },
    #[error("this connector does not take {0:?} webhooks")]
    NotSupported(WebhookKind),
}

#[async_trait]
pub trait Connector: Send + Sync {
    fn name(&self) -> &str;

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError>;

    /// Whether a resend after a crash is deduplicated by the carrier (the
    /// connector passes our message id as an idempotency key).
    fn deduplicates_resends(&self) -> bool {
        false
    }

    /// Ends the connector's sessions politely (SMPP: `unbind`).
    async fn close(&self) {}

    /// Verifies and parses a carrier webhook.
    fn webhook(
        &self,
        kind: WebhookKind,
        req: &WebhookRequest<'_>,
    ) -> Result<(WebhookEvent, WebhookReply), WebhookError> {
        let _ = req;
        Err(WebhookError::NotSupported(kind))
    }
}

/// Something a connector received, with an optional acknowledgement sent
/// once it is durably recorded (an SMPP session answers `deliver_sm` only
/// then, so nothing the carrier handed over is lost in a crash).
#[derive(Debug)]
pub struct Acked<T> {
    pub item: T,
    pub ack: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<T> Acked<T> {
    pub fn new(item: T) -> Self {
        Acked { item, ack: None }
    }

    /// The item, and a receiver that resolves once it is recorded.
    pub fn acknowledged(item: T) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Acked { item, ack: Some(tx) }, rx)
    }

    pub fn done(self) -> T {
        if let Some(ack) = self.ack {
            let _ = ack.send(());
        }
        self.item
    }
}

/// Where connectors deliver what they receive outside webhooks.
#[derive(Clone)]
pub struct Sinks {
    pub reports: Tracked<Acked<ProviderReport>>,
    pub inbound: Tracked<Acked<InboundSms>>,
    /// (connector name, part)
    pub parts: Tracked<Acked<(String, InboundPart)>>,
}

/// Connector settings, by name, from the `[connectors.NAME]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConnectorSettings {
    Simulator(simulator::SimulatorSettings),
    Twilio(twilio::TwilioSettings),
    Vonage(vonage::VonageSettings),
    Http(http::HttpSettings),
    Smpp(smpp::SmppSettings),
}

impl ConnectorSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorSettings::Simulator(_) => "simulator",
            ConnectorSettings::Twilio(_) => "twilio",
            ConnectorSettings::Vonage(_) => "vonage",
            ConnectorSettings::Http(_) => "http",
            ConnectorSettings::Smpp(_) => "smpp",
        }
    }

    pub fn gate(&self) -> &gate::GateSettings {
        match self {
            ConnectorSettings::Simulator(s) => &s.gate,
            ConnectorSettings::Twilio(s) => &s.gate,
            ConnectorSettings::Vonage(s) => &s.gate,
            ConnectorSettings::Http(s) => &s.gate,
            ConnectorSettings::Smpp(s) => &s.gate,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorSetupError {
    #[error("connector {name}: {message}")]
    Invalid { name: String, message: String },
}

/// Shared by every connector.
#[derive(Clone)]
pub struct Context {
    pub http: reqwest::Client,
    pub clock: Clock,
    pub sinks: Sinks,
    /// Where carriers reach this engine (for callback URLs).
    pub public_base_url: Option<String>,
    /// The database, when other nodes share it: send rates then hold
    /// across the cluster.
    pub cluster: Option<Arc<dyn crate::store::Database>>,
}

pub struct Registered {
    pub connector: Arc<dyn Connector>,
    pub gate: gate::Gate,
    /// `simulator`, `twilio`, `vonage`, `http` or `smpp`.
    pub kind: &'static str,
    /// How tenants get numbers on it.
    pub registration: gate::Registration,
    /// The number verification codes are sent from (`verify` registration).
    pub verify_from: Option<String>,
}

/// The built-in connector behind `/v1/inbound/generic`: unsigned, and
/// only for numbers on simulators (when `Settings::generic_webhook`).
pub const GENERIC: &str = "generic";

pub struct Connectors {
    by_name: HashMap<String, Arc<Registered>>,
    /// Every simulator by name (`simulator` and `sandbox` among them).
    simulators: HashMap<String, Arc<simulator::Simulator>>,
}

impl Connectors {
    pub fn get(&self, name: &str) -> Option<Arc<Registered>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether `name` is a simulator (a carrier that lives in the engine).
    pub fn is_simulator(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|r| r.kind == "simulator")
    }

    /// Whether `tenant_id` may send through (and hold numbers on) `name`.
    pub fn allows(&self, name: &str, tenant_id: &str) -> bool {
        self.by_name.get(name).is_some_and(|r| r.gate.allows(tenant_id))
    }

    pub async fn close_all(&self) {
        for c in self.by_name.values() {
            c.connector.close().await;
        }
    }

    /// The simulator named `simulator` (always configured).
    pub fn simulator(&self) -> Option<Arc<simulator::Simulator>> {
        self.simulator_named("simulator")
    }

    /// The sandbox that test-mode messages go to.
    pub fn sandbox(&self) -> Option<Arc<simulator::Simulator>> {
        self.simulator_named(SANDBOX_CONNECTOR)
    }

    /// A simulator connector by name (tests read what it "sent").
    pub fn simulator_named(&self, name: &str) -> Option<Arc<simulator::Simulator>> {
        self.simulators.get(name).cloned()
    }
}

/// Builds every configured connector. The one place that knows them all.
/// With `generic_webhook`, the built-in `generic` connector takes the
/// unsigned generic webhook for numbers on simulators.
pub fn build(
    settings: &HashMap<String, ConnectorSettings>,
    ctx: &Context,
    generic_webhook: bool,
) -> Result<Connectors, ConnectorSetupError> {
    let mut by_name = HashMap::new();
    let mut all = settings.clone();
    all.entry("simulator".to_string()).or_insert_with(|| ConnectorSettings::Simulator(Default::default()));
    let builtin_generic = generic_webhook && !settings.contains_key(GENERIC);
    if builtin_generic {
        all.insert(
            GENERIC.to_string(),
            ConnectorSettings::Http(toml::from_str("").expect("the empty http settings are valid")),
        );
    }
    // Test-mode keys send here and only here.
    all.insert(SANDBOX_CONNECTOR.to_string(), ConnectorSettings::Simulator(simulator::SimulatorSettings::sandbox()));
    let mut simulators = HashMap::new();
    for (name, s) in all {
        let invalid = |message: String| ConnectorSetupError::Invalid { name: name.clone(), message };
        let shared = ctx.cluster.clone().map(|db| (db, format!("connector:{name}")));
        let gate = gate::Gate::new(s.gate(), ctx.clock.clone(), shared).map_err(invalid)?;
        let kind = s.kind();
        let registration = s.gate().registration.unwrap_or(match kind {
            // A simulator carries no real traffic: anyone may take a number.
            "simulator" => gate::Registration::Open,
            _ => gate::Registration::Operator,
        });
        let verify_from = s.gate().verify_from.clone();
        if registration == gate::Registration::Verify && verify_from.is_none() {
            return Err(invalid("registration = \"verify\" needs verify_from, the number codes are sent from".into()));
        }
        let connector: Arc<dyn Connector> = match s {
            ConnectorSettings::Simulator(cfg) => {
                let sim = Arc::new(simulator::Simulator::new(name.clone(), cfg, ctx.clone()));
                simulators.insert(name.clone(), sim.clone());
                sim
            }
            ConnectorSettings::Twilio(cfg) => {
                Arc::new(twilio::Twilio::new(name.clone(), cfg, ctx.clone()).map_err(invalid)?)
            }
            ConnectorSettings::Vonage(cfg) => {
                Arc::new(vonage::Vonage::new(name.clone(), cfg, ctx.clone()).map_err(invalid)?)
            }
            ConnectorSettings::Http(cfg) => {
                let gateway = http::HttpGateway::new(name.clone(), cfg, ctx.clone()).map_err(invalid)?;
                Arc::new(if builtin_generic && name == GENERIC { gateway.unsigned_generic() } else { gateway })
            }
            ConnectorSettings::Smpp(cfg) => {
                Arc::new(smpp::Smpp::start(name.clone(), cfg, ctx.clone()).map_err(invalid)?)
            }
        };
        by_name.insert(name, Arc::new(Registered { connector, gate, kind, registration, verify_from }));
    }
    Ok(Connectors { by_name, simulators })
}

/// Maps an HTTP status to the usual error class.
pub fn classify_http(status: u16, retry_after: Option<Duration>, code: String, message: String) -> ConnectorError {
    match status {
        429 => ConnectorError::Throttled { message, retry_after },
        408 | 500..=599 => ConnectorError::Transient { message, retry_after },
        _ => ConnectorError::Permanent { code, message },
    }
}

/// `Retry-After` as seconds (HTTP dates are rare from carriers; treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Parses `application/x-www-form-urlencoded` pairs.
pub fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The first value of `key` in form pairs.
pub fn form_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
pub mod testing;
