//! Durable state: one [`Database`] trait, one implementation for both backends.
//!
//! Callers hold an `Arc<dyn Database>` and never see SQL. The SQL is
//! written once, in `sql/`, for both databases; `sqlite/` (one node) and
//! `postgres/` (several) keep their migrations, pools and the few dialect
//! fragments that differ; [`open`] picks the backend from the URL scheme, in
//! one `match`.
//!
//! Work items (events, outbox rows) carry a lease: `lease_owner` names the
//! node working on them and `lease_until` when others may take them over.
//! Rows created by a node are born leased to it, so the common path (accept,
//! then work on it here) needs no claim query; the sweeper claims only what
//! is due for retry or was orphaned by a crash.

pub mod cycle;
pub mod lock;
mod models;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use models::*;

use crate::clock::Millis;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens (creating and migrating if needed) the database at `url`.
/// `max_connections` sizes a PostgreSQL pool (SQLite's is fixed).
pub async fn open(url: &str, max_connections: Option<u32>) -> StoreResult<Arc<dyn Database>> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::open_url(url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(postgres::PgStore::open_url(url, max_connections).await?)),
        _ => Err(StoreError::UnsupportedUrl(url.to_string())),
    }
}

/// The default database of a data directory.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("switchboard.db").display())
}

/// The whole store: one backend implements every part.
pub trait Database:
    Tenants
    + Accounts
    + Plugins
    + Events
    + Deliveries
    + cycle::WriteCycles
    + Webhooks
    + Queries
    + Erasure
    + Governance
    + Recordings
    + Cluster
    + Send
    + Sync
    + 'static
{
}
impl<
    T: Tenants
        + Accounts
        + Plugins
        + Events
        + Deliveries
        + cycle::WriteCycles
        + Webhooks
        + Queries
        + Erasure
        + Governance
        + Recordings
        + Cluster
        + Send
        + Sync
        + 'static,
> Database for T
{
}

/// What nodes sharing one database coordinate through it. A database one
/// process owns (SQLite) has nothing to share: notices go nowhere and rate
/// limits stay in memory.
#[async_trait]
pub trait Cluster {
    /// Whether other nodes may be working on this database.
    fn shared(&self) -> bool;
    /// Tells every node that the directory (tenants, numbers, keys,
    /// plugins, routes) changed, so each reloads it.
    async fn announce_directory_change(&self) -> StoreResult<()>;
    /// Directory-change notices from any node; a notice also arrives when
    /// notices may have been missed (the connection was lost). `None` when
    /// the database is not shared.
    async fn directory_changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>>;
    /// Takes up to `want` tokens from the cluster-wide token bucket `key`
    /// (refilled at `rate` per second up to `burst`, full when first used).
    async fn take_tokens(&self, key: &str, rate: u32, burst: u32, want: u32) -> StoreResult<Tokens>;
    /// Counts `n` against the cluster-wide `limit` of `key` for `period`
    /// (e.g. a UTC day number); returns the count after, or `None` (and
    /// counts nothing) when it would pass the limit.
    async fn count_within(&self, key: &str, period: i64, n: u64, limit: u64) -> StoreResult<Option<u64>>;
}

/// What [`Cluster::take_tokens`] granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tokens {
    pub granted: u32,
    /// Tokens left in the bucket after the grant (fractional while refilling).
    pub left: f64,
}

#[async_trait]
pub trait Tenants {
    async fn create_tenant(&self, tenant: &NewTenant) -> StoreResult<()>;
    async fn count_tenants(&self) -> StoreResult<i64>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn add_number(&self, number: &NewNumber) -> StoreResult<()>;
    async fn list_numbers(&self) -> StoreResult<Vec<NumberRow>>;
    /// Sets (or with `None` clears) a number's inbound webhook app; false
    /// if the tenant has no such number.
    async fn set_sms_url(&self, tenant_id: &str, number: &str, url: Option<&str>) -> StoreResult<bool>;
    async fn create_api_key(&self, key: &NewApiKeyRow) -> StoreResult<()>;
    /// Keys that are not revoked.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>>;
    /// Records (or replaces) a tenant's claim on a number.
    async fn put_number_claim(&self, claim: &NumberClaim) -> StoreResult<()>;
    async fn number_claim(&self, tenant_id: &str, number: &str) -> StoreResult<Option<NumberClaim>>;
    /// Counts a wrong code against a claim.
    async fn count_claim_attempt(&self, tenant_id: &str, number: &str) -> StoreResult<()>;
    async fn delete_number_claim(&self, tenant_id: &str, number: &str) -> StoreResult<()>;
}

