//! What tenants manage through the API: keys, sender IDs, templates, balance, ledger, usage, idempotency records.

use super::RowsAffected;
use super::conflict_as;
use super::for_every_backend;
use super::status::{Entry, ledger_entry};
use crate::clock::Millis;
use crate::store::*;
use sqlx::Row;

for_every_backend! {
impl Accounts {
    async fn account(&self, tenant_id: &str) -> StoreResult<Option<AccountRow>> {
        let row =
            sqlx::query("SELECT id, name, balance, webhook_url, webhook_secret, settings FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map(|r| AccountRow {
            tenant_id: r.get(0),
            name: r.get(1),
            balance: r.get(2),
            webhook_url: r.get(3),
            webhook_secret: r.get(4),
            settings_json: r.get(5),
        }))
    }

    async fn set_webhook(&self, tenant_id: &str, url: Option<&str>, sealed_secret: Option<&[u8]>) -> StoreResult<()> {
        sqlx::query("UPDATE tenants SET webhook_url = $1, webhook_secret = COALESCE($2, webhook_secret) WHERE id = $3")
            .bind(url)
            .bind(sealed_secret)
            .bind(tenant_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn set_tenant_settings(&self, tenant_id: &str, settings_json: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
            .bind(settings_json)
            .bind(tenant_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn list_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyInfo>> {
        let rows = sqlx::query(
            "SELECT id, prefix, mode, label, created_at, revoked_at, account_sid FROM api_keys WHERE tenant_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiKeyInfo {
                id: r.get(0),
                prefix: r.get(1),
                mode: r.get(2),
                label: r.get(3),
                created_at: r.get(4),
                revoked_at: r.get(5),
                account_sid: r.get(6),
            })
            .collect())
    }

    async fn revoke_key(&self, tenant_id: &str, key_id: &str, at: Millis) -> StoreResult<bool> {
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                .bind(at)
                .bind(key_id)
                .bind(tenant_id)
                .execute(self.writer())
                .await?
                .rows_affected();
        Ok(n > 0)
    }

    async fn add_sender_id(&self, tenant_id: &str, sender_id: &str, status: &str, at: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sender_ids (tenant_id, sender_id, created_at, status, decided_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant_id)
        .bind(sender_id)
        .bind(at)
        .bind(status)
        .bind((status != "pending").then_some(at))
        .execute(self.writer())
        .await
        .map_err(conflict_as("sender ID"))?;
        Ok(())
    }

    async fn decide_sender_id(&self, tenant_id: &str, sender_id: &str, status: &str, at: Millis) -> StoreResult<bool> {
        let n =
            sqlx::query("UPDATE sender_ids SET status = $1, decided_at = $2 WHERE tenant_id = $3 AND sender_id = $4")
                .bind(status)
                .bind(at)
                .bind(tenant_id)
                .bind(sender_id)
                .execute(self.writer())
                .await
                .map_err(conflict_as("sender ID"))?
                .rows_affected();
        Ok(n > 0)
    }

    async fn delete_sender_id(&self, tenant_id: &str, sender_id: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM sender_ids WHERE tenant_id = $1 AND sender_id = $2")
            .bind(tenant_id)
            .bind(sender_id)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn list_sender_ids(&self) -> StoreResult<Vec<SenderIdRow>> {
        let rows = sqlx::query(
            "SELECT tenant_id, sender_id, status, created_at FROM sender_ids ORDER BY tenant_id, sender_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SenderIdRow { tenant_id: r.get(0), sender_id: r.get(1), status: r.get(2), created_at: r.get(3) })
            .collect())
    }

    async fn put_template(&self, tenant_id: &str, name: &str, body: &str, at: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO templates (tenant_id, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(body)
        .bind(at)
        .bind(at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn get_template(&self, tenant_id: &str, name: &str) -> StoreResult<Option<TemplateRow>> {
        let row =
            sqlx::query("SELECT name, body, created_at, updated_at FROM templates WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map(|r| TemplateRow { name: r.get(0), body: r.get(1), created_at: r.get(2), updated_at: r.get(3) }))
    }

    async fn list_templates(&self, tenant_id: &str) -> StoreResult<Vec<TemplateRow>> {
        let rows =
            sqlx::query("SELECT name, body, created_at, updated_at FROM templates WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(self.reader())
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| TemplateRow { name: r.get(0), body: r.get(1), created_at: r.get(2), updated_at: r.get(3) })
            .collect())
    }

    async fn delete_template(&self, tenant_id: &str, name: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn credit(&self, tenant_id: &str, amount: i64, note: &str, at: Millis) -> StoreResult<i64> {
        let mut tx = self.writer().begin().await?;
        let kind = if amount >= 0 { "credit" } else { "adjustment" };
        let balance =
            ledger_entry::<B::Db>(&mut tx, Entry { tenant_id, amount, kind, message_id: None, note: Some(note), at }, false)
                .await?
                .ok_or_else(|| StoreError::NotFound("tenant".into()))?;
        tx.commit().await?;
        Ok(balance)
    }

    async fn ledger(&self, tenant_id: &str, limit: u32) -> StoreResult<Vec<LedgerRow>> {
        let rows = sqlx::query(
            "SELECT amount, balance_after, kind, message_id, note, at FROM ledger WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LedgerRow {
                amount: r.get(0),
                balance_after: r.get(1),
                kind: r.get(2),
                message_id: r.get(3),
                note: r.get(4),
                at: r.get(5),
            })
            .collect())
    }

    async fn usage(&self, tenant_id: &str, since: Millis) -> StoreResult<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT created_at / 86400000 AS day, direction, status, COUNT(*), CAST(SUM(segments) AS BIGINT) FROM messages \
             WHERE tenant_id = $1 AND created_at >= $2 GROUP BY day, direction, status ORDER BY day, direction, status",
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                day: r.get(0),
                direction: r.get(1),
                status: r.get(2),
                messages: r.get(3),
                segments: r.get(4),
            })
            .collect())
    }

    async fn idempotency(&self, tenant_id: &str, key: &str) -> StoreResult<Option<StoredIdempotency>> {
        let row = sqlx::query(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant_id)
        .bind(key)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.map(|r| StoredIdempotency {
            request_hash: r.get(0),
            status: r.get::<i64, _>(1) as u16,
            response: r.get(2),
        }))
    }

    async fn create_console_session(&self, session: &ConsoleSessionRow) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(session.created_at)
            .execute(self.writer())
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, kind, credential_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.token_hash)
        .bind(&session.kind)
        .bind(&session.credential_hash)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn console_session(&self, token_hash: &str, now: Millis) -> StoreResult<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT token_hash, kind, credential_hash, created_at, expires_at FROM console_sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|r| ConsoleSessionRow {
            token_hash: r.get(0),
            kind: r.get(1),
            credential_hash: r.get(2),
            created_at: r.get(3),
            expires_at: r.get(4),
        }))
    }

    async fn delete_console_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1").bind(token_hash).execute(self.writer()).await?;
        Ok(())
    }
}
}
