//! The SQLite backend: the zero-configuration default for one node.
//!
//! WAL journal, `synchronous = FULL` (an acknowledged message survives power
//! loss). Writes go through one connection (SQLite has one writer anyway;
//! queuing in the pool beats `SQLITE_BUSY` retries), reads through a small
//! pool of others. Callers batch writes into few transactions (group
//! commit): one fsync costs far more than the rows it carries.

mod accounts;
mod completions;
mod events;
mod governance;
mod outbound;
mod outbox;
mod plugins;
mod queries;
mod status;
mod tenants;

use super::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    opt_outs: governance::OptOutIndex,
}

impl SqliteStore {
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Our only writer is never shared: no ping round trip before each use.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        MIGRATIONS.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        let opt_outs = governance::OptOutIndex::load(&reader).await?;
        Ok(SqliteStore { writer, reader, opt_outs })
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_as(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
        _ => StoreError::Database(e),
    }
}

/// Rows per multi-row INSERT: keeps statements well under SQLite's bound
/// parameter limit whatever the column count.
const INSERT_CHUNK: usize = 500;

/// One process owns a SQLite database: there is no one to coordinate with.
#[async_trait::async_trait]
impl super::Cluster for SqliteStore {
    fn shared(&self) -> bool {
        false
    }

    async fn announce_directory_change(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn directory_changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }

    async fn take_tokens(&self, _key: &str, _rate: u32, _burst: u32, want: u32) -> StoreResult<super::Tokens> {
        Ok(super::Tokens { granted: want, left: 0.0 })
    }

    async fn count_within(&self, _key: &str, _period: i64, n: u64, _limit: u64) -> StoreResult<Option<u64>> {
        Ok(Some(n))
    }
}
