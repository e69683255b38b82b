//! The rows the store reads and writes, shared by every backend.

use crate::clock::Millis;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at: Millis,
    pub settings_json: String,
}

#[derive(Debug, Clone)]
pub struct NewNumber {
    pub number: String,
    pub tenant_id: String,
    pub connector: String,
    pub is_default: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NumberRow {
    pub number: String,
    pub tenant_id: String,
    pub connector: String,
    pub is_default: bool,
    /// Where inbound messages to the number are POSTed (Twilio's form);
    /// the TwiML answered is sent as the reply.
    pub sms_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub hash: Vec<u8>,
    pub prefix: String,
    pub mode: String,
    pub label: Option<String>,
    pub created_at: Millis,
    /// A Twilio-style credential: its account SID, and its auth token
    /// sealed (the hash is the token's).
    pub twilio: Option<TwilioCredential>,
}

/// The Twilio-style half of a key: the account SID that names it and its
/// auth token, sealed (for signing what is sent to the tenant).
#[derive(Debug, Clone)]
pub struct TwilioCredential {
    pub account_sid: String,
    pub sealed_token: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub hash: Vec<u8>,
    pub mode: String,
    pub twilio: Option<TwilioCredential>,
}

/// One trigger of a plugin version, as the router indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    pub kind: RouteKind,
    /// The keyword (upper case) or event-name pattern; empty for other kinds.
    pub pattern: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Keyword,
    CatchAll,
    Event,
    Delivery,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Keyword => "keyword",
            RouteKind::CatchAll => "catch_all",
            RouteKind::Event => "event",
            RouteKind::Delivery => "delivery",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keyword" => RouteKind::Keyword,
            "catch_all" => RouteKind::CatchAll,
            "event" => RouteKind::Event,
            "delivery" => RouteKind::Delivery,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewPluginVersion {
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    pub component_hash: String,
    pub manifest_json: String,
    pub config_json: String,
    pub routes: Vec<RouteRow>,
    pub created_at: Millis,
    /// Make it the active version (else it is only stored: staged, for a
    /// replay or a canary).
    pub activate: bool,
}

#[derive(Debug, Clone)]
pub struct DeployedVersion {
    pub plugin_id: String,
    pub version_id: String,
}

/// A plugin with its active version.
#[derive(Debug, Clone)]
pub struct PluginVersionRow {
    pub plugin_id: String,
    pub tenant_id: String,
    pub name: String,
    pub status: String,
    pub version_id: String,
    pub version: String,
    pub component_hash: String,
    pub manifest_json: String,
    pub config_json: String,
    /// Why a plugin is suspended or disabled.
    pub status_reason: Option<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Message states. Outbound: queued (or scheduled) → sending → sent → a
/// final state. Inbound messages are `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Received,
    Queued,
    Scheduled,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Expired,
    Cancelled,
}

impl MessageStatus {
    /// The status a message has once its parts report these statuses: the
    /// worst final status when every part is final, else still `sent`.
    pub fn of_parts(parts: &[MessageStatus]) -> MessageStatus {
        if parts.is_empty() || parts.iter().any(|s| s.rank() < 3) {
            return MessageStatus::Sent;
        }
        [MessageStatus::Failed, MessageStatus::Undelivered, MessageStatus::Expired, MessageStatus::Cancelled]
            .into_iter()
            .find(|bad| parts.contains(bad))
            .unwrap_or(MessageStatus::Delivered)
    }

