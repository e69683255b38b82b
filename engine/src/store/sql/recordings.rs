//! Recorded invocations, as replays read them, and the replays themselves.

use super::for_every_backend;
use crate::clock::Millis;
use crate::store::*;
use sqlx::{QueryBuilder, Row};

for_every_backend! {
impl Recordings {
    async fn recorded_invocations(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        selection: &RecordingSelection,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedInvocationRow>> {
        let mut q: QueryBuilder<B::Db> = QueryBuilder::new(
            "SELECT id, event_id, version_id, started_at, duration_us, fuel_used, memory_peak, outcome, recording \
             FROM invocations WHERE recording IS NOT NULL AND tenant_id = ",
        );
        q.push_bind(tenant_id).push(" AND plugin_id = ").push_bind(plugin_id).push(" AND id > ").push_bind(after);
        push_selection(&mut q, selection);
        q.push(" ORDER BY id LIMIT ").push_bind(limit as i64);
        let rows = q.build().fetch_all(self.reader()).await?;
        Ok(rows
            .into_iter()
            .map(|r| RecordedInvocationRow {
                id: r.get(0),
                event_id: r.get(1),
                version_id: r.get(2),
                started_at: r.get(3),
                duration_us: r.get(4),
                fuel_used: r.get(5),
                memory_peak: r.get(6),
                outcome: r.get(7),
                recording: r.get(8),
            })
            .collect())
    }

    async fn count_recorded(&self, tenant_id: &str, plugin_id: &str, selection: &RecordingSelection) -> StoreResult<i64> {
        let mut q: QueryBuilder<B::Db> =
            QueryBuilder::new("SELECT COUNT(*) FROM invocations WHERE recording IS NOT NULL AND tenant_id = ");
        q.push_bind(tenant_id).push(" AND plugin_id = ").push_bind(plugin_id);
        push_selection(&mut q, selection);
        Ok(q.build().fetch_one(self.reader()).await?.get(0))
    }

    async fn create_replay(&self, r: &ReplayRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO replays (id, tenant_id, plugin_id, version_id, version, status, selection, total, done, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.plugin_id)
        .bind(&r.version_id)
        .bind(&r.version)
        .bind(&r.status)
        .bind(&r.selection)
        .bind(r.total)
        .bind(r.done)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn update_replay(&self, r: &ReplayRow) -> StoreResult<()> {
        sqlx::query(
            "UPDATE replays SET status = $1, done = $2, report = $3, error = $4, updated_at = $5, finished_at = $6 \
             WHERE id = $7",
        )
        .bind(&r.status)
        .bind(r.done)
        .bind(&r.report)
        .bind(&r.error)
        .bind(r.updated_at)
        .bind(r.finished_at)
        .bind(&r.id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn replay(&self, tenant_id: &str, id: &str) -> StoreResult<Option<ReplayRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{REPLAY_SELECT} WHERE tenant_id = $1 AND id = $2")))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(|r| replay_row::<B::Db>(&r)))
    }

    async fn replays(&self, tenant_id: &str, plugin_id: &str, limit: u32) -> StoreResult<Vec<ReplayRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REPLAY_SELECT} WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(|r| replay_row::<B::Db>(r)).collect())
    }
}
}

const REPLAY_SELECT: &str = "SELECT id, tenant_id, plugin_id, version_id, version, status, selection, total, done, \
    report, error, created_at, updated_at, finished_at FROM replays";

for_every_backend! {
fn replay_row(r: &super::DbRow<DB>) -> ReplayRow {
    ReplayRow {
        id: r.get(0),
        tenant_id: r.get(1),
        plugin_id: r.get(2),
        version_id: r.get(3),
        version: r.get(4),
        status: r.get(5),
        selection: r.get(6),
        total: r.get(7),
        done: r.get(8),
        report: r.get(9),
        error: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
        finished_at: r.get::<Option<Millis>, _>(13),
    }
}
}

for_every_backend! {
fn push_selection(q: &mut QueryBuilder<DB>, selection: &RecordingSelection) -> () {
    if let Some(since) = selection.since {
        q.push(" AND started_at >= ").push_bind(since);
    }
    if !selection.event_ids.is_empty() {
        q.push(" AND event_id IN (");
        let mut ids = q.separated(", ");
        for id in &selection.event_ids {
            ids.push_bind(id.clone());
        }
        q.push(")");
    }
}
}
