//! Message status changes: the history row, and the signed webhook the
//! change owes its tenant (when the message or tenant has a webhook URL),
//! written in the caller's transaction.

use super::{Conn, DbRow, INSERT_CHUNK, for_every_backend};
use crate::clock::{Millis, to_rfc3339};
use crate::store::{MessageStatus, StoreResult};
use sqlx::{QueryBuilder, Row};

for_every_backend! {
/// A message reached a new status: history, and the webhook it owes.
pub(in crate::store) async fn status_changed(
    conn: &mut Conn<DB>,
    message_id: &str,
    status: MessageStatus,
    error_code: Option<&str>,
    at: Millis,
) -> StoreResult<()> {
    statuses_changed::<DB>(conn, &[StatusChange { message_id, status, error_code, at }]).await
}
}

/// One message's new status, for [`statuses_changed`].
pub(in crate::store) struct StatusChange<'a> {
    pub message_id: &'a str,
    pub status: MessageStatus,
    pub error_code: Option<&'a str>,
    pub at: Millis,
}

for_every_backend! {
/// Many messages reached new statuses: the history rows and the webhooks
/// they owe, in three statements however many there are (each statement
/// is a round trip to the database thread).
pub(in crate::store) async fn statuses_changed(conn: &mut Conn<DB>, changes: &[StatusChange<'_>]) -> StoreResult<()> {
    for chunk in changes.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO message_status (message_id, status, error_code, at) ");
        q.push_values(chunk, |mut b, c| {
            b.push_bind(c.message_id).push_bind(c.status.as_str()).push_bind(c.error_code).push_bind(c.at);
        });
        q.build().execute(&mut *conn).await?;
    }
    callbacks_owed::<DB>(conn, changes).await
}
}

for_every_backend! {
/// The signed webhooks status changes owe (their history rows written by
/// the caller): one query for the targets and one insert per chunk.
pub(in crate::store) async fn callbacks_owed(conn: &mut Conn<DB>, changes: &[StatusChange<'_>]) -> StoreResult<()> {
    for chunk in changes.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "SELECT m.id, m.tenant_id, m.reference, m.to_addr, COALESCE(m.webhook_url, t.webhook_url), m.from_addr, \
             CASE WHEN m.webhook_url IS NOT NULL THEN m.account_sid END, m.trace_context FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE m.direction = 'outbound' \
             AND COALESCE(m.webhook_url, t.webhook_url) IS NOT NULL AND m.id IN (",
        );
        let mut ids = q.separated(", ");
        for c in chunk {
            ids.push_bind(c.message_id);
        }
        q.push(")");
        let targets = q.build().fetch_all(&mut *conn).await?;
        if targets.is_empty() {
            continue;
        }
        let by_id: std::collections::HashMap<String, &DbRow<DB>> =
            targets.iter().map(|r| (r.get::<String, _>(0), r)).collect();
        let owed: Vec<(&StatusChange, &DbRow<DB>)> =
            chunk.iter().filter_map(|c| by_id.get(c.message_id).map(|r| (c, *r))).collect();
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO webhook_deliveries (id, tenant_id, message_id, url, payload, status, attempts, run_at, \
             created_at, updated_at, account_sid, trace_context) ",
        );
        q.push_values(owed, |mut b, (c, row)| {
            let payload = serde_json::json!({
                "id": c.message_id,
                "status": c.status.as_str(),
                "error_code": c.error_code,
                "timestamp": to_rfc3339(c.at),
                "reference": row.get::<Option<String>, _>(2),
                "to": row.get::<String, _>(3),
                "from": row.get::<String, _>(5),
            });
            b.push_bind(crate::ids::new_id("whd"))
                .push_bind(row.get::<String, _>(1))
                .push_bind(c.message_id)
                .push_bind(row.get::<String, _>(4))
                .push_bind(payload.to_string())
                .push("'pending'")
                .push("0")
                .push_bind(c.at)
                .push_bind(c.at)
                .push_bind(c.at)
                .push_bind(row.get::<Option<String>, _>(6))
                .push_bind(row.get::<Option<String>, _>(7));
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
}

/// One change of a balance.
pub(in crate::store) struct Entry<'a> {
    pub tenant_id: &'a str,
    /// Signed micros: credits positive.
    pub amount: i64,
    /// credit, debit, refund, adjustment
    pub kind: &'a str,
    pub message_id: Option<&'a str>,
    pub note: Option<&'a str>,
    pub at: Millis,
}

for_every_backend! {
/// Applies an entry to the tenant's balance with a ledger row. With
/// `require_funds`, a debit that would overdraw is refused (`None`).
pub(in crate::store) async fn ledger_entry(
    conn: &mut Conn<DB>,
    e: Entry<'_>,
    require_funds: bool,
) -> StoreResult<Option<i64>> {
    let Entry { tenant_id, amount, kind, message_id, note, at } = e;
    let balance: Option<i64> = sqlx::query_scalar(
        "UPDATE tenants SET balance = balance + $1 WHERE id = $2 AND ($3 = 0 OR balance + $4 >= 0) RETURNING balance",
    )
    .bind(amount)
    .bind(tenant_id)
    .bind(require_funds as i64)
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(balance) = balance else { return Ok(None) };
    sqlx::query(
        "INSERT INTO ledger (tenant_id, amount, balance_after, kind, message_id, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(amount)
    .bind(balance)
    .bind(kind)
    .bind(message_id)
    .bind(note)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(Some(balance))
}
}

for_every_backend! {
/// Credits back what a message cost (it was cancelled or refused before a
/// carrier took it).
pub(in crate::store) async fn refund(conn: &mut Conn<DB>, message_id: &str, at: Millis) -> StoreResult<()> {
    let row = sqlx::query("SELECT tenant_id, price FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(r) = row {
        let price: i64 = r.get(1);
        if price > 0 {
            let tenant_id: String = r.get(0);
            let entry = Entry {
                tenant_id: &tenant_id,
                amount: price,
                kind: "refund",
                message_id: Some(message_id),
                note: None,
                at,
            };
            ledger_entry::<DB>(conn, entry, false).await?;
        }
    }
    Ok(())
}
}
