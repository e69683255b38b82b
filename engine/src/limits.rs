//! Every limit the engine enforces, in one place, with its default.
//!
//! Operators override them in the `[limits]` table of the settings file; a
//! plugin manifest may ask for less (never more) CPU and memory. Tests lower
//! them to provoke the limit paths cheaply.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) one invocation may burn.
    /// Default 500 million: ~0.3 s of CPU, far beyond what a message handler
    /// needs, small enough that a runaway loop is cut short.
    pub fuel_per_invocation: u64,
    /// Wall-clock time one invocation may take, host calls included.
    /// Default 5 s.
    pub invocation_timeout_ms: u64,
    /// Linear memory one instance may grow to. Default 32 MiB.
    pub memory_bytes: usize,
    /// Messages one invocation may queue (`messaging.send`). Default 100.
    pub sends_per_invocation: usize,
    /// Longest kv key, in bytes. Default 256.
    pub kv_key_bytes: usize,
    /// Largest kv value, in bytes. Default 64 KiB.
    pub kv_value_bytes: usize,
    /// Most keys one `kv.list-keys` call returns. Default 1000.
    pub kv_list_max: u32,
    /// Timers one invocation may schedule or cancel. Default 50.
    pub timers_per_invocation: usize,
    /// Distinct kv keys one invocation may write or delete (its writes wait
    /// in host memory until commit). Default 1,000.
    pub kv_writes_per_invocation: usize,
    /// Bytes of kv keys and values one invocation may have waiting to be
    /// written. Default 4 MiB.
    pub kv_write_bytes_per_invocation: usize,
    /// Largest timer payload, in bytes. Default 16 KiB.
    pub timer_payload_bytes: usize,
    /// Log lines one invocation may write; more are dropped. Default 100.
    pub log_lines_per_invocation: usize,
    /// Longest log line kept, in bytes; longer ones are cut. Default 2 KiB.
    pub log_line_bytes: usize,
    /// Bytes of log lines one invocation may keep; later lines are
    /// dropped (and counted). Default 32 KiB.
    pub log_bytes_per_invocation: usize,
    /// Longest SMS body accepted, in characters (about 10 segments of
    /// UCS-2 text, 16 of GSM-7). Default 1600.
    pub message_chars: usize,
    /// Largest HTTP request body. Default 1 MiB.
    pub http_body_bytes: usize,
    /// Largest plugin upload (`POST /v1/plugins`). Default 32 MiB.
    pub plugin_upload_bytes: usize,
    /// How long a web console session lasts after sign-in. Default 12 hours.
    pub console_session_ms: u64,
    /// Web console event streams (live pages) open at once on one node;
    /// more are refused until one closes. Default 256.
    pub console_streams: usize,
    /// Largest plugin manifest (`plugin.toml`, its `[config]` included), in
    /// bytes. Default 128 KiB.
    pub manifest_bytes: usize,
    /// Functions one uploaded component may define (all its modules).
    /// Default 100,000.
    pub component_max_functions: u32,
    /// Locals one function may declare: compile time grows about with the
    /// square of it, so a small upload could otherwise hold a compiler
    /// thread for minutes. Default 10,000.
    pub component_max_locals: u32,
    /// Largest function body, in bytes. Default 2 MiB.
    pub component_max_function_bytes: usize,
    /// Components compiled at once on this node (more uploads wait).
    /// Default 2.
    pub concurrent_compiles: usize,
    /// Time a component may take to compile before the deploy is refused.
    /// Default 60 s.
    pub compile_timeout_ms: u64,
    /// Attempts at one event before it is dead-lettered. Default 5.
    pub event_max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter. Default 1 s.
    pub event_retry_base_ms: u64,
    /// Longest retry delay. Default 5 min.
    pub event_retry_max_ms: u64,
    /// Invocations running at once on this node. Default 64.
    pub concurrent_invocations: usize,
    /// Invocations of one tenant running at once on this node, so that a
    /// tenant flooding events (or running plugins that spin until their
    /// time limit) leaves slots for the others. Default 16.
    pub tenant_concurrent_invocations: usize,
    /// Sends to connectors in flight at once on this node. Default 256.
    pub concurrent_sends: usize,
    /// How long a node holds work it claimed (events, outbox rows,
    /// webhooks) before another node may take it over: a node that dies
    /// mid-work delays that work by at most this. Default 60 s.
    pub work_lease_ms: u64,
    /// How long a message may keep failing transiently (on every
    /// connector of its route) before it is failed. Default 1 h.
    pub send_retry_deadline_s: u64,
    /// First delay before a message is offered to its connectors again;
    /// doubles per attempt, with jitter. Default 1 s.
    pub send_retry_base_ms: u64,
    /// Longest such delay. Default 60 s.
    pub send_retry_max_ms: u64,
    /// Time one connector call may take. Default 30 s.
    pub connector_timeout_ms: u64,
    /// API requests per second per tenant, all its keys together (tenants
    /// may be given their own). Default 100.
    pub api_requests_per_second: u32,
    /// API requests per UTC day per tenant, all its keys together.
    /// Default 1,000,000.
    pub api_requests_per_day: u64,
    /// Admin API requests per second, all callers together. Default 50.
    pub admin_requests_per_second: u32,
    /// Failed authentications (bad API key, admin token or carrier
    /// signature) one source address may make per minute; past it, its
    /// requests to those endpoints get 429 until the minute ends.
    /// Default 30.
    pub failed_auth_per_minute: u32,
    /// Time a webhook receiver has to answer. Default 10 s.
    pub webhook_timeout_ms: u64,
    /// First webhook retry delay; doubles per attempt (capped at 1 h), with
    /// jitter. Default 5 s.
    pub webhook_retry_base_ms: u64,
    /// How long a webhook is retried before it is given up. Default 24 h.
    pub webhook_retry_window_s: u64,
    /// Failed invocations in a row that suspend a plugin until it is
    /// re-enabled (0: never). Default 10.
    pub plugin_suspend_after_failures: u32,
    /// How long invocation records and plugin logs are kept. Default 7 days.
    pub plugin_records_retention_s: u64,
    /// Whether each invocation keeps a recording of what it saw, for
    /// replays against other versions. Default on.
    pub record_invocations: bool,
    /// Largest recording kept for one invocation (bigger ones, usually
    /// large `http.fetch` answers, are not kept). Default 256 KiB.
    pub recording_bytes_per_invocation: usize,
    /// How long recordings are kept (never longer than the invocation
    /// records they belong to). Default 7 days.
    pub recording_retention_s: u64,
    /// Recordings one tenant may keep, in bytes; the oldest go first.
    /// Default 256 MiB.
    pub recording_bytes_per_tenant: i64,
    /// Most recorded invocations one replay runs. Default 50,000.
    pub replay_invocations_max: usize,
    /// Rows the hourly housekeeping deletes (or clears) per transaction;
    /// other writes take turns between its batches. Default 500.
    pub prune_batch_rows: u32,
    /// A cron fire missed while the engine was down runs once at start if
    /// it is at most this old. Default 1 h.
    pub cron_grace_s: u64,
    /// Time one `http.fetch` may take. Default 5 s.
    pub http_fetch_timeout_ms: u64,
    /// Largest response body `http.fetch` returns. Default 1 MiB.
    pub http_fetch_bytes: usize,
    /// `http.fetch` calls one invocation may make. Default 10.
    pub http_fetches_per_invocation: usize,

    // Every tenant's quotas unless the operator sets its own
    // (`PUT /admin/v1/tenants/{id}/limits`): safe defaults, not ceilings.
    /// Live messages one tenant may send per UTC day (API and plugins).
    /// Default 10,000.
    pub tenant_sends_per_day: i64,
    /// Plugin invocations per minute per tenant; more wait for the next
    /// minute. Default 6,000.
    pub tenant_invocations_per_minute: u32,
    /// kv keys one tenant's plugins may keep. Default 10,000.
    pub tenant_kv_keys: i64,
    /// kv bytes (keys and values) one tenant's plugins may keep.
    /// Default 64 MiB.
    pub tenant_kv_bytes: i64,
    /// Timers one tenant may have pending. Default 10,000.
    pub tenant_timers_pending: i64,

    /// How long a code sent to prove a number stays valid. Default 10 min.
    pub number_claim_ttl_s: u64,
    /// Wrong codes a number claim takes before it ends. Default 5.
    pub number_claim_attempts: u32,
    /// Compliance confirmations (STOP, START, HELP answers) one sender gets
    /// from one number per hour; more keywords are recorded, not answered.
    /// Default 3.
    pub compliance_replies_per_hour: u32,
    /// How long the parts of a long inbound message wait for the rest:
    /// after this the parts that came are delivered as one message marked
    /// `INCOMPLETE`. Default 10 min.
    pub inbound_parts_timeout_s: u64,
    /// How long carrier message ids are remembered: inbound ids (a
    /// carrier's retry within this window is answered without a second
    /// run) and delivery reports waiting for their send's answer.
    /// Default 2 days.
    pub carrier_ids_retention_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_invocation: 500_000_000,
            invocation_timeout_ms: 5_000,
            memory_bytes: 32 << 20,
            sends_per_invocation: 100,
            kv_key_bytes: 256,
            kv_value_bytes: 64 << 10,
            kv_list_max: 1000,
            timers_per_invocation: 50,
            kv_writes_per_invocation: 1_000,
            kv_write_bytes_per_invocation: 4 << 20,
            timer_payload_bytes: 16 << 10,
            log_lines_per_invocation: 100,
            log_line_bytes: 2 << 10,
            log_bytes_per_invocation: 32 << 10,
            message_chars: 1600,
            http_body_bytes: 1 << 20,
            plugin_upload_bytes: 32 << 20,
            console_session_ms: 12 * 3600 * 1000,
            console_streams: 256,
            manifest_bytes: 128 << 10,
            component_max_functions: 100_000,
            component_max_locals: 10_000,
            component_max_function_bytes: 2 << 20,
            concurrent_compiles: 2,
            compile_timeout_ms: 60_000,
            event_max_attempts: 5,
            event_retry_base_ms: 1_000,
            event_retry_max_ms: 300_000,
            concurrent_invocations: 64,
            tenant_concurrent_invocations: 16,
            concurrent_sends: 256,
            work_lease_ms: 60_000,
            send_retry_deadline_s: 3_600,
            send_retry_base_ms: 1_000,
            send_retry_max_ms: 60_000,
            connector_timeout_ms: 30_000,
            api_requests_per_second: 100,
            api_requests_per_day: 1_000_000,
            admin_requests_per_second: 50,
            failed_auth_per_minute: 30,
            webhook_timeout_ms: 10_000,
            webhook_retry_base_ms: 5_000,
            webhook_retry_window_s: 86_400,
            plugin_suspend_after_failures: 10,
            plugin_records_retention_s: 7 * 86_400,
            record_invocations: true,
            recording_bytes_per_invocation: 256 << 10,
            recording_retention_s: 7 * 86_400,
            recording_bytes_per_tenant: 256 << 20,
            replay_invocations_max: 50_000,
            prune_batch_rows: 500,
            cron_grace_s: 3_600,
            http_fetch_timeout_ms: 5_000,
            http_fetch_bytes: 1 << 20,
            http_fetches_per_invocation: 10,
            tenant_sends_per_day: 10_000,
            tenant_invocations_per_minute: 6_000,
            tenant_kv_keys: 10_000,
            tenant_kv_bytes: 64 << 20,
            tenant_timers_pending: 10_000,
            number_claim_ttl_s: 600,
            number_claim_attempts: 5,
            compliance_replies_per_hour: 3,
            inbound_parts_timeout_s: 600,
            carrier_ids_retention_s: 2 * 86_400,
        }
    }
}

