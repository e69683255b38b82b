//! Accepting API sends (with their debit and idempotency record) and
//! cancelling scheduled messages.

use super::RowsAffected;
use super::events::{insert_messages, insert_outbox};
use super::status::{Entry, ledger_entry, refund, status_changed};
use super::{Conn, for_every_backend};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{Connection, Pool, Row};

for_every_backend! {
/// One API send request in the caller's transaction: its idempotency
/// record, its debits, its messages and their outbox rows.
pub(in crate::store) async fn outbound_one(conn: &mut Conn<DB>, req: &OutboundRequest) -> StoreResult<OutboundResult> {
    // A savepoint per request: a refused request undoes only itself.
    let mut sp = conn.begin().await?;
    let now = req.messages.first().map_or(0, |m| m.created_at);
    if let Some(idem) = &req.idempotency {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(&req.tenant_id)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(idem.status as i64)
        .bind(&idem.response)
        .bind(now)
        .execute(&mut *sp)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(OutboundResult::Duplicate);
        }
    }
    for m in req.messages.iter().filter(|m| m.price > 0) {
        let debited = ledger_entry::<DB>(
            &mut sp,
            Entry {
                tenant_id: &req.tenant_id,
                amount: -m.price,
                kind: "debit",
                message_id: Some(&m.id),
                note: None,
                at: m.created_at,
            },
            true,
        )
        .await?;
        if debited.is_none() {
            let balance: i64 = sqlx::query_scalar("SELECT balance FROM tenants WHERE id = $1")
                .bind(&req.tenant_id)
                .fetch_one(&mut *sp)
                .await?;
            let needed = req.messages.iter().map(|m| m.price).sum();
            drop(sp); // rolls back this request's earlier debits
            return Ok(OutboundResult::InsufficientBalance { balance, needed });
        }
    }
    let refs: Vec<&NewMessage> = req.messages.iter().collect();
    insert_messages::<DB>(&mut sp, &refs).await?;
    let messages: Vec<&NewMessage> = req.messages.iter().collect();
    insert_outbox::<DB>(&mut sp, &messages, &req.lease).await?;
    sp.commit().await?;
    Ok(OutboundResult::Accepted { due_now: outbox_items(&req.messages) })
}
}

for_every_backend! {
/// Cancels a scheduled message no dispatcher holds, refunding it.
pub(in crate::store) async fn cancel(
    writer: &Pool<DB>,
    tenant_id: &str,
    message_id: &str,
    at: Millis,
) -> StoreResult<CancelResult> {
    let mut tx = writer.begin().await?;
    let status: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT status FROM messages WHERE id = $1 AND tenant_id = $2 {}",
        DB::LOCK_ROWS
    )))
    .bind(message_id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(status) = status else { return Ok(CancelResult::NotFound) };
    if status != MessageStatus::Scheduled.as_str() {
        return Ok(CancelResult::NotCancellable(status));
    }
    // A dispatcher holding the row is sending it: too late to cancel.
    let removed = sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND (lease_until IS NULL OR lease_until < $2)")
        .bind(message_id)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Ok(CancelResult::NotCancellable("sending".into()));
    }
    sqlx::query("UPDATE messages SET status = 'cancelled', status_rank = 3, updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
    status_changed::<DB>(&mut tx, message_id, MessageStatus::Cancelled, None, at).await?;
    refund::<DB>(&mut tx, message_id, at).await?;
    tx.commit().await?;
    Ok(CancelResult::Cancelled)
}
}

for_every_backend! {
/// Leases up to `limit` due webhook deliveries to `lease.owner`.
pub(in crate::store) async fn claim_webhooks(
    writer: &Pool<DB>,
    lease: &Lease,
    now: Millis,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (
            SELECT id FROM webhook_deliveries WHERE status = 'pending' AND run_at <= $3
            AND (lease_until IS NULL OR lease_until < $3) ORDER BY run_at LIMIT $4 {})
         RETURNING id, tenant_id, message_id, url, payload, attempts, created_at",
        DB::SKIP_LOCKED
    )))
    .bind(&lease.owner)
    .bind(lease.until)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(writer)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| WebhookDelivery {
            id: r.get(0),
            tenant_id: r.get(1),
            message_id: r.get(2),
            url: r.get(3),
            payload: r.get(4),
            attempts: r.get::<i64, _>(5) as u32,
            created_at: r.get(6),
        })
        .collect())
}
}
