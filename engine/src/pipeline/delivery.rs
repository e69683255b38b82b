//! Delivery reports from every connector, applied in batches to the parts
//! and messages they name; reports for messages whose plugin subscribes
//! to them become `on-delivery` events.

use super::{Notification, TrackedReceiver};
use crate::app::App;
use crate::connectors::Acked;
use crate::store::{ProviderReport, Recorded};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(app: Arc<App>, mut reports: TrackedReceiver<Acked<ProviderReport>>) {
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 512).await > 0 {
        let items: Vec<ProviderReport> = batch.iter().map(|a| a.item.clone()).collect();
        record(&app, &items).await;
        reports.committed(batch.len());
        for acked in batch.drain(..) {
            acked.done();
        }
    }
}

/// Records reports durably (retrying while the store is unavailable) and
/// hands on what they trigger.
pub async fn record(app: &App, batch: &[ProviderReport]) {
    let recorded = loop {
        match app.db.record_reports(batch, &app.pipeline.lease(&app.clock)).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::error!(error = %e, "could not record delivery reports; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    hand_on(app, recorded);
}

/// Queues the delivery events and announces the status changes.
pub fn hand_on(app: &App, recorded: Recorded) {
    app.pipeline.webhooks.now();
    for event in recorded.events {
        app.pipeline.events.push(&event.id.clone(), event);
    }
    for (message_id, status) in recorded.changes {
        app.pipeline.notify(Notification::MessageStatus { message_id, status: status.as_str().into() });
    }
}
