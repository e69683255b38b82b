//! Deleting and redacting finished messages, on a tenant's request.

use super::{Conn, for_every_backend};
use crate::store::*;
use sqlx::Row;

/// The statuses a message is still on its way in.
const IN_PROGRESS: [&str; 3] = ["queued", "scheduled", "sending"];

/// Drops the recordings of the invocations that saw the message: those of
/// its own events, and the one that sent it.
const FORGET_RECORDINGS: &str = "UPDATE invocations SET recording = NULL, recording_bytes = 0 WHERE recording_bytes > 0 \
    AND (event_id IN (SELECT id FROM events WHERE message_id = $1) \
    OR event_id IN (SELECT event_id FROM messages WHERE id = $1 AND event_id IS NOT NULL))";

for_every_backend! {
/// Why a message cannot be erased (not the tenant's, or still on its way:
/// its status, or plugin work pending on it), or `None` when it can.
async fn finished(conn: &mut Conn<DB>, tenant_id: &str, message_id: &str) -> StoreResult<Option<EraseResult>> {
    let row = sqlx::query(
        "SELECT status, (SELECT COUNT(*) FROM events e WHERE e.message_id = m.id AND e.status = 'pending') \
         FROM messages m WHERE m.id = $1 AND m.tenant_id = $2",
    )
    .bind(message_id)
    .bind(tenant_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Some(EraseResult::NotFound)) };
    let status: String = row.get(0);
    let pending: i64 = row.get(1);
    if IN_PROGRESS.contains(&status.as_str()) {
        return Ok(Some(EraseResult::InProgress(status)));
    }
    Ok((pending > 0).then(|| EraseResult::InProgress("processing".into())))
}
}

for_every_backend! {
impl Erasure {
    async fn delete_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<EraseResult> {
        let mut tx = self.writer().begin().await?;
        if let Some(refused) = finished::<B::Db>(&mut tx, tenant_id, message_id).await? {
            return Ok(refused);
        }
        for sql in [
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE message_id = $1)",
            "DELETE FROM webhook_deliveries WHERE message_id = $1",
            "DELETE FROM message_status WHERE message_id = $1",
            "DELETE FROM message_parts WHERE message_id = $1",
            FORGET_RECORDINGS,
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
        if let Some(refused) = finished::<B::Db>(&mut tx, tenant_id, message_id).await? {
            return Ok(refused);
        }
        sqlx::query("UPDATE messages SET body = '', updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(FORGET_RECORDINGS).bind(message_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE events SET payload = '{}' WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(EraseResult::Done)
    }
}
}