    pub const ALL: [MessageStatus; 10] = [
        MessageStatus::Received,
        MessageStatus::Queued,
        MessageStatus::Scheduled,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Undelivered,
        MessageStatus::Failed,
        MessageStatus::Expired,
        MessageStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Queued => "queued",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// How far along its life a message is; a report never moves a message
    /// to a lower rank (reports can arrive out of order).
    pub fn rank(self) -> i64 {
        match self {
            MessageStatus::Received | MessageStatus::Queued | MessageStatus::Scheduled => 0,
            MessageStatus::Sending => 1,
            MessageStatus::Sent => 2,
            _ => 3,
        }
    }
}

/// A message to persist (inbound as received, outbound as queued).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub tenant_id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub body: String,
    pub status: MessageStatus,
    pub segments: u32,
    pub encoding: &'static str,
    pub reference: Option<String>,
    pub connector: Option<String>,
    pub plugin_id: Option<String>,
    pub event_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub created_at: Millis,
    /// `live`, or `test` for messages sent with a test key (sandbox only).
    pub mode: &'static str,
    /// Where status changes are posted (else the tenant's default).
    pub webhook_url: Option<String>,
    /// When a scheduled message is due (status `scheduled`).
    pub scheduled_at: Option<Millis>,
    /// What the message cost, debited at acceptance.
    pub price: i64,
    pub batch_id: Option<String>,
    /// Set at acceptance for messages that are already marked (an inbound
    /// message delivered `INCOMPLETE`).
    pub error_code: Option<&'static str>,
    /// The Twilio-style account a message was sent under through the
    /// Twilio-compatible API (its status callbacks are Twilio's form).
    pub account_sid: Option<String>,
    /// Past this, it is not sent: it fails as expired (a validity period).
    pub expires_at: Option<Millis>,
    /// The W3C `traceparent` of the span that made the message (see
    /// `telemetry`): its sending, reports and webhooks join that trace.
    pub trace_context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Inbound,
    Event,
    Timer,
    Delivery,
    /// An inbound message for its number's webhook app (`sms_url`); the
    /// event's `plugin_id` is [`app_source`] of the number.
    App,
}

/// What stands for a number's webhook app where a plugin id goes (events,
/// invocation records): `app:` and the number.
pub fn app_source(number: &str) -> String {
    format!("app:{number}")
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Inbound => "inbound",
            EventKind::Event => "event",
            EventKind::Timer => "timer",
            EventKind::Delivery => "delivery",
            EventKind::App => "app",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inbound" => EventKind::Inbound,
            "event" => EventKind::Event,
            "timer" => EventKind::Timer,
            "delivery" => EventKind::Delivery,
            "app" => EventKind::App,
            _ => return None,
        })
    }
}

/// A unit of plugin work: one trigger for one plugin.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub tenant_id: String,
    pub plugin_id: String,
    pub kind: EventKind,
    /// Event name (business events), timer key (timers).
    pub name: Option<String>,
    /// JSON document handed to the plugin (shape depends on the kind).
    pub payload: String,
    pub message_id: Option<String>,
    pub run_at: Millis,
    pub created_at: Millis,
    /// `live`, or `test` for events a test key caused (their plugins' sends
    /// go to the sandbox).
    pub mode: &'static str,
    /// The `traceparent` of what caused the event: its invocation joins
    /// that trace.
    pub trace_context: Option<String>,
}

/// An event as claimed for processing.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    pub plugin_id: String,
    pub kind: EventKind,
    pub name: Option<String>,
    pub payload: String,
    pub message_id: Option<String>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: Millis,
    pub mode: &'static str,
    /// The version this event runs (the one an earlier attempt failed
    /// on); `None`: the active version.
    pub version_id: Option<String>,
    pub trace_context: Option<String>,
}

/// The stored name of a mode (`test`, else `live`).
pub fn mode_of(stored: &str) -> &'static str {
    if stored == "test" { "test" } else { "live" }
}

impl NewEvent {
    pub fn to_row(&self) -> EventRow {
        EventRow {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            plugin_id: self.plugin_id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            payload: self.payload.clone(),
            message_id: self.message_id.clone(),
            attempts: 0,
            created_at: self.created_at,
            mode: self.mode,
            version_id: None,
            trace_context: self.trace_context.clone(),
        }
    }
}

/// An accepted inbound message and the events it was routed to.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub message: NewMessage,
    pub events: Vec<NewEvent>,
    /// Who works on the events first (the accepting node).
    pub lease: Lease,
    /// The stored parts this message was reassembled from, consumed in the
    /// same transaction (if they are gone, another copy won: skip).
    pub consumes_parts: Option<PartsKey>,
    /// STOP/START/HELP: the consent change, and the confirmation to send
    /// (priced; sent only if the balance pays for it and the sender has
    /// had fewer than `confirmations_per_hour` from this number this hour).
    pub consent: Option<ConsentChange>,
    pub confirmation: Option<NewMessage>,
    pub confirmations_per_hour: u32,
    /// The carrier's id of the message: a second message with the same
    /// (connector, id) is a carrier retry, answered with the first.
    pub provider_id: Option<String>,
}

/// What became of one accepted inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Stored; `confirmed` says whether its compliance confirmation (if
    /// any) was queued.
    Inserted { confirmed: bool },
    /// Its parts were consumed by a copy that completed first.
    PartsTaken,
    /// The carrier sent this id before: that message, not a new one.
    Duplicate { message_id: String },
}

