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

pub(crate) mod cluster;
pub mod scratch;

use super::StoreResult;
use futures::future::BoxFuture;
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

/// One pool for reads and writes: PostgreSQL takes many writers.
impl super::sql::Backend for PgStore {
    type Db = sqlx::Postgres;
    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

/// Claims skip what other nodes hold; read-then-write steps lock rows or
/// take transaction-scoped advisory locks, in one order for every caller
/// (no deadlocks).
impl super::sql::Dialect for sqlx::Postgres {
    const STATUS_RECORD_ORDER: &str = "id";
    const LOCK_ROWS: &str = "FOR UPDATE";
    const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";

    fn lock_keys<'c>(conn: &'c mut PgConnection, keys: &'c [String]) -> BoxFuture<'c, StoreResult<()>> {
        Box::pin(async move {
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
        })
    }
}
