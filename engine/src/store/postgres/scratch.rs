//! Throwaway databases on a PostgreSQL server, for tests and benchmarks:
//! each gets a database of its own, dropped when done.

use crate::store::StoreResult;
use sqlx::{Connection, Executor, PgConnection};

/// A database created for one test or benchmark run; dropped (with any
/// connections still open to it) when this is dropped.
pub struct ScratchDatabase {
    /// Where nodes connect.
    pub url: String,
    server_url: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates an empty database on the server of `server_url` (a URL
    /// whose user may create databases).
    pub async fn create(server_url: &str) -> StoreResult<Self> {
        let name = format!("switchboard_scratch_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(server_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
        conn.close().await?;
        let mut url = url::Url::parse(server_url)
            .map_err(|e| crate::store::StoreError::UnsupportedUrl(format!("{server_url}: {e}")))?;
        url.set_path(&name);
        Ok(ScratchDatabase { url: url.to_string(), server_url: server_url.to_string(), name })
    }

    async fn drop_database(server_url: &str, name: &str) -> StoreResult<()> {
        let mut conn = PgConnection::connect(server_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await?;
        conn.close().await?;
        Ok(())
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop may run inside a runtime (where blocking on one is not
        // allowed) or outside any: a thread of its own works in both.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(Self::drop_database(&server_url, &name))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            tracing::warn!(database = %self.name, error = %e, "could not drop the scratch database");
        }
    }
}