/// The stored parts of one long inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsKey {
    pub connector: String,
    pub from: String,
    pub to: String,
    pub reference: String,
    pub total: u8,
    /// How many part rows the message consumes (all `total` of them, or
    /// fewer for one delivered incomplete after the timeout).
    pub parts: u8,
}

#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: Millis,
}

#[derive(Debug, Clone)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub enum TimerOp {
    /// `mode`: the timer fires in the mode of the invocation that set it.
    Schedule {
        key: String,
        due_at: Millis,
        payload: String,
        mode: &'static str,
    },
    Cancel {
        key: String,
    },
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
    pub at: Millis,
}

/// What a successful invocation asked for, to commit with its event.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub sends: Vec<NewMessage>,
    /// Keys read and the version seen (0: absent). Checked at commit.
    pub kv_reads: Vec<(String, i64)>,
    /// Final value per written key; `None` deletes.
    pub kv_writes: Vec<(String, Option<Vec<u8>>)>,
    pub timer_ops: Vec<TimerOp>,
}

#[derive(Debug, Clone)]
pub struct InvocationRecord {
    pub tenant_id: String,
    pub plugin_id: String,
    pub version_id: String,
    pub event_id: String,
    pub trigger: &'static str,
    pub started_at: Millis,
    pub duration_us: i64,
    pub fuel_used: i64,
    pub memory_peak: i64,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
    /// What the invocation saw and committed (`runtime::tape`), for replays.
    pub recording: Option<Vec<u8>>,
    /// It ran a canary: a failure does not bind the event to that version,
    /// so once the canary is rolled back its retries run the active one.
    pub canary: bool,
}

#[derive(Debug, Clone)]
pub enum Completion {
    Succeeded(Effects),
    /// Retry at the given time, or dead-letter when `None`.
    Failed {
        error: String,
        retry_at: Option<Millis>,
    },
    /// Not run (a quota is used up): offer it again at `until`, without
    /// counting an attempt or recording an invocation.
    Deferred {
        until: Millis,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct EventCompletion {
    pub event_id: String,
    pub tenant_id: String,
    pub plugin_id: String,
    pub lease_owner: String,
    /// The event's attempt count when it was claimed.
    pub attempt: u32,
    pub completion: Completion,
    pub record: InvocationRecord,
    /// Consecutive failed invocations that suspend the plugin.
    pub suspend_after: u32,
    /// Lease for the outbox rows the completion creates.
    pub outbox_lease: Lease,
}

#[derive(Debug, Clone)]
pub enum CompletionResult {
    /// Committed; these messages are in the outbox, leased to us.
    Committed { outbox: Vec<OutboxItem>, timers_changed: bool, suspended: bool },
    /// A key the invocation read changed meanwhile: run it again.
    Conflict,
    /// Another node took the event over; its outcome is discarded.
    LeaseLost,
}

/// A message waiting to be handed to its connector.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub message_id: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub reference: Option<String>,
    pub connector: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    /// When the message first became due (for the retry deadline).
    pub due_at: Millis,
    /// `live` or `test`.
    pub mode: String,
    /// Not sent after this (its validity period).
    pub expires_at: Option<Millis>,
    /// The message's `traceparent` (its sending joins that trace).
    pub trace_context: Option<String>,
    /// Written `sending` by the commit that created it, its outbox row
    /// leased to this node until then (see [`marked_at_commit`]): the
    /// dispatcher need not mark it again while the lease is fresh.
    pub marked_until: Option<Millis>,
}

#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Accepted by `SendResult::connector`, as these carrier ids (one per part).
    Sent {
        provider_ids: Vec<String>,
    },
    Retry {
        at: Millis,
        error: String,
    },
    Failed {
        error_code: String,
        error: String,
    },
}

#[derive(Debug, Clone)]
pub struct SendResult {
    pub message_id: String,
    pub connector: String,
    pub outcome: SendOutcome,
    pub at: Millis,
}

/// A delivery report as a carrier identifies it: by its own message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub connector: String,
    pub provider_id: String,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub at: Millis,
}

/// What recording connector answers or reports changed.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Delivery events for plugins, leased to this node.
    pub events: Vec<EventRow>,
    /// Messages whose status moved, and to what.
    pub changes: Vec<(String, MessageStatus)>,
    /// Final reports' lag after the carrier took the part: (connector, ms).
    pub report_lags: Vec<(String, Millis)>,
    /// Reports that moved a message with a stored trace context.
    pub traced: Vec<TracedReport>,
}

