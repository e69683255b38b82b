//! Audit records, plugin status and invocation records, retention, consent (opt-outs), counters and kv usage, cron fires.

use super::RowsAffected;
use super::conflict_as;
use super::events::insert_event_rows;
use super::{Conn, DbRow, for_every_backend};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{QueryBuilder, Row};

/// Which (tenant, recipient) pairs have any opt-out, in memory, so that the
/// check every send makes needs no query for the many recipients who never
/// opted out. Pairs are added before the transaction that stores them
/// commits and never removed (an opt-in leaves a stale entry, which only
/// costs a query): the index may over-report, never under-report. Only a
/// backend one process owns (SQLite) keeps one: every opt-out passes
/// through it.
#[derive(Default)]
pub struct OptOutIndex(std::sync::RwLock<std::collections::HashSet<u64>>);

impl OptOutIndex {
    fn key(tenant_id: &str, recipient: &str) -> u64 {
        use std::hash::BuildHasher;
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one((tenant_id, recipient))
    }

    pub(in crate::store) fn add(&self, tenant_id: &str, recipient: &str) {
        self.0.write().expect("opt-out index").insert(Self::key(tenant_id, recipient));
    }

    fn may_have(&self, tenant_id: &str, recipient: &str) -> bool {
        self.0.read().expect("opt-out index").contains(&Self::key(tenant_id, recipient))
    }
}

