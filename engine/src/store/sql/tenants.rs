//! Tenants, their numbers, API keys and number claims.

use super::{conflict_as, for_every_backend};
use crate::store::*;
use sqlx::Row;

for_every_backend! {
impl Tenants {
    async fn create_tenant(&self, t: &NewTenant) -> StoreResult<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.created_at)
            .execute(self.writer())
            .await
            .map_err(conflict_as("tenant"))?;
        Ok(())
    }

    async fn count_tenants(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants").fetch_one(self.reader()).await?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, status, created_at, settings FROM tenants ORDER BY created_at, id")
            .fetch_all(self.reader())
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
        let mut tx = self.writer().begin().await?;
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
            sqlx::query("SELECT number, tenant_id, connector, is_default, sms_url FROM numbers")
                .fetch_all(self.reader())
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| NumberRow {
                number: r.get(0),
                tenant_id: r.get(1),
                connector: r.get(2),
                is_default: r.get(3),
                sms_url: r.get(4),
            })
            .collect())
    }

    async fn set_sms_url(&self, tenant_id: &str, number: &str, url: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE numbers SET sms_url = $1 WHERE tenant_id = $2 AND number = $3")
            .bind(url)
            .bind(tenant_id)
            .bind(number)
            .execute(self.writer())
            .await?;
        Ok(super::RowsAffected::rows_affected(&done) > 0)
    }

    async fn create_api_key(&self, k: &NewApiKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, mode, label, created_at, account_sid, sealed_token) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.hash)
        .bind(&k.prefix)
        .bind(&k.mode)
        .bind(&k.label)
        .bind(k.created_at)
        .bind(k.twilio.as_ref().map(|t| t.account_sid.as_str()))
        .bind(k.twilio.as_ref().map(|t| t.sealed_token.as_slice()))
        .execute(self.writer())
        .await
        .map_err(conflict_as("api key"))?;
        Ok(())
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, key_hash, mode, account_sid, sealed_token FROM api_keys WHERE revoked_at IS NULL",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let twilio = match (r.get::<Option<String>, _>(4), r.get::<Option<Vec<u8>>, _>(5)) {
                    (Some(account_sid), Some(sealed_token)) => Some(TwilioCredential { account_sid, sealed_token }),
                    _ => None,
                };
                ApiKeyRow { id: r.get(0), tenant_id: r.get(1), hash: r.get(2), mode: r.get(3), twilio }
            })
            .collect())
    }

    async fn put_number_claim(&self, c: &NumberClaim) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO number_claims (tenant_id, number, connector, is_default, code_hash, attempts, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT (tenant_id, number) DO UPDATE SET \
             connector = excluded.connector, is_default = excluded.is_default, code_hash = excluded.code_hash, \
             attempts = 0, expires_at = excluded.expires_at, created_at = excluded.created_at",
        )
        .bind(&c.tenant_id)
        .bind(&c.number)
        .bind(&c.connector)
        .bind(c.is_default)
        .bind(&c.code_hash)
        .bind(c.expires_at)
        .bind(c.created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn number_claim(&self, tenant_id: &str, number: &str) -> StoreResult<Option<NumberClaim>> {
        let row = sqlx::query(
            "SELECT connector, is_default, code_hash, attempts, expires_at, created_at FROM number_claims \
             WHERE tenant_id = $1 AND number = $2",
        )
        .bind(tenant_id)
        .bind(number)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|r| NumberClaim {
            tenant_id: tenant_id.to_string(),
            number: number.to_string(),
            connector: r.get(0),
            is_default: r.get(1),
            code_hash: r.get(2),
            attempts: r.get::<i64, _>(3) as u32,
            expires_at: r.get(4),
            created_at: r.get(5),
        }))
    }

    async fn count_claim_attempt(&self, tenant_id: &str, number: &str) -> StoreResult<()> {
        sqlx::query("UPDATE number_claims SET attempts = attempts + 1 WHERE tenant_id = $1 AND number = $2")
            .bind(tenant_id)
            .bind(number)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn delete_number_claim(&self, tenant_id: &str, number: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM number_claims WHERE tenant_id = $1 AND number = $2")
            .bind(tenant_id)
            .bind(number)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
}