/// A report that moved a message which carries a trace context: its span
/// joins the message's trace.
#[derive(Debug, Clone)]
pub struct TracedReport {
    pub message_id: String,
    pub connector: String,
    pub status: MessageStatus,
    pub trace_context: String,
}

/// One part of an inbound message the carrier delivered in pieces
/// (Vonage `concat`, SMPP UDH); reassembled before plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPart {
    pub from: String,
    pub to: String,
    /// The carrier's reference shared by all parts.
    pub reference: String,
    pub total: u8,
    pub part: u8,
    pub text: String,
    pub provider_id: Option<String>,
}

/// An inbound message put back together from its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub from: String,
    pub to: String,
    pub text: String,
    pub provider_id: Option<String>,
    pub reference: String,
    pub total: u8,
    /// Parts it was made of (fewer than `total`: delivered incomplete).
    pub parts: u8,
}

/// (part number, text, carrier id) of a stored inbound part.
pub type StoredPart = (i64, String, Option<String>);

impl Reassembled {
    /// The message stored parts make, in part order.
    pub fn from_parts(from: String, to: String, reference: String, total: u8, parts: &[StoredPart]) -> Self {
        Reassembled {
            from,
            to,
            text: parts.iter().map(|(_, text, _)| text.as_str()).collect(),
            provider_id: parts.first().and_then(|(_, _, id)| id.clone()),
            reference,
            total,
            parts: parts.len() as u8,
        }
    }
}

/// The parts of accepted messages as (result, part number, carrier id),
/// each carrier id once (a carrier that answers two sends of a batch with
/// one id: the later send keeps it).
pub fn unique_parts<'a>(sent: &[(&'a SendResult, &'a [String])]) -> Vec<(&'a SendResult, usize, &'a String)> {
    let all: Vec<(&SendResult, usize, &String)> =
        sent.iter().flat_map(|(r, ids)| ids.iter().enumerate().map(move |(i, id)| (*r, i + 1, id))).collect();
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<_> =
        all.into_iter().rev().filter(|(r, _, id)| seen.insert((r.connector.as_str(), id.as_str()))).collect();
    unique.reverse();
    unique
}

/// A number a tenant asked for, waiting for the code sent to it.
#[derive(Debug, Clone)]
pub struct NumberClaim {
    pub tenant_id: String,
    pub number: String,
    pub connector: String,
    pub is_default: bool,
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    pub attempts: u32,
    pub expires_at: Millis,
    pub created_at: Millis,
}

/// An alphanumeric sender ID and where its approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdRow {
    pub tenant_id: String,
    pub sender_id: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub created_at: Millis,
}

/// How long a compliance reply window lasts (see `NewInbound`).
pub const REPLY_WINDOW_MS: Millis = 3_600_000;

/// What retention removes, by age.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Invocation records and plugin logs older than this.
    pub records_before: Millis,
    /// Inbound carrier ids and early delivery reports older than this.
    pub carrier_ids_before: Millis,
    /// Now: expired number claims and closed reply windows go.
    pub now: Millis,
    /// Recordings of invocations started before this.
    pub recordings_before: Millis,
    /// Bytes of recordings each tenant keeps; the oldest beyond go.
    pub recording_bytes_per_tenant: i64,
    /// Rows deleted or cleared per transaction.
    pub batch_rows: u32,
}

/// A canary's plan: the share of a plugin's events its new version takes,
/// and how it is judged against the active version.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CanaryPlan {
    /// Percent of the plugin's customers (1–99) whose events go to it.
    pub percent: u8,
    pub started_at: Millis,
    /// Invocations of each version needed before any verdict.
    pub min_invocations: i64,
    /// Rolled back when its failure rate exceeds the active version's by
    /// more than this (0.05: five percentage points).
    pub max_failure_increase: f64,
    /// Rolled back when its mean duration is more than this many times the
    /// active version's.
    pub max_latency_ratio: f64,
    /// Promoted by itself this long after it started, when healthy; `None`:
    /// it waits for `promote`.
    pub promote_after_ms: Option<i64>,
}

/// How one version of a plugin did since some instant.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VersionStats {
    pub version_id: String,
    pub invocations: i64,
    /// Invocations that did not end `ok` (traps, limit breaches, errors).
    pub failures: i64,
    pub mean_duration_us: f64,
}

/// Which recorded invocations a replay runs.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RecordingSelection {
    /// Invocations started at or after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Millis>,
    /// Or the invocations of these events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
}