impl Limits {
    pub fn invocation_timeout(&self) -> Duration {
        Duration::from_millis(self.invocation_timeout_ms)
    }

    /// Delay before attempt `attempt + 1` of an event (attempt counts from 1).
    pub fn event_retry_delay(&self, attempt: u32) -> Duration {
        backoff(self.event_retry_base_ms, self.event_retry_max_ms, attempt)
    }

    /// Delay before a message is offered to its connectors again.
    pub fn send_retry_delay(&self, attempt: u32) -> Duration {
        backoff(self.send_retry_base_ms, self.send_retry_max_ms, attempt)
    }
}

/// Exponential from `base_ms`, capped at `max_ms`, with up to 20 % jitter
/// so retries of a burst of failures spread out.
fn backoff(base_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max_ms);
    let jitter = (capped / 5).max(1);
    Duration::from_millis(capped + rand::random_range(0..jitter))
}

/// One tenant's quotas as enforced: its own where the operator set them,
/// else the engine's defaults (`tenant_*` above). CPU and memory per
/// invocation have no separate default: the engine's limits apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantQuotas {
    pub fuel: Option<u64>,
    pub memory_bytes: Option<usize>,
    pub invocations_per_minute: u32,
    pub kv_bytes: i64,
    pub kv_keys: i64,
    pub sends_per_day: i64,
    pub timers_pending: i64,
}

