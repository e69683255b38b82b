//! Delivery reports from every connector, applied in batches to the parts
//! and messages they name; reports for messages whose plugin subscribes
//! to them become `on-delivery` events.

use super::Context;
use super::{Notification, TrackedReceiver};
use crate::connectors::Acked;
use crate::store::{ProviderReport, Recorded};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(ctx: Arc<Context>, mut reports: TrackedReceiver<Acked<ProviderReport>>) {
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 512).await > 0 {
        let items: Vec<ProviderReport> = batch.iter().map(|a| a.item.clone()).collect();
        for report in &items {
            ctx.metrics.delivery_report(&report.connector, report.status.as_str());
        }
        record(&ctx, items).await;
        reports.committed(batch.len());
        for acked in batch.drain(..) {
            acked.done();
        }
    }
}

/// Records reports durably (retrying while the store is unavailable) and
/// hands on what they trigger.
pub async fn record(ctx: &Context, batch: Vec<ProviderReport>) {
    let batch = Arc::new(batch);
    let recorded = loop {
        match ctx.pipeline.writer.reports(batch.clone(), ctx.pipeline.lease(&ctx.clock)).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::error!(error = %e, "could not record delivery reports; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    hand_on(ctx, recorded);
}

/// Queues the delivery events and announces the status changes.
pub fn hand_on(ctx: &Context, recorded: Recorded) {
    for (connector, lag) in &recorded.report_lags {
        ctx.metrics.delivery_lag(connector, Duration::from_millis((*lag).max(0) as u64));
    }
    for report in &recorded.traced {
        // Recorded already: the span marks the report in the message's
        // trace, however long after the send it came.
        crate::telemetry::resume(Some(&report.trace_context), || {
            tracing::info_span!(
                "sms.delivery_report",
                otel.kind = "consumer",
                messaging.system = "sms",
                messaging.message.id = %report.message_id,
                switchboard.connector = %report.connector,
                switchboard.status = report.status.as_str(),
            )
        });
    }
    ctx.pipeline.webhooks.now();
    for event in recorded.events {
        ctx.pipeline.enqueue_event(event);
    }
    for (message_id, status) in recorded.changes {
        ctx.pipeline.notify(Notification::MessageStatus {
            message_id,
            status: status.as_str().into(),
            tenant_id: None,
        });
    }
}