/// A recorded invocation, as a replay reads it.
#[derive(Debug, Clone)]
pub struct RecordedInvocationRow {
    pub id: i64,
    pub event_id: String,
    pub version_id: String,
    pub started_at: Millis,
    pub duration_us: i64,
    pub fuel_used: i64,
    pub memory_peak: i64,
    pub outcome: String,
    pub recording: Vec<u8>,
}

/// A replay of recorded invocations against a version.
#[derive(Debug, Clone)]
pub struct ReplayRow {
    pub id: String,
    pub tenant_id: String,
    pub plugin_id: String,
    pub version_id: String,
    pub version: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// The [`RecordingSelection`], as JSON.
    pub selection: String,
    pub total: i64,
    pub done: i64,
    /// The report, as JSON, once done.
    pub report: Option<String>,
    pub error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartView {
    pub part: i64,
    pub provider_id: String,
    pub status: String,
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub in_reply_to: Option<String>,
    pub mode: Option<String>,
    pub batch_id: Option<String>,
    /// Only messages with an id below this one (ids sort by time).
    pub before_id: Option<String>,
    /// Only messages whose text contains this, ignoring the case of ASCII
    /// letters (`%`, `_` and `\` match themselves).
    pub text: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    pub status: String,
    pub at: Millis,
    pub error_code: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub status: String,
    pub segments: i64,
    pub encoding: String,
    pub reference: Option<String>,
    pub error_code: Option<String>,
    pub connector: Option<String>,
    pub provider_id: Option<String>,
    pub plugin: Option<String>,
    pub in_reply_to: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub mode: String,
    pub scheduled_at: Option<Millis>,
    pub price: i64,
    pub batch_id: Option<String>,
    /// The Twilio-style account it was sent under, if any.
    pub account_sid: Option<String>,
    /// The `traceparent` of the span that made it (traces exported).
    pub trace_context: Option<String>,
    pub history: Vec<StatusEntry>,
    pub parts: Vec<PartView>,
}

#[derive(Debug, Clone)]
pub struct EventView {
    pub id: String,
    pub plugin: String,
    pub kind: String,
    pub name: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The version the event is bound to (see [`EventRow::version_id`]).
    pub version: Option<String>,
    pub mode: String,
}

/// One key of a plugin's kv, for inspection.
#[derive(Debug, Clone)]
pub struct KvRow {
    pub key: String,
    pub value: Vec<u8>,
    pub version: i64,
    pub updated_at: Millis,
}

/// A timer waiting to fire, for inspection.
#[derive(Debug, Clone)]
pub struct TimerRow {
    pub key: String,
    pub due_at: Millis,
    pub payload: String,
    pub mode: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    pub id: i64,
    pub event_id: String,
    pub level: String,
    pub message: String,
    pub at: Millis,
}

/// The API's request to queue messages (one item of a writer cycle).
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub tenant_id: String,
    pub messages: Vec<NewMessage>,
    pub idempotency: Option<IdempotencyRecord>,
    /// Lease for messages due now.
    pub lease: Lease,
}

#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub response: String,
}

#[derive(Debug, Clone)]
pub enum OutboundResult {
    /// Queued; these are due now (scheduled ones wait in the outbox).
    Accepted {
        due_now: Vec<OutboxItem>,
    },
    InsufficientBalance {
        balance: i64,
        needed: i64,
    },
    /// The idempotency key was used already; nothing was queued.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    Cancelled,
    NotFound,
    /// Only scheduled messages can be cancelled; this one is in `status`.
    NotCancellable(String),
}