for_every_backend! {
/// Replaces a plugin's routes with `routes` (its tenant's, inside the caller's transaction).
async fn replace_routes(conn: &mut Conn<DB>, plugin_id: &str, routes: &[RouteRow]) -> StoreResult<()> {
    let tenant_id: String =
        sqlx::query_scalar("SELECT tenant_id FROM plugins WHERE id = $1").bind(plugin_id).fetch_one(&mut *conn).await?;
    sqlx::query("DELETE FROM routes WHERE plugin_id = $1").bind(plugin_id).execute(&mut *conn).await?;
    for route in routes {
        sqlx::query(
            "INSERT INTO routes (tenant_id, plugin_id, kind, pattern) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&tenant_id)
        .bind(plugin_id)
        .bind(route.kind.as_str())
        .bind(&route.pattern)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
}

/// Clears an invocation's recording (the record stays).
const CLEAR_RECORDINGS: &str = "UPDATE invocations SET recording = NULL, recording_bytes = 0";

for_every_backend! {
/// Runs `sql` (`$1` its bound, `$2` the batch size) until a run changes
/// fewer rows than a batch; each run is a transaction of its own on a
/// connection taken for it alone, so whoever waits for the connection goes
/// between two runs. Returns the rows changed.
async fn in_batches(pool: &sqlx::Pool<DB>, sql: &str, bound: i64, batch: u32) -> StoreResult<u64> {
    let mut changed = 0;
    loop {
        let mut conn = pool.acquire().await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(bound)
            .bind(batch as i64)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        drop(conn);
        changed += n;
        if n < batch as u64 {
            return Ok(changed);
        }
        tokio::task::yield_now().await;
    }
}
}

pub(in crate::store) const PLUGIN_VERSION_SELECT: &str = "SELECT p.id, p.tenant_id, p.name, p.status, v.id, v.version, \
    v.component_hash, v.manifest, v.config, p.status_reason, v.created_at FROM plugins p JOIN plugin_versions v";

for_every_backend! {
pub(in crate::store) fn plugin_version_row(r: &DbRow<DB>) -> PluginVersionRow {
    PluginVersionRow {
        plugin_id: r.get(0),
        tenant_id: r.get(1),
        name: r.get(2),
        status: r.get(3),
        version_id: r.get(4),
        version: r.get(5),
        component_hash: r.get(6),
        manifest_json: r.get(7),
        config_json: r.get(8),
        status_reason: r.get(9),
        created_at: r.get(10),
    }
}
}

for_every_backend! {
impl Governance {
    async fn audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_log (actor, action, target, detail, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.detail)
            .bind(e.at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn audit_log(&self, limit: u32, before: Option<i64>) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, actor, action, target, detail, at FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRow {
                id: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                target: r.get(3),
                detail: r.get(4),
                at: r.get(5),
            })
            .collect())
    }

    async fn set_tenant_status(&self, tenant_id: &str, status: &str) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE tenants SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(tenant_id)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn plugin_versions(&self, tenant_id: &str, name: &str) -> StoreResult<Vec<PluginVersionRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PLUGIN_VERSION_SELECT} ON v.plugin_id = p.id WHERE p.tenant_id = $1 AND p.name = $2 ORDER BY v.created_at, v.id"
        )))
        .bind(tenant_id)
        .bind(name)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(plugin_version_row::<B::Db>).collect())
    }

    async fn plugin_version(&self, plugin_id: &str, version_id: &str) -> StoreResult<Option<PluginVersionRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PLUGIN_VERSION_SELECT} ON v.plugin_id = p.id WHERE p.id = $1 AND v.id = $2"
        )))
        .bind(plugin_id)
        .bind(version_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.as_ref().map(plugin_version_row::<B::Db>))
    }

    async fn activate_version(&self, plugin_id: &str, version_id: &str, routes: &[RouteRow]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        // An explicit switch ends any canary.
        sqlx::query("UPDATE plugins SET active_version_id = $1, canary_version_id = NULL, canary = NULL WHERE id = $2")
            .bind(version_id)
            .bind(plugin_id)
            .execute(&mut *tx)
            .await?;
        replace_routes::<B::Db>(&mut tx, plugin_id, routes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn canaries(&self) -> StoreResult<Vec<(PluginVersionRow, String)>> {
        let plans: std::collections::HashMap<String, String> =
            sqlx::query("SELECT id, canary FROM plugins WHERE canary_version_id IS NOT NULL AND canary IS NOT NULL")
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
        if plans.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{PLUGIN_VERSION_SELECT} ON v.id = p.canary_version_id")))
            .fetch_all(self.reader())
            .await?;
        Ok(rows
            .iter()
            .map(plugin_version_row::<B::Db>)
            .filter_map(|row| plans.get(&row.plugin_id).cloned().map(|plan| (row, plan)))
            .collect())
    }

    async fn start_canary(&self, plugin_id: &str, version_id: &str, plan: &str) -> StoreResult<()> {
        sqlx::query("UPDATE plugins SET canary_version_id = $1, canary = $2 WHERE id = $3")
            .bind(version_id)
            .bind(plan)
            .bind(plugin_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn end_canary(&self, plugin_id: &str, version_id: &str, promote: Option<&[RouteRow]>) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let ended = sqlx::query(
            "UPDATE plugins SET canary_version_id = NULL, canary = NULL WHERE id = $1 AND canary_version_id = $2",
        )
        .bind(plugin_id)
        .bind(version_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !ended {
            return Ok(false);
        }
        match promote {
            Some(routes) => {
                sqlx::query("UPDATE plugins SET active_version_id = $1 WHERE id = $2")
                    .bind(version_id)
                    .bind(plugin_id)
                    .execute(&mut *tx)
                    .await?;
                replace_routes::<B::Db>(&mut tx, plugin_id, routes).await?;
            }
            None => {
                sqlx::query(
                    "UPDATE events SET version_id = NULL WHERE plugin_id = $1 AND version_id = $2 AND status = 'pending'",
                )
                .bind(plugin_id)
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn version_stats(&self, plugin_id: &str, version_ids: &[&str], since: Millis) -> StoreResult<Vec<VersionStats>> {
        let mut q: QueryBuilder<B::Db> = QueryBuilder::new(
            "SELECT version_id, COUNT(*), SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END), \
             CAST(SUM(duration_us) AS BIGINT) FROM invocations WHERE plugin_id = ",
        );
        q.push_bind(plugin_id).push(" AND started_at >= ").push_bind(since).push(" AND version_id IN (");
        let mut ids = q.separated(", ");
        for id in version_ids {
            ids.push_bind(id.to_string());
        }
        q.push(") GROUP BY version_id");
        let rows = q.build().fetch_all(self.reader()).await?;
        Ok(version_ids
            .iter()
            .map(|id| {
                let row = rows.iter().find(|r| r.get::<String, _>(0) == *id);
                let invocations: i64 = row.map_or(0, |r| r.get(1));
                let total_us: i64 = row.map_or(0, |r| r.get(3));
                VersionStats {
                    version_id: id.to_string(),
                    invocations,
                    failures: row.map_or(0, |r| r.get(2)),
                    mean_duration_us: if invocations > 0 { total_us as f64 / invocations as f64 } else { 0.0 },
                }
            })
            .collect())
    }

    async fn set_plugin_status(&self, plugin_id: &str, status: &str, reason: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE plugins SET status = $1, status_reason = $2, consecutive_failures = 0 WHERE id = $3")
            .bind(status)
            .bind(reason)
            .bind(plugin_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn invocations(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<InvocationRow>> {
        let rows = sqlx::query(
            "SELECT id, event_id, version_id, trigger, started_at, duration_us, fuel_used, memory_peak, outcome, error \
             FROM invocations WHERE tenant_id = $1 AND plugin_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| InvocationRow {
                id: r.get(0),
                event_id: r.get(1),
                version_id: r.get(2),
                trigger: r.get(3),
                started_at: r.get(4),
                duration_us: r.get(5),
                fuel_used: r.get(6),
                memory_peak: r.get(7),
                outcome: r.get(8),
                error: r.get(9),
            })
            .collect())
    }

    async fn prune(&self, r: &Retention) -> StoreResult<u64> {
        // Each batch is a transaction of its own on the writer, found
        // through an index: the writer is never held for longer than one
        // batch, however much has piled up (accepts and completions take
        // turns between batches).
        let mut removed = 0;
        for (table, key, condition, before) in [
            ("invocations", "id", "started_at < $1", r.records_before),
            ("plugin_logs", "id", "at < $1", r.records_before),
            ("inbound_receipts", "connector, provider_id", "at < $1", r.carrier_ids_before),
            ("pending_reports", "connector, provider_id, at", "at < $1", r.carrier_ids_before),
            ("number_claims", "tenant_id, number", "expires_at < $1", r.now),
            ("reply_windows", "number, sender", "window_start < $1", r.now - crate::store::REPLY_WINDOW_MS),
        ] {
            let sql = format!("DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {condition} LIMIT $2)");
            removed += in_batches(self.writer(), &sql, before, r.batch_rows).await?;
        }
        let recordings_past_age = format!(
            "{CLEAR_RECORDINGS} WHERE id IN (SELECT id FROM invocations \
             WHERE recording_bytes > 0 AND started_at < $1 LIMIT $2)"
        );
        removed += in_batches(self.writer(), &recordings_past_age, r.recordings_before, r.batch_rows).await?;
        // Newest first, each tenant keeps recordings up to its byte bound:
        // which ones go is read on a reader connection, without the writer.
        let over: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM (SELECT id, SUM(recording_bytes) OVER (PARTITION BY tenant_id ORDER BY id DESC) AS kept \
             FROM invocations WHERE recording_bytes > 0) ranked WHERE kept > $1",
        )
        .bind(r.recording_bytes_per_tenant)
        .fetch_all(self.reader())
        .await?;
        for ids in over.chunks(r.batch_rows as usize) {
            let mut q: QueryBuilder<B::Db> = QueryBuilder::new(format!("{CLEAR_RECORDINGS} WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
            removed += q.build().execute(self.writer()).await?.rows_affected();
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    async fn opted_out(&self, tenant_id: &str, recipients: &[String], number: &str) -> StoreResult<Vec<String>> {
        let mut found = Vec::new();
        // The index (where the backend keeps one) rules out most recipients
        // without a query.
        let recipients: Vec<&String> = match self.opt_out_index() {
            Some(index) => recipients.iter().filter(|r| index.may_have(tenant_id, r)).collect(),
            None => recipients.iter().collect(),
        };
        for chunk in recipients.chunks(500) {
            let mut q: QueryBuilder<B::Db> =
                QueryBuilder::new("SELECT DISTINCT recipient FROM opt_outs WHERE tenant_id = ");
            q.push_bind(tenant_id).push(" AND (scope = '' OR scope = ").push_bind(number).push(") AND recipient IN (");
            let mut list = q.separated(", ");
            for r in chunk {
                list.push_bind(r);
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                found.push(row.get(0));
            }
        }
        Ok(found)
    }

    async fn list_opt_outs(&self, tenant_id: &str, limit: u32, after: Option<&str>) -> StoreResult<Vec<OptOutRow>> {
        let rows = sqlx::query(
            "SELECT recipient, scope, source, keyword, at FROM opt_outs WHERE tenant_id = $1 AND recipient > $2 \
             ORDER BY recipient, scope LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| OptOutRow {
                recipient: r.get(0),
                scope: r.get(1),
                source: r.get(2),
                keyword: r.get(3),
                at: r.get(4),
            })
            .collect())
    }

    async fn import_opt_outs(&self, tenant_id: &str, rows: &[OptOutRow]) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await?;
        let mut added = 0;
        for r in rows {
            if let Some(index) = self.opt_out_index() {
                index.add(tenant_id, &r.recipient);
            }
            added += insert_opt_out::<B::Db>(&mut tx, tenant_id, r).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn bump_counter(&self, tenant_id: &str, name: &str, by: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenant_counters (tenant_id, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = tenant_counters.value + excluded.value",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(by)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn counters(&self, tenant_id: &str) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT name, value FROM tenant_counters WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn kv_usage(&self, tenant_id: &str) -> StoreResult<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) AS BIGINT) FROM kv WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(self.reader())
        .await?;
        Ok((r.get(0), r.get(1)))
    }

    async fn timers_pending(&self, tenant_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM timers WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(self.reader())
            .await?)
    }

    async fn sends_since(&self, tenant_id: &str, since: Millis) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND created_at >= $2 AND direction = 'outbound' AND mode = 'live'",
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_one(self.reader())
        .await?)
    }

    async fn cron_last_fire(&self, plugin_id: &str, schedule: &str) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar("SELECT last_fire_at FROM cron_state WHERE plugin_id = $1 AND schedule = $2")
            .bind(plugin_id)
            .bind(schedule)
            .fetch_optional(self.writer())
            .await?)
    }

    async fn fire_cron(
        &self,
        plugin_id: &str,
        schedule: &str,
        previous: Option<Millis>,
        fire_at: Millis,
        event: &NewEvent,
        lease: &Lease,
    ) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let claimed = match previous {
            None => sqlx::query(
                "INSERT INTO cron_state (plugin_id, schedule, last_fire_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(plugin_id)
            .bind(schedule)
            .bind(fire_at)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Some(prev) => sqlx::query(
                "UPDATE cron_state SET last_fire_at = $1 WHERE plugin_id = $2 AND schedule = $3 AND last_fire_at = $4",
            )
            .bind(fire_at)
            .bind(plugin_id)
            .bind(schedule)
            .bind(prev)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if claimed == 0 {
            return Ok(false);
        }
        insert_event_rows::<B::Db>(&mut tx, &[event], lease).await?;
        tx.commit().await?;
        Ok(true)
    }
}
}

for_every_backend! {
/// Records an opt-out (a repeat changes nothing); 1 if it is new.
pub(in crate::store) async fn insert_opt_out(conn: &mut Conn<DB>, tenant_id: &str, r: &OptOutRow) -> StoreResult<u64> {
    Ok(sqlx::query(
        "INSERT INTO opt_outs (tenant_id, recipient, scope, source, keyword, at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&r.recipient)
    .bind(&r.scope)
    .bind(&r.source)
    .bind(&r.keyword)
    .bind(r.at)
    .execute(&mut *conn)
    .await
    .map_err(conflict_as("opt-out"))?
    .rows_affected())
}
}
