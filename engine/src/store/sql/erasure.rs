//! Deleting and redacting finished messages, on a tenant's request.

use super::for_every_backend;
use crate::store::*;
use sqlx::Row;

/// The statuses a message is still on its way in.
const IN_PROGRESS: [&str; 3] = ["queued", "scheduled", "sending"];

for_every_backend! {
impl Erasure {
    async fn delete_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<EraseResult> {
        let mut tx = self.writer().begin().await?;
        let row = sqlx::query(
            "SELECT status, (SELECT COUNT(*) FROM events e WHERE e.message_id = m.id AND e.status = 'pending') \
             FROM messages m WHERE m.id = $1 AND m.tenant_id = $2",
        )
        .bind(message_id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(EraseResult::NotFound) };
        let status: String = row.get(0);
        let pending: i64 = row.get(1);
        if IN_PROGRESS.contains(&status.as_str()) {
            return Ok(EraseResult::InProgress(status));
        }
        if pending > 0 {
            return Ok(EraseResult::InProgress("processing".into()));
        }
        for sql in [
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE message_id = $1)",
            "DELETE FROM webhook_deliveries WHERE message_id = $1",
            "DELETE FROM message_status WHERE message_id = $1",
            "DELETE FROM message_parts WHERE message_id = $1",
            "DELETE FROM events WHERE message_id = $1",
            "DELETE FROM messages WHERE id = $1",
        ] {
            sqlx::query(sql).bind(message_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(EraseResult::Done)
    }

    async fn redact_message(&self, tenant_id: &str, message_id: &str, at: Millis) -> StoreResult<EraseResult> {
        let mut tx = self.writer().begin().await?;
        let row = sqlx::query(
            "SELECT status, (SELECT COUNT(*) FROM events e WHERE e.message_id = m.id AND e.status = 'pending') \
             FROM messages m WHERE m.id = $1 AND m.tenant_id = $2",
        )
        .bind(message_id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(EraseResult::NotFound) };
        let status: String = row.get(0);
        let pending: i64 = row.get(1);
        if IN_PROGRESS.contains(&status.as_str()) {
            return Ok(EraseResult::InProgress(status));
        }
        if pending > 0 {
            return Ok(EraseResult::InProgress("processing".into()));
        }
        sqlx::query("UPDATE messages SET body = '', updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE events SET payload = '{}' WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(EraseResult::Done)
    }
}
}
