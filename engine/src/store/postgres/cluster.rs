//! Coordination through the database: directory-change notices over
//! `LISTEN`/`NOTIFY`, and cluster-wide token buckets and counters.

use super::PgStore;
use crate::store::{Cluster, StoreResult, Tokens};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel directory changes are announced on.
pub const DIRECTORY_CHANNEL: &str = "switchboard_directory";

#[async_trait]
impl Cluster for PgStore {
    fn shared(&self) -> bool {
        true
    }

    async fn announce_directory_change(&self) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')").bind(DIRECTORY_CHANNEL).execute(&self.pool).await?;
        Ok(())
    }

    async fn directory_changes(&self) -> StoreResult<Option<mpsc::Receiver<()>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(DIRECTORY_CHANNEL).await?;
        // Notices coalesce: one pending is as good as many.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                // Ends with the node: once nobody listens, the connection goes.
                let received = tokio::select! {
                    _ = tx.closed() => return,
                    received = listener.try_recv() => received,
                };
                match received {
                    Ok(Some(_)) => {}
                    // The connection dropped (the next call reconnects and
                    // listens again): whatever was said meanwhile is lost,
                    // so reload as if told.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "directory notices: connection lost, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                let _ = tx.try_send(());
            }
        });
        Ok(Some(rx))
    }

    async fn take_tokens(&self, key: &str, rate: u32, burst: u32, want: u32) -> StoreResult<Tokens> {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        loop {
            let row = sqlx::query(
                "WITH now AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS ms), \
                 b AS (SELECT key, LEAST($3, tokens + GREATEST(0, (SELECT ms FROM now) - updated_at) * $2 / 1000.0) \
                       AS avail FROM rate_buckets WHERE key = $1 FOR UPDATE) \
                 UPDATE rate_buckets r SET tokens = b.avail - LEAST($4, FLOOR(b.avail)), \
                 updated_at = GREATEST(r.updated_at, (SELECT ms FROM now)) \
                 FROM b WHERE r.key = b.key \
                 RETURNING LEAST($4, FLOOR(b.avail))::BIGINT, b.avail - LEAST($4, FLOOR(b.avail))",
            )
            .bind(key)
            .bind(rate)
            .bind(burst)
            .bind(f64::from(want))
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = row {
                return Ok(Tokens { granted: r.get::<i64, _>(0) as u32, left: r.get(1) });
            }
            // First use: the bucket starts full.
            sqlx::query(
                "INSERT INTO rate_buckets (key, tokens, updated_at) \
                 VALUES ($1, $2, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(burst)
            .execute(&self.pool)
            .await?;
        }
    }

    async fn count_within(&self, key: &str, period: i64, n: u64, limit: u64) -> StoreResult<Option<u64>> {
        let used: Option<i64> = sqlx::query_scalar(
            "INSERT INTO rate_counters (key, period, used) SELECT $1, $2, $3 WHERE $3 <= $4 \
             ON CONFLICT (key, period) DO UPDATE SET used = rate_counters.used + excluded.used \
             WHERE rate_counters.used + excluded.used <= $4 RETURNING used",
        )
        .bind(key)
        .bind(period)
        .bind(n as i64)
        .bind(limit as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(used.map(|u| u as u64))
    }
}