/// What a tenant manages through the gateway API: keys, sender IDs,
/// templates, balance and ledger, webhook settings, idempotency records.
#[async_trait]
pub trait Accounts {
    async fn account(&self, tenant_id: &str) -> StoreResult<Option<AccountRow>>;
    async fn set_webhook(&self, tenant_id: &str, url: Option<&str>, sealed_secret: Option<&[u8]>) -> StoreResult<()>;
    async fn set_tenant_settings(&self, tenant_id: &str, settings_json: &str) -> StoreResult<()>;
    async fn list_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyInfo>>;
    /// Revokes a key of the tenant; false if it has no such live key.
    async fn revoke_key(&self, tenant_id: &str, key_id: &str, at: Millis) -> StoreResult<bool>;
    /// Records a sender ID as `pending` or `approved` (an approved name is
    /// one tenant's: `Conflict` if another holds it).
    async fn add_sender_id(&self, tenant_id: &str, sender_id: &str, status: &str, at: Millis) -> StoreResult<()>;
    /// Approves or rejects a sender ID; false if the tenant has no such one.
    async fn decide_sender_id(&self, tenant_id: &str, sender_id: &str, status: &str, at: Millis) -> StoreResult<bool>;
    async fn delete_sender_id(&self, tenant_id: &str, sender_id: &str) -> StoreResult<bool>;
    /// Every tenant's sender IDs, whatever their status.
    async fn list_sender_ids(&self) -> StoreResult<Vec<SenderIdRow>>;
    async fn put_template(&self, tenant_id: &str, name: &str, body: &str, at: Millis) -> StoreResult<()>;
    async fn get_template(&self, tenant_id: &str, name: &str) -> StoreResult<Option<TemplateRow>>;
    async fn list_templates(&self, tenant_id: &str) -> StoreResult<Vec<TemplateRow>>;
    async fn delete_template(&self, tenant_id: &str, name: &str) -> StoreResult<bool>;
    /// Adds `amount` (negative to debit) with a ledger row; returns the new balance.
    async fn credit(&self, tenant_id: &str, amount: i64, note: &str, at: Millis) -> StoreResult<i64>;
    async fn ledger(&self, tenant_id: &str, limit: u32) -> StoreResult<Vec<LedgerRow>>;
    async fn usage(&self, tenant_id: &str, since: Millis) -> StoreResult<Vec<UsageRow>>;
    async fn idempotency(&self, tenant_id: &str, key: &str) -> StoreResult<Option<StoredIdempotency>>;
    /// Opens a console session (and deletes the sessions past their expiry).
    async fn create_console_session(&self, session: &ConsoleSessionRow) -> StoreResult<()>;
    /// The unexpired session whose token hashes to `token_hash`.
    async fn console_session(&self, token_hash: &str, now: Millis) -> StoreResult<Option<ConsoleSessionRow>>;
    async fn delete_console_session(&self, token_hash: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait Plugins {
    /// Stores a component's bytes under their hash (idempotent).
    async fn put_component(&self, hash: &str, wasm: &[u8]) -> StoreResult<()>;
    async fn get_component(&self, hash: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Records a new version of a plugin and, unless it is only staged,
    /// makes it the active one and replaces the plugin's routes, in one
    /// transaction.
    async fn deploy_plugin_version(&self, version: &NewPluginVersion) -> StoreResult<DeployedVersion>;
    /// Every tenant's active plugins with their active version.
    async fn active_plugins(&self) -> StoreResult<Vec<PluginVersionRow>>;
    async fn kv_get(&self, tenant_id: &str, plugin_id: &str, key: &str) -> StoreResult<Option<KvEntry>>;
    async fn kv_list(&self, tenant_id: &str, plugin_id: &str, prefix: &str, limit: u32) -> StoreResult<Vec<String>>;
    /// Sets one key outside any invocation (`switchboard run` seeds its
    /// throwaway store with it).
    async fn kv_put(&self, tenant_id: &str, plugin_id: &str, key: &str, value: &[u8], now: Millis) -> StoreResult<()>;
    async fn timer_pending(&self, tenant_id: &str, plugin_id: &str, key: &str) -> StoreResult<bool>;
    /// Newest first; with `after`, the lines after that id, oldest first.
    async fn plugin_logs(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        limit: u32,
        after: Option<i64>,
    ) -> StoreResult<Vec<LogRow>>;
}

/// Plugin work: accepting it, leasing it, committing its outcome.
#[async_trait]
pub trait Events {
    /// Persists accepted inbound messages and the events routed from them,
    /// all in one transaction (a writer cycle, [`cycle`]). Per message: what became of
    /// it (a carrier retry of an id already stored is not stored again).
    async fn insert_inbound(&self, batch: &[NewInbound]) -> StoreResult<Vec<InboundOutcome>>;
    /// Persists business events, leased to `lease` (one transaction).
    async fn insert_events(&self, events: &[NewEvent], lease: &Lease) -> StoreResult<()>;
    /// Leases up to `limit` events that are due and not leased by a live node.
    async fn claim_events(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<EventRow>>;
    /// When the next pending event becomes due, if any is waiting.
    async fn next_event_due(&self) -> StoreResult<Option<Millis>>;
    /// Commits the outcomes of invocations, each atomically with its event's
    /// new state, all in one transaction. Results come back in order.
    async fn complete_events(&self, completions: &[EventCompletion]) -> StoreResult<Vec<CompletionResult>>;
    /// Forgets every lease held by `owner` on events and the outbox (a node
    /// restarting under the same name releases what its previous life held).
    async fn release_leases(&self, owner: &str) -> StoreResult<()>;
    /// Turns timers due at `now` into leased events (one transaction).
    async fn fire_due_timers(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<EventRow>>;
    async fn next_timer_due(&self) -> StoreResult<Option<Millis>>;
    /// Makes a dead event pending again, due now and leased to `lease`,
    /// with its attempts counted from zero, bound to `version_id` (`None`:
    /// it keeps the version it failed on). `None` if the tenant has no such
    /// dead event.
    async fn retry_event(
        &self,
        tenant_id: &str,
        event_id: &str,
        version_id: Option<&str>,
        lease: &Lease,
        now: Millis,
    ) -> StoreResult<Option<EventRow>>;
}

/// The outbound half: accepting messages, outbox, connector results,
/// delivery reports, cancellation.
#[async_trait]
pub trait Deliveries {
    /// Queues API requests, each atomically with its debit and idempotency
    /// record, all in one transaction. Results come back in order.
    async fn insert_outbound(&self, requests: &[OutboundRequest]) -> StoreResult<Vec<OutboundResult>>;
    /// Cancels a scheduled message (refunding its price).
    async fn cancel_scheduled(&self, tenant_id: &str, message_id: &str, at: Millis) -> StoreResult<CancelResult>;
    async fn claim_outbox(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<OutboxItem>>;
    async fn next_outbox_due(&self) -> StoreResult<Option<Millis>>;
    /// Marks messages `sending` before they are handed to a connector, and
    /// renews `lease` on their outbox rows. Returns the ids still leased to
    /// `lease.owner`: the others were taken over by another node (this one
    /// held them past their lease) and must not be sent from here.
    async fn mark_sending(&self, message_ids: &[String], at: Millis, lease: &Lease) -> StoreResult<Vec<String>>;
    /// Records what connectors answered: sent (with the carrier's ids, one
    /// per part), retry later, or failed. Reports that arrived for these
    /// ids before this record are applied now.
    async fn record_send_results(&self, results: &[SendResult], lease: &Lease) -> StoreResult<Recorded>;
    /// Applies carrier delivery reports to the parts they name (a message's
    /// status follows its parts, and only moves forward; every report joins
    /// the history). For messages whose plugin subscribes to delivery
    /// reports, inserts its event, leased. Reports for ids not yet recorded
    /// are kept until the send result arrives.
    async fn record_reports(&self, reports: &[ProviderReport], lease: &Lease) -> StoreResult<Recorded>;
    /// Stores one part of an inbound message; when it completes the
    /// message, returns the whole text (the parts stay until the message
    /// is inserted, which consumes them). Parts belong together when they
    /// share connector, sender, recipient, reference and total.
    async fn store_inbound_part(
        &self,
        connector: &str,
        part: &InboundPart,
        at: Millis,
    ) -> StoreResult<Option<Reassembled>>;
    /// The message a carrier id of this connector was accepted as (ids of
    /// whole messages and of the parts of long ones are remembered).
    async fn inbound_receipt(&self, connector: &str, provider_id: &str) -> StoreResult<Option<String>>;
    /// Messages whose first part arrived before `before` and which are
    /// still incomplete, as what arrived (connector, message).
    async fn stale_inbound_parts(&self, before: Millis, limit: u32) -> StoreResult<Vec<(String, Reassembled)>>;
}

/// Signed status webhooks: claimed, attempted, retried.
#[async_trait]
pub trait Webhooks {
    async fn claim_webhooks(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
    async fn next_webhook_due(&self) -> StoreResult<Option<Millis>>;
    async fn record_webhook_attempts(&self, attempts: &[WebhookAttempt]) -> StoreResult<()>;
    async fn webhooks_for_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<Vec<WebhookDeliveryView>>;
}

/// Removing what a tenant asks to have removed.
#[async_trait]
pub trait Erasure {
    /// Deletes a message that is finished (not queued, scheduled or
    /// sending, and with no plugin work pending on it), with its status
    /// history, parts and webhook deliveries, and the finished events it
    /// started.
    async fn delete_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<EraseResult>;
    /// Empties a finished message's body (and the payload of the finished
    /// events it started).
    async fn redact_message(&self, tenant_id: &str, message_id: &str, at: Millis) -> StoreResult<EraseResult>;
}

/// What [`Erasure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EraseResult {
    Done,
    NotFound,
    /// Still on its way (its status, or `processing`).
    InProgress(String),
}

/// Running many tenants: audit, plugin lifecycle, consent, quotas, cron.
#[async_trait]
pub trait Governance {
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first; `before` pages by id.
    async fn audit_log(&self, limit: u32, before: Option<i64>) -> StoreResult<Vec<AuditRow>>;
    async fn set_tenant_status(&self, tenant_id: &str, status: &str) -> StoreResult<bool>;
    /// Every version of a plugin, oldest first.
    async fn plugin_versions(&self, tenant_id: &str, name: &str) -> StoreResult<Vec<PluginVersionRow>>;
    /// One version of a plugin (with the plugin's status).
    async fn plugin_version(&self, plugin_id: &str, version_id: &str) -> StoreResult<Option<PluginVersionRow>>;
    /// Makes `version_id` the active version (with its routes).
    async fn activate_version(&self, plugin_id: &str, version_id: &str, routes: &[RouteRow]) -> StoreResult<()>;
    async fn set_plugin_status(&self, plugin_id: &str, status: &str, reason: Option<&str>) -> StoreResult<()>;
    /// Every plugin's canary: its version (with the plugin's status) and plan (JSON).
    async fn canaries(&self) -> StoreResult<Vec<(PluginVersionRow, String)>>;
    /// Sends part of `plugin_id`'s events to `version_id` under `plan` (JSON),
    /// replacing any canary it had.
    async fn start_canary(&self, plugin_id: &str, version_id: &str, plan: &str) -> StoreResult<()>;
    /// Ends the canary of `version_id`, if it is still the plugin's (false
    /// when another node ended it first). With `promote`, the version
    /// becomes the active one with `routes`; otherwise events bound to it
    /// and still pending are unbound, to run the active version.
    async fn end_canary(&self, plugin_id: &str, version_id: &str, promote: Option<&[RouteRow]>) -> StoreResult<bool>;
    /// Invocations, failures and mean duration of each of `version_ids` since `since`.
    async fn version_stats(
        &self,
        plugin_id: &str,
        version_ids: &[&str],
        since: Millis,
    ) -> StoreResult<Vec<VersionStats>>;
    /// Newest first; `before` pages by id.
    async fn invocations(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<InvocationRow>>;
    /// Deletes what has outlived its retention: invocation records and
    /// plugin logs, remembered carrier ids and early reports, expired
    /// number claims, closed reply windows. Returns the rows removed.
    async fn prune(&self, retention: &Retention) -> StoreResult<u64>;
    /// Which of `recipients` opted out of the tenant (tenant-wide, or of `number`).
    async fn opted_out(&self, tenant_id: &str, recipients: &[String], number: &str) -> StoreResult<Vec<String>>;
    async fn list_opt_outs(&self, tenant_id: &str, limit: u32, after: Option<&str>) -> StoreResult<Vec<OptOutRow>>;
    /// Adds opt-outs (existing ones are kept); returns how many were new.
    async fn import_opt_outs(&self, tenant_id: &str, rows: &[OptOutRow]) -> StoreResult<u64>;
    async fn bump_counter(&self, tenant_id: &str, name: &str, by: i64) -> StoreResult<()>;
    async fn counters(&self, tenant_id: &str) -> StoreResult<Vec<(String, i64)>>;
    /// (keys, bytes) the tenant's plugins keep in kv.
    async fn kv_usage(&self, tenant_id: &str) -> StoreResult<(i64, i64)>;
    async fn timers_pending(&self, tenant_id: &str) -> StoreResult<i64>;
    async fn sends_since(&self, tenant_id: &str, since: Millis) -> StoreResult<i64>;
    async fn cron_last_fire(&self, plugin_id: &str, schedule: &str) -> StoreResult<Option<Millis>>;
    /// Claims the fire at `fire_at` (only if the last recorded fire is
    /// `previous`) and inserts its event, in one transaction. False if
    /// another node (or an earlier life of this one) claimed it.
    async fn fire_cron(
        &self,
        plugin_id: &str,
        schedule: &str,
        previous: Option<Millis>,
        fire_at: Millis,
        event: &NewEvent,
        lease: &Lease,
    ) -> StoreResult<bool>;
}

/// Recorded invocations and replays of them (`runtime::tape`, `deploy::replay`).
#[async_trait]
pub trait Recordings {
    /// Recorded invocations of a plugin that `selection` takes, oldest
    /// first, after id `after`.
    async fn recorded_invocations(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        selection: &RecordingSelection,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedInvocationRow>>;
    async fn count_recorded(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        selection: &RecordingSelection,
    ) -> StoreResult<i64>;
    async fn create_replay(&self, replay: &ReplayRow) -> StoreResult<()>;
    /// Writes a replay's status, progress, report and error.
    async fn update_replay(&self, replay: &ReplayRow) -> StoreResult<()>;
    async fn replay(&self, tenant_id: &str, id: &str) -> StoreResult<Option<ReplayRow>>;
    /// A plugin's replays, newest first.
    async fn replays(&self, tenant_id: &str, plugin_id: &str, limit: u32) -> StoreResult<Vec<ReplayRow>>;
}

/// Reads for the API.
#[async_trait]
pub trait Queries {
    /// Work waiting in each queue (`events`, `outbox`, `timers`,
    /// `webhooks`): how many items, and the earliest due time among them.
    async fn queue_depths(&self) -> StoreResult<Vec<QueueDepthRow>>;
    async fn get_message(&self, tenant_id: &str, id: &str) -> StoreResult<Option<MessageView>>;
    async fn list_messages(&self, tenant_id: &str, filter: &MessageFilter) -> StoreResult<Vec<MessageView>>;
    async fn get_event(&self, tenant_id: &str, id: &str) -> StoreResult<Option<EventView>>;
    async fn events_for_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<Vec<EventView>>;
    /// A plugin's events in `status` (`dead`, `pending`), newest first;
    /// `before` pages by id.
    async fn list_events(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        status: &str,
        limit: u32,
        before: Option<&str>,
    ) -> StoreResult<Vec<EventView>>;
    /// A plugin's kv keys from `prefix`, in key order, after `after`.
    async fn kv_entries(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<KvRow>>;
    /// A plugin's pending timers, soonest first; `after` is the last
    /// (due time, key) of the previous page.
    async fn pending_timers(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<TimerRow>>;
}
