//! Accepting API sends (with their debit and idempotency record) and
//! cancelling scheduled messages.

use super::RowsAffected;
use super::events::{insert_messages, insert_outbox, insert_outbox_leased, marked_ids};
use super::status::{Entry, ledger_entry, refund, status_changed};
use super::{Conn, INSERT_CHUNK, for_every_backend};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{Connection, Pool, QueryBuilder, Row};

for_every_backend! {
/// A batch of API send requests in the caller's transaction, all at once:
/// their idempotency records, one debit per tenant with a ledger row per
/// message, their messages and outbox rows, in a handful of multi-row
/// statements whatever the batch's size. `None` when a request would be
/// refused (its idempotency key is taken, or a tenant's balance does not
/// cover the batch); what was written is then the caller's to roll back,
/// and [`outbound_one`] takes the requests one by one to answer each.
pub(in crate::store) async fn outbound_all(
    conn: &mut Conn<DB>,
    reqs: &[OutboundRequest],
) -> StoreResult<Option<Vec<OutboundResult>>> {
    let keyed: Vec<(&OutboundRequest, &IdempotencyRecord)> =
        reqs.iter().filter_map(|r| r.idempotency.as_ref().map(|i| (r, i))).collect();
    for chunk in keyed.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, response, created_at) ",
        );
        q.push_values(chunk, |mut b, (r, idem)| {
            b.push_bind(&r.tenant_id)
                .push_bind(&idem.key)
                .push_bind(&idem.request_hash)
                .push_bind(idem.status as i64)
                .push_bind(&idem.response)
                .push_bind(r.messages.first().map_or(0, |m| m.created_at));
        });
        // Two requests of the batch with one key insert one row: refused.
        q.push(" ON CONFLICT (tenant_id, key) DO NOTHING");
        if q.build().execute(&mut *conn).await?.rows_affected() < chunk.len() as u64 {
            return Ok(None);
        }
    }
    // Debits: each tenant's total at once (in id order, so that two nodes
    // lock tenants in the same order). Prices are positive, so a balance
    // that covers the total covers every debit in between.
    let priced: Vec<&NewMessage> = reqs.iter().flat_map(|r| &r.messages).filter(|m| m.price > 0).collect();
    let mut totals: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for m in &priced {
        *totals.entry(m.tenant_id.as_str()).or_default() += m.price;
    }
    // The balance before the batch's first debit, per tenant.
    let mut running: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (tenant_id, total) in &totals {
        let balance: Option<i64> = sqlx::query_scalar(
            "UPDATE tenants SET balance = balance - $1 WHERE id = $2 AND balance - $3 >= 0 RETURNING balance",
        )
        .bind(total)
        .bind(*tenant_id)
        .bind(total)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(balance) = balance else { return Ok(None) };
        running.insert(tenant_id, balance + total);
    }
    for chunk in priced.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO ledger (tenant_id, amount, balance_after, kind, message_id, note, at) ",
        );
        q.push_values(chunk, |mut b, m| {
            let balance = running.get_mut(m.tenant_id.as_str()).expect("every priced tenant was debited");
            *balance -= m.price;
            b.push_bind(&m.tenant_id)
                .push_bind(-m.price)
                .push_bind(*balance)
                .push_bind("debit")
                .push_bind(&m.id)
                .push_bind(None::<String>)
                .push_bind(m.created_at);
        });
        q.build().execute(&mut *conn).await?;
    }
    let leased: Vec<(&NewMessage, &Lease)> =
        reqs.iter().flat_map(|r| r.messages.iter().map(move |m| (m, &r.lease))).collect();
    let messages: Vec<&NewMessage> = leased.iter().map(|(m, _)| *m).collect();
    let marked = marked_ids(leased.iter().copied());
    insert_messages::<DB>(conn, &messages, &marked).await?;
    insert_outbox_leased::<DB>(conn, &leased).await?;
    Ok(Some(
        reqs.iter()
            .map(|r| OutboundResult::Accepted { due_now: outbox_items(&r.messages, Some(&r.lease)) })
            .collect(),
    ))
}
}

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
    let messages: Vec<&NewMessage> = req.messages.iter().collect();
    let marked = marked_ids(req.messages.iter().map(|m| (m, &req.lease)));
    insert_messages::<DB>(&mut sp, &messages, &marked).await?;
    insert_outbox::<DB>(&mut sp, &messages, &req.lease).await?;
    sp.commit().await?;
    Ok(OutboundResult::Accepted { due_now: outbox_items(&req.messages, Some(&req.lease)) })
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
         RETURNING id, tenant_id, message_id, url, payload, attempts, created_at, account_sid, trace_context",
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
            account_sid: r.get(7),
            trace_context: r.get(8),
        })
        .collect())
}
}