/// Limits a manifest asks for: each value may only lower the operator's.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    pub fuel: Option<u64>,
    pub memory_bytes: Option<usize>,
    pub timeout_ms: Option<u64>,
}

/// The limits one invocation of one plugin runs under.
#[derive(Debug, Clone, Copy)]
pub struct InvocationLimits {
    pub fuel: u64,
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl InvocationLimits {
    /// These limits, lowered to the tenant's quotas where it has them.
    pub fn capped(self, quotas: &TenantQuotas) -> Self {
        InvocationLimits {
            fuel: quotas.fuel.map_or(self.fuel, |f| f.min(self.fuel)),
            memory_bytes: quotas.memory_bytes.map_or(self.memory_bytes, |m| m.min(self.memory_bytes)),
            timeout: self.timeout,
        }
    }

    pub fn resolve(operator: &Limits, asked: &PluginLimits) -> Self {
        InvocationLimits {
            fuel: asked.fuel.map_or(operator.fuel_per_invocation, |f| f.min(operator.fuel_per_invocation)),
            memory_bytes: asked.memory_bytes.map_or(operator.memory_bytes, |m| m.min(operator.memory_bytes)),
            timeout: Duration::from_millis(
                asked.timeout_ms.map_or(operator.invocation_timeout_ms, |t| t.min(operator.invocation_timeout_ms)),
            ),
        }
    }
}

/// Why text with U+0000 is refused. The store keeps no NUL character:
/// PostgreSQL's text type cannot hold one, and SQLite, which could, must not
/// accept what PostgreSQL refuses. So the API refuses it in bodies and query
/// strings, the plugin API in what it stores, and text from carriers (which
/// cannot be asked again) has it replaced (`connectors::storable`).
pub const NUL_REFUSED: &str = "text may not contain the NUL character (U+0000)";

/// Text kept where it cannot be refused (a carrier's, which cannot be asked
/// again; a plugin's log line): U+0000 becomes U+FFFD.
pub fn nul_replaced(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// How far ahead a message may be scheduled.
pub const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;