#[derive(Debug, Clone)]
pub struct StoredIdempotency {
    pub request_hash: String,
    pub status: u16,
    pub response: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    /// Set for a Twilio-style credential.
    pub account_sid: Option<String>,
    pub prefix: String,
    pub mode: String,
    pub label: Option<String>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A web console session: who it acts as (`kind` `tenant`, with the API
/// key's hash, or `admin`, with the admin token's) until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleSessionRow {
    pub token_hash: String,
    pub kind: String,
    pub credential_hash: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateRow {
    pub name: String,
    pub body: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub amount: i64,
    pub balance_after: i64,
    pub kind: String,
    pub message_id: Option<String>,
    pub note: Option<String>,
    pub at: Millis,
}

#[derive(Debug, Clone)]
pub struct UsageRow {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub direction: String,
    pub status: String,
    pub messages: i64,
    pub segments: i64,
}

/// A tenant's gateway account: balance and webhook configuration.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub tenant_id: String,
    pub name: String,
    pub balance: i64,
    pub webhook_url: Option<String>,
    /// Sealed (encrypted) webhook signing secret.
    pub webhook_secret: Option<Vec<u8>>,
    pub settings_json: String,
}

#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: String,
    pub tenant_id: String,
    pub message_id: String,
    pub url: String,
    pub payload: String,
    pub attempts: u32,
    pub created_at: Millis,
    /// Set when the message was sent through the Twilio-compatible API with
    /// its own `StatusCallback`: delivered in Twilio's form, signed with
    /// this account's auth token.
    pub account_sid: Option<String>,
    /// The message's `traceparent`: the delivery joins its trace and the
    /// request carries it on.
    pub trace_context: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub delivery_id: String,
    pub at: Millis,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// Retry at, or `None` when done (delivered, or given up).
    pub retry_at: Option<Millis>,
    pub delivered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookAttemptView {
    pub at: Millis,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone)]
pub struct WebhookDeliveryView {
    pub id: String,
    pub url: String,
    pub payload: String,
    pub status: String,
    pub attempts: Vec<WebhookAttemptView>,
    pub next_attempt_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `admin`, or `tenant:<id>` for a tenant acting on itself.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvocationRow {
    pub id: i64,
    pub event_id: String,
    pub version_id: String,
    pub trigger: String,
    pub started_at: Millis,
    pub duration_us: i64,
    pub fuel_used: i64,
    pub memory_peak: i64,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct OptOutRow {
    pub recipient: String,
    /// `""` for tenant-wide, else the tenant number opted out of.
    pub scope: String,
    /// `keyword` (the recipient texted it), `import`, `api`.
    pub source: String,
    pub keyword: Option<String>,
    pub at: Millis,
}

/// What an inbound compliance keyword changes, committed with the message.
#[derive(Debug, Clone)]
pub enum ConsentChange {
    OptOut(OptOutRow),
    /// Removes the recipient's opt-out for this scope.
    OptIn {
        recipient: String,
        scope: String,
    },
}

/// Whether a new message is written `sending` by the commit that creates
/// it: an outbound message due now whose outbox row that commit leases to a
/// node that dispatches (`lease.until` ahead). The lease that hands the row
/// to the dispatcher is then its `sending` mark, and the message costs no
/// write of its own between its creation and the carrier's answer.
pub fn marked_at_commit(m: &NewMessage, lease: &Lease) -> bool {
    m.direction == Direction::Outbound
        && m.status == MessageStatus::Queued
        && m.scheduled_at.is_none()
        && lease.until > m.created_at
}

/// The outbox items of messages due now, leased by `lease` when their
/// commit leased them (`None`: the dispatcher marks them).
pub fn outbox_items(messages: &[NewMessage], lease: Option<&Lease>) -> Vec<OutboxItem> {
    messages
        .iter()
        .filter(|m| m.scheduled_at.is_none())
        .map(|m| OutboxItem {
            marked_until: lease.filter(|l| marked_at_commit(m, l)).map(|l| l.until),
            message_id: m.id.clone(),
            tenant_id: m.tenant_id.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            body: m.body.clone(),
            reference: m.reference.clone(),
            connector: m.connector.clone().unwrap_or_default(),
            attempts: 0,
            encoding: m.encoding.to_string(),
            due_at: m.created_at,
            mode: m.mode.to_string(),
            expires_at: m.expires_at,
            trace_context: m.trace_context.clone(),
        })
        .collect()
}

/// One queue's waiting work (see [`crate::store::Queries::queue_depths`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepthRow {
    pub queue: String,
    pub depth: i64,
    /// The earliest due time of its items (`None`: empty).
    pub earliest_due: Option<Millis>,
}

#[cfg(test)]
mod message_status_tests {
    use super::MessageStatus;

    #[test]
    fn a_message_is_final_when_all_its_parts_are() {
        use MessageStatus::*;
        assert_eq!(MessageStatus::of_parts(&[Delivered]), Delivered);
        assert_eq!(MessageStatus::of_parts(&[Delivered, Sent]), Sent, "partial delivery");
        assert_eq!(MessageStatus::of_parts(&[Delivered, Delivered, Delivered]), Delivered);
        assert_eq!(MessageStatus::of_parts(&[Delivered, Undelivered]), Undelivered);
        assert_eq!(MessageStatus::of_parts(&[Expired, Failed]), Failed);
    }
}
