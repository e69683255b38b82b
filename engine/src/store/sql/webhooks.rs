//! The signed status webhooks tenants' messages owe: claimed, retried, recorded.

use super::for_every_backend;
use crate::clock::Millis;
use crate::store::*;
use sqlx::Row;

for_every_backend! {
impl Webhooks {
    async fn claim_webhooks(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        super::outbound::claim_webhooks::<B::Db>(self.writer(), lease, now, limit).await
    }

    async fn next_webhook_due(&self) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > run_at THEN lease_until ELSE run_at END) FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_one(self.reader())
        .await?)
    }

    async fn record_webhook_attempts(&self, attempts: &[WebhookAttempt]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        for a in attempts {
            let attempt: i64 = sqlx::query_scalar(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, run_at = COALESCE($2, run_at), \
                 lease_owner = NULL, lease_until = NULL, updated_at = $3 WHERE id = $4 RETURNING attempts",
            )
            .bind(match (a.delivered, a.retry_at) {
                (true, _) => "delivered",
                (false, Some(_)) => "pending",
                (false, None) => "failed",
            })
            .bind(a.retry_at)
            .bind(a.at)
            .bind(&a.delivery_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&a.delivery_id)
            .bind(attempt)
            .bind(a.at)
            .bind(a.status_code.map(i64::from))
            .bind(&a.error)
            .bind(a.duration_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn webhooks_for_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<Vec<WebhookDeliveryView>> {
        let rows = sqlx::query(
            "SELECT id, url, payload, status, run_at FROM webhook_deliveries WHERE tenant_id = $1 AND message_id = $2 \
             ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(message_id)
        .fetch_all(self.reader())
        .await?;
        let mut views = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            let status: String = r.get(3);
            let attempts = sqlx::query(
                "SELECT at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(&id)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(|a| WebhookAttemptView {
                at: a.get(0),
                status_code: a.get::<Option<i64>, _>(1).map(|c| c as u16),
                error: a.get(2),
                duration_ms: a.get(3),
            })
            .collect();
            views.push(WebhookDeliveryView {
                next_attempt_at: (status == "pending").then(|| r.get(4)),
                id,
                url: r.get(1),
                payload: r.get(2),
                status,
                attempts,
            });
        }
        Ok(views)
    }
}
}
