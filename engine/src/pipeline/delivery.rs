//! Delivery reports: applied to their messages in batches; reports for
//! messages whose plugin subscribes to them become `on-delivery` events.

use super::Notification;
use super::TrackedReceiver;
use crate::app::App;
use crate::store::DeliveryUpdate;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(app: Arc<App>, mut reports: TrackedReceiver<DeliveryUpdate>) {
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 512).await > 0 {
        let events = loop {
            match app.db.record_deliveries(&batch, &app.pipeline.lease(&app.clock)).await {
                Ok(events) => break events,
                Err(e) => {
                    tracing::error!(error = %e, "could not record delivery reports; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        reports.committed(batch.len());
        app.pipeline.webhooks.now();
        for event in events {
            app.pipeline.events.push(&event.id.clone(), event);
        }
        for r in batch.drain(..) {
            app.pipeline
                .notify(Notification::MessageStatus { message_id: r.message_id, status: r.status.as_str().into() });
        }
    }
}
