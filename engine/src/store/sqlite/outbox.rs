use super::status::{record_history, refund, status_changed};
use super::{SqliteStore, events::insert_event_rows};
use crate::clock::Millis;
use crate::store::*;
use async_trait::async_trait;
use sqlx::sqlite::Sqlite;
use sqlx::{QueryBuilder, Row};

#[async_trait]
impl Deliveries for SqliteStore {
    async fn insert_outbound(&self, requests: &[OutboundRequest]) -> StoreResult<Vec<OutboundResult>> {
        let mut tx = self.writer.begin().await?;
        let mut results = Vec::with_capacity(requests.len());
        for req in requests {
            results.push(SqliteStore::outbound_one(&mut tx, req).await?);
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn cancel_scheduled(&self, tenant_id: &str, message_id: &str, at: Millis) -> StoreResult<CancelResult> {
        super::outbound::cancel(self, tenant_id, message_id, at).await
    }

    async fn claim_outbox(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<OutboxItem>> {
        let mut tx = self.writer.begin().await?;
        let claimed: Vec<String> = sqlx::query_scalar(
            "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE message_id IN (
                SELECT message_id FROM outbox WHERE run_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                ORDER BY run_at LIMIT ?)
             RETURNING message_id",
        )
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(now)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut items = Vec::with_capacity(claimed.len());
        if !claimed.is_empty() {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT o.message_id, m.tenant_id, m.from_addr, m.to_addr, m.body, m.reference, m.connector, o.attempts \
                 FROM outbox o JOIN messages m ON m.id = o.message_id WHERE o.message_id IN (",
            );
            let mut ids = q.separated(", ");
            for id in &claimed {
                ids.push_bind(id);
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                items.push(OutboxItem {
                    message_id: r.get(0),
                    tenant_id: r.get(1),
                    from: r.get(2),
                    to: r.get(3),
                    body: r.get(4),
                    reference: r.get(5),
                    connector: r.get::<Option<String>, _>(6).unwrap_or_default(),
                    attempts: r.get::<i64, _>(7) as u32,
                });
            }
        }
        tx.commit().await?;
        Ok(items)
    }

    async fn next_outbox_due(&self) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar("SELECT MIN(MAX(run_at, COALESCE(lease_until, 0))) FROM outbox")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn record_send_results(&self, results: &[SendResult]) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        for r in results {
            match &r.outcome {
                SendOutcome::Sent { provider_id } => {
                    sqlx::query(
                        "UPDATE messages SET provider_id = ?, connector = ?, \
                         status = CASE WHEN status_rank < 2 THEN 'sent' ELSE status END, \
                         status_rank = MAX(status_rank, 2), updated_at = ? WHERE id = ?",
                    )
                    .bind(provider_id)
                    .bind(&r.connector)
                    .bind(r.at)
                    .bind(&r.message_id)
                    .execute(&mut *tx)
                    .await?;
                    status_changed(&mut tx, &r.message_id, MessageStatus::Sent, None, r.at).await?;
                    sqlx::query("DELETE FROM outbox WHERE message_id = ?")
                        .bind(&r.message_id)
                        .execute(&mut *tx)
                        .await?;
                }
                SendOutcome::Retry { at, .. } => {
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, run_at = ?, lease_owner = NULL, lease_until = NULL \
                         WHERE message_id = ?",
                    )
                    .bind(at)
                    .bind(&r.message_id)
                    .execute(&mut *tx)
                    .await?;
                }
                SendOutcome::Failed { error_code, .. } => {
                    sqlx::query(
                        "UPDATE messages SET status = 'failed', status_rank = 3, error_code = ?, updated_at = ? \
                         WHERE id = ? AND status_rank < 3",
                    )
                    .bind(error_code)
                    .bind(r.at)
                    .bind(&r.message_id)
                    .execute(&mut *tx)
                    .await?;
                    status_changed(&mut tx, &r.message_id, MessageStatus::Failed, Some(error_code), r.at).await?;
                    refund(&mut tx, &r.message_id, r.at).await?;
                    sqlx::query("DELETE FROM outbox WHERE message_id = ?")
                        .bind(&r.message_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_deliveries(&self, reports: &[DeliveryUpdate], lease: &Lease) -> StoreResult<Vec<EventRow>> {
        let mut tx = self.writer.begin().await?;
        let mut events = Vec::new();
        for r in reports {
            let Some(msg) = sqlx::query(
                "SELECT m.tenant_id, m.plugin_id, m.to_addr, m.reference, \
                 EXISTS (SELECT 1 FROM routes WHERE plugin_id = m.plugin_id AND kind = 'delivery') \
                 FROM messages m WHERE m.id = ?",
            )
            .bind(&r.message_id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let changed = sqlx::query(
                "UPDATE messages SET status = ?, status_rank = ?, error_code = COALESCE(?, error_code), updated_at = ? \
                 WHERE id = ? AND status_rank < ?",
            )
            .bind(r.status.as_str())
            .bind(r.status.rank())
            .bind(&r.error_code)
            .bind(r.at)
            .bind(&r.message_id)
            .bind(r.status.rank())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if changed {
                status_changed(&mut tx, &r.message_id, r.status, r.error_code.as_deref(), r.at).await?;
            } else {
                record_history(&mut tx, &r.message_id, r.status, r.error_code.as_deref(), r.at).await?;
            }
            let plugin_id: Option<String> = msg.get(1);
            let subscribed: bool = msg.get(4);
            if let (true, true, Some(plugin_id)) = (changed, subscribed, plugin_id) {
                let payload = serde_json::json!({
                    "message_id": r.message_id,
                    "reference": msg.get::<Option<String>, _>(3),
                    "to": msg.get::<String, _>(2),
                    "status": r.status.as_str(),
                    "error_code": r.error_code,
                    "at": r.at,
                });
                events.push(NewEvent {
                    id: crate::ids::event_id(),
                    tenant_id: msg.get(0),
                    plugin_id,
                    kind: EventKind::Delivery,
                    name: None,
                    payload: payload.to_string(),
                    message_id: Some(r.message_id.clone()),
                    run_at: r.at,
                    created_at: r.at,
                });
            }
        }
        let refs: Vec<&NewEvent> = events.iter().collect();
        insert_event_rows(&mut tx, &refs, lease).await?;
        tx.commit().await?;
        Ok(events.iter().map(NewEvent::to_row).collect())
    }
}
