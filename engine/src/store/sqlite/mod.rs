//! The SQLite backend: the zero-configuration default for one node.
//!
//! WAL journal, `synchronous = FULL` (an acknowledged message survives power
//! loss). Writes go through one connection (SQLite has one writer anyway;
//! queuing in the pool beats `SQLITE_BUSY` retries), reads through a small
//! pool of others. Callers batch writes into few transactions (group
//! commit): one fsync costs far more than the rows it carries.

use super::StoreResult;
use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Prepared statements the writer connection keeps.
const WRITER_STATEMENT_CACHE: usize = 2048;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    opt_outs: OptOutIndex,
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
        // Batches are written with multi-row statements whose width follows
        // the batch: one shape per kind of statement and batch size. With
        // sqlx's default of 100 cached statements they pushed each other
        // out and were prepared again and again (~14 % of the writer
        // thread's time under load).
        let writer_options = options.clone().statement_cache_capacity(WRITER_STATEMENT_CACHE);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Our only writer is never shared: no ping round trip before each use.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await?;
        MIGRATIONS.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        let opt_outs = OptOutIndex::default();
        for r in sqlx::query("SELECT tenant_id, recipient FROM opt_outs").fetch_all(&reader).await? {
            opt_outs.add(r.get(0), r.get(1));
        }
        Ok(SqliteStore { writer, reader, opt_outs })
    }
}

use super::sql::governance::OptOutIndex;

/// One writer: nothing to lock against, nothing to skip.
impl super::sql::Dialect for sqlx::Sqlite {
    const STATUS_RECORD_ORDER: &str = "rowid";
    const LOCK_ROWS: &str = "";
    const SKIP_LOCKED: &str = "";

    fn lock_keys<'c>(_: &'c mut sqlx::SqliteConnection, _: &'c [String]) -> BoxFuture<'c, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl super::sql::Backend for SqliteStore {
    type Db = sqlx::Sqlite;
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
    fn reader(&self) -> &SqlitePool {
        &self.reader
    }
    fn opt_out_index(&self) -> Option<&OptOutIndex> {
        Some(&self.opt_outs)
    }
}

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
