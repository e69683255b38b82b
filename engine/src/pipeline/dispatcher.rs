//! The dispatcher: hands outbox messages to their connectors and records
//! what the carrier said (sent with its id, retry later, or failed).
//!
//! A message leaves the outbox only when its result is recorded, so a crash
//! between the carrier's answer and the record re-sends it on restart:
//! at-least-once towards the carrier.

use super::Notification;
use super::TrackedReceiver;
use crate::app::App;
use crate::connectors::{ConnectorError, OutboundSms};
use crate::phone::Masked;
use crate::store::{OutboxItem, SendOutcome, SendResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

pub async fn run(app: Arc<App>, mut outbox: mpsc::UnboundedReceiver<OutboxItem>) {
    let permits = Arc::new(Semaphore::new(app.settings.limits.concurrent_sends));
    while let Some(item) = outbox.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let app = app.clone();
        tokio::spawn(async move {
            let work = async {
                let result = send(&app, &item).await;
                if let SendOutcome::Retry { .. } = &result.outcome {
                    app.pipeline.sweeper.now();
                }
                app.pipeline.sends.send(result);
            };
            app.pipeline.outbox.run(&item.message_id, work).await;
            drop(permit);
        });
    }
}

async fn send(app: &App, item: &OutboxItem) -> SendResult {
    let outcome = match app.connectors.get(&item.connector) {
        None => SendOutcome::Failed {
            error_code: "UNKNOWN_CONNECTOR".into(),
            error: format!("no connector named {:?}", item.connector),
        },
        Some(connector) => {
            let sms = OutboundSms {
                message_id: item.message_id.clone(),
                tenant_id: item.tenant_id.clone(),
                from: item.from.clone(),
                to: item.to.clone(),
                body: item.body.clone(),
                reference: item.reference.clone(),
            };
            match connector.send(&sms).await {
                Ok(accepted) => SendOutcome::Sent { provider_id: accepted.provider_id },
                Err(ConnectorError::Permanent { code, message }) => {
                    tracing::warn!(message_id = %item.message_id, to = %Masked(&item.to), code, "carrier refused message");
                    SendOutcome::Failed { error_code: code, error: message }
                }
                Err(ConnectorError::Transient { message, retry_after }) => {
                    let attempts_made = item.attempts + 1;
                    if attempts_made >= app.settings.limits.send_max_attempts {
                        SendOutcome::Failed { error_code: "CARRIER_UNAVAILABLE".into(), error: message }
                    } else {
                        let delay = retry_after.unwrap_or_else(|| backoff(app, attempts_made));
                        SendOutcome::Retry { at: app.clock.now_ms() + delay.as_millis() as i64, error: message }
                    }
                }
            }
        }
    };
    SendResult {
        message_id: item.message_id.clone(),
        connector: item.connector.clone(),
        outcome,
        at: app.clock.now_ms(),
    }
}

fn backoff(app: &App, attempt: u32) -> Duration {
    app.settings.limits.event_retry_delay(attempt)
}

/// Records connector results in batches (group commit).
pub async fn record_results(app: Arc<App>, mut results: TrackedReceiver<SendResult>) {
    let mut batch = Vec::new();
    while results.recv_many(&mut batch, 512).await > 0 {
        loop {
            match app.db.record_send_results(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "could not record send results; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        results.committed(batch.len());
        app.pipeline.webhooks.now();
        for r in batch.drain(..) {
            let status = match r.outcome {
                SendOutcome::Sent { .. } => "sent",
                SendOutcome::Failed { .. } => "failed",
                SendOutcome::Retry { .. } => continue,
            };
            app.pipeline.notify(Notification::MessageStatus { message_id: r.message_id, status: status.into() });
        }
    }
}
