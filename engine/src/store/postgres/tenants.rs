use super::{PgStore, conflict_as};
use crate::store::*;
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl Tenants for PgStore {
    async fn create_tenant(&self, t: &NewTenant) -> StoreResult<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.created_at)
            .execute(&self.pool)
            .await
            .map_err(conflict_as("tenant"))?;
        Ok(())
    }

    async fn count_tenants(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants").fetch_one(&self.pool).await?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, status, created_at, settings FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Tenant {
                id: r.get(0),
                name: r.get(1),
                status: r.get(2),
                created_at: r.get(3),
                settings_json: r.get(4),
            })
            .collect())
    }

    async fn add_number(&self, n: &NewNumber) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if n.is_default {
            sqlx::query("UPDATE numbers SET is_default = false WHERE tenant_id = $1")
                .bind(&n.tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO numbers (number, tenant_id, connector, is_default, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&n.number)
        .bind(&n.tenant_id)
        .bind(&n.connector)
        .bind(n.is_default)
        .bind(n.created_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_as("number"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_numbers(&self) -> StoreResult<Vec<NumberRow>> {
        let rows =
            sqlx::query("SELECT number, tenant_id, connector, is_default FROM numbers").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| NumberRow { number: r.get(0), tenant_id: r.get(1), connector: r.get(2), is_default: r.get(3) })
            .collect())
    }

    async fn create_api_key(&self, k: &NewApiKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, mode, label, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.hash)
        .bind(&k.prefix)
        .bind(&k.mode)
        .bind(&k.label)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict_as("api key"))?;
        Ok(())
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query("SELECT id, tenant_id, key_hash, mode FROM api_keys WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiKeyRow { id: r.get(0), tenant_id: r.get(1), hash: r.get(2), mode: r.get(3) })
            .collect())
    }
}
