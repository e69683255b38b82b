//! The PostgreSQL backend: several nodes on one database.
//!
//! Same tables and behaviour as the SQLite backend; what differs is what
//! many writers at once need. Claims take rows with `FOR UPDATE SKIP
//! LOCKED`, so nodes never wait on each other's work. Read-then-write steps
//! that SQLite's single writer made safe take a row lock or a transaction
//! advisory lock ([`lock_keys`]). Migrations run under sqlx's advisory lock,
//! so the first node to start migrates and the others wait. Directory
//! changes are announced with `NOTIFY` ([`cluster`]), and shared rate limits
//! live in a table of token buckets.
//!
//! Pool sizing: each node holds up to `max_connections` (default 16, or the
//! `database_max_connections` setting) plus one listening connection. Keep
//! nodes × (pool + 1) under the server's `max_connections` (100 by default).
//! sqlx prepares each statement once per connection and caches it.

mod accounts;
pub(crate) mod cluster;
mod completions;
mod events;
mod governance;
mod outbound;
mod outbox;
mod plugins;
mod queries;
pub mod scratch;
mod status;
mod tenants;

use super::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node when not configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open_url(url: &str, max_connections: Option<u32>) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("switchboard");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        // sqlx holds an advisory lock while migrating: nodes starting
        // together migrate once, the rest wait and find nothing to do.
        MIGRATIONS.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_as(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
        _ => StoreError::Database(e),
    }
}

/// Takes transaction-scoped advisory locks on `keys`, in one order for
/// every caller (no deadlocks). Serialises read-then-write steps on the
/// same thing across nodes.
pub(super) async fn lock_keys(conn: &mut PgConnection, keys: &[String]) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM \
         (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS ordered",
    )
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows per multi-row INSERT: keeps statements well under PostgreSQL's
/// bound parameter limit (65,535) whatever the column count.
const INSERT_CHUNK: usize = 500;

/// Runs a transaction again when PostgreSQL aborted it to break a deadlock
/// or a serialization conflict with another node's (its work was undone,
/// so running it again is safe). Batches from several nodes can touch the
/// same rows (a tenant's balance) in different orders.
pub(super) async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries = 0u64;
    loop {
        tries += 1;
        match transaction().await {
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if tries < 5 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tracing::debug!(error = %e, "transaction aborted by a conflict with another node; retrying");
                tokio::time::sleep(Duration::from_millis(5 * tries)).await;
            }
            other => return other,
        }
    }
}
