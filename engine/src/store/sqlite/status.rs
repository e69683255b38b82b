//! Message status changes: the history row, and the signed webhook the
//! change owes its tenant (when the message or tenant has a webhook URL),
//! written in the caller's transaction.

use crate::clock::{Millis, to_rfc3339};
use crate::store::{MessageStatus, StoreResult};
use sqlx::{Row, SqliteConnection};

/// Records a report in the message's history (even one that changes
/// nothing: the history is the full record).
async fn record_history(
    conn: &mut SqliteConnection,
    message_id: &str,
    status: MessageStatus,
    error_code: Option<&str>,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO message_status (message_id, status, error_code, at) VALUES (?, ?, ?, ?)")
        .bind(message_id)
        .bind(status.as_str())
        .bind(error_code)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A message reached a new status: history, and the webhook it owes.
pub(super) async fn status_changed(
    conn: &mut SqliteConnection,
    message_id: &str,
    status: MessageStatus,
    error_code: Option<&str>,
    at: Millis,
) -> StoreResult<()> {
    record_history(conn, message_id, status, error_code, at).await?;
    let target = sqlx::query(
        "SELECT m.tenant_id, m.reference, m.to_addr, COALESCE(m.webhook_url, t.webhook_url) \
         FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = ? AND m.direction = 'outbound'",
    )
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = target else { return Ok(()) };
    let Some(url) = row.get::<Option<String>, _>(3) else { return Ok(()) };
    let payload = serde_json::json!({
        "id": message_id,
        "status": status.as_str(),
        "error_code": error_code,
        "timestamp": to_rfc3339(at),
        "reference": row.get::<Option<String>, _>(1),
        "to": row.get::<String, _>(2),
    });
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, tenant_id, message_id, url, payload, status, attempts, run_at, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
    )
    .bind(crate::ids::new_id("whd"))
    .bind(row.get::<String, _>(0))
    .bind(message_id)
    .bind(url)
    .bind(payload.to_string())
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One change of a balance.
pub(super) struct Entry<'a> {
    pub tenant_id: &'a str,
    /// Signed micros: credits positive.
    pub amount: i64,
    /// credit, debit, refund, adjustment
    pub kind: &'a str,
    pub message_id: Option<&'a str>,
    pub note: Option<&'a str>,
    pub at: Millis,
}

/// Applies an entry to the tenant's balance with a ledger row. With
/// `require_funds`, a debit that would overdraw is refused (`None`).
pub(super) async fn ledger_entry(
    conn: &mut SqliteConnection,
    e: Entry<'_>,
    require_funds: bool,
) -> StoreResult<Option<i64>> {
    let Entry { tenant_id, amount, kind, message_id, note, at } = e;
    let balance: Option<i64> = sqlx::query_scalar(
        "UPDATE tenants SET balance = balance + ? WHERE id = ? AND (? = 0 OR balance + ? >= 0) RETURNING balance",
    )
    .bind(amount)
    .bind(tenant_id)
    .bind(require_funds as i64)
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(balance) = balance else { return Ok(None) };
    sqlx::query(
        "INSERT INTO ledger (tenant_id, amount, balance_after, kind, message_id, note, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
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

/// Credits back what a message cost (it was cancelled or refused before a
/// carrier took it).
pub(super) async fn refund(conn: &mut SqliteConnection, message_id: &str, at: Millis) -> StoreResult<()> {
    let row = sqlx::query("SELECT tenant_id, price FROM messages WHERE id = ?")
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
            ledger_entry(conn, entry, false).await?;
        }
    }
    Ok(())
}
