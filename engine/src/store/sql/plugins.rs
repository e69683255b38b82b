//! Plugins, their versions and routes, components, kv reads, timers and logs.

use super::{Dialect, for_every_backend};
use crate::ids;
use crate::store::*;
use sqlx::Row;

for_every_backend! {
impl Plugins {
    async fn put_component(&self, hash: &str, wasm: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO components (hash, wasm, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(hash)
        .bind(wasm)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn get_component(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT wasm FROM components WHERE hash = $1")
            .bind(hash)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn deploy_plugin_version(&self, v: &NewPluginVersion) -> StoreResult<DeployedVersion> {
        let mut tx = self.writer().begin().await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT id FROM plugins WHERE tenant_id = $1 AND name = $2")
            .bind(&v.tenant_id)
            .bind(&v.name)
            .fetch_optional(&mut *tx)
            .await?;
        let plugin_id = match existing {
            Some(id) => id,
            None => {
                let id = ids::new_id("plg");
                sqlx::query("INSERT INTO plugins (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&id)
                    .bind(&v.tenant_id)
                    .bind(&v.name)
                    .bind(v.created_at)
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        let version_id = ids::new_id("ver");
        sqlx::query(
            "INSERT INTO plugin_versions (id, plugin_id, version, component_hash, manifest, config, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&version_id)
        .bind(&plugin_id)
        .bind(&v.version)
        .bind(&v.component_hash)
        .bind(&v.manifest_json)
        .bind(&v.config_json)
        .bind(v.created_at)
        .execute(&mut *tx)
        .await
        .map_err(super::conflict_as("plugin version"))?;
        if v.activate {
            sqlx::query("UPDATE plugins SET active_version_id = $1, status = 'active', status_reason = NULL, consecutive_failures = 0 WHERE id = $2")
                .bind(&version_id)
                .bind(&plugin_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM routes WHERE plugin_id = $1").bind(&plugin_id).execute(&mut *tx).await?;
            for route in &v.routes {
                sqlx::query("INSERT INTO routes (tenant_id, plugin_id, kind, pattern) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(&v.tenant_id)
                    .bind(&plugin_id)
                    .bind(route.kind.as_str())
                    .bind(&route.pattern)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(DeployedVersion { plugin_id, version_id })
    }

    async fn active_plugins(&self) -> StoreResult<Vec<PluginVersionRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON v.id = p.active_version_id",
            super::governance::PLUGIN_VERSION_SELECT
        )))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(super::governance::plugin_version_row::<B::Db>).collect())
    }

    async fn kv_get(&self, tenant_id: &str, plugin_id: &str, key: &str) -> StoreResult<Option<KvEntry>> {
        let row = sqlx::query("SELECT value, version FROM kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
            .bind(tenant_id)
            .bind(plugin_id)
            .bind(key)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(|r| KvEntry { value: r.get(0), version: r.get(1) }))
    }

    async fn kv_put(&self, tenant_id: &str, plugin_id: &str, key: &str, value: &[u8], now: Millis) -> StoreResult<()> {
        // Under the key's lock, like a completion's write (see `super::state`).
        let mut tx = self.writer().begin().await?;
        <B::Db as Dialect>::lock_keys(&mut tx, &[super::state::kv_lock(tenant_id, plugin_id, key)]).await?;
        sqlx::query(super::state::KV_UPSERT)
            .bind(tenant_id)
            .bind(plugin_id)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn kv_list(&self, tenant_id: &str, plugin_id: &str, prefix: &str, limit: u32) -> StoreResult<Vec<String>> {
        // Range scan on the primary key: [prefix, prefix + U+10FFFF).
        let upper = format!("{prefix}\u{10FFFF}");
        Ok(sqlx::query_scalar(
            "SELECT key FROM kv WHERE tenant_id = $1 AND plugin_id = $2 AND key >= $3 AND key < $4 ORDER BY key LIMIT $5",
        )
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(prefix)
        .bind(upper)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?)
    }

    async fn timer_pending(&self, tenant_id: &str, plugin_id: &str, key: &str) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM timers WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3)",
        )
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(key)
        .fetch_one(self.reader())
        .await?)
    }

    async fn plugin_logs(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        limit: u32,
        after: Option<i64>,
    ) -> StoreResult<Vec<LogRow>> {
        let sql = match after {
            None => {
                "SELECT id, event_id, level, message, at FROM plugin_logs WHERE tenant_id = $1 AND plugin_id = $2 \
                 AND id > $3 ORDER BY id DESC LIMIT $4"
            }
            Some(_) => {
                "SELECT id, event_id, level, message, at FROM plugin_logs WHERE tenant_id = $1 AND plugin_id = $2 \
                 AND id > $3 ORDER BY id LIMIT $4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(tenant_id)
            .bind(plugin_id)
            .bind(after.unwrap_or(0))
            .bind(limit as i64)
            .fetch_all(self.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| LogRow { id: r.get(0), event_id: r.get(1), level: r.get(2), message: r.get(3), at: r.get(4) })
            .collect())
    }
}
}
