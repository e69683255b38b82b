//! Housekeeping on the clock:
//!
//! - hourly, what has outlived its retention is deleted: invocation records
//!   and plugin logs (`limits.plugin_records_retention_s`), remembered
//!   carrier ids and reports that never found their message
//!   (`limits.carrier_ids_retention_s`), invocations' recordings past
//!   `limits.recording_retention_s` or beyond a tenant's
//!   `limits.recording_bytes_per_tenant`, expired number claims, closed
//!   compliance reply windows — tables anonymous traffic can write stay
//!   bounded. The store deletes `limits.prune_batch_rows` rows per
//!   transaction, so other writes never wait behind more than one batch;
//! - every minute, long inbound messages whose parts stopped coming
//!   (`limits.inbound_parts_timeout_s`) are delivered as what arrived.

use super::Context;
use super::ingest;
use crate::store::Retention;
use std::sync::Arc;

const PRUNE_EVERY_MS: i64 = 3_600_000;
const PARTS_EVERY_MS: i64 = 60_000;

pub async fn run(ctx: Arc<Context>) {
    loop {
        let now = ctx.clock.now_ms();
        let limits = &ctx.limits;
        let retention = Retention {
            records_before: now - limits.plugin_records_retention_s as i64 * 1000,
            carrier_ids_before: now - limits.carrier_ids_retention_s as i64 * 1000,
            now,
            recordings_before: now - limits.recording_retention_s as i64 * 1000,
            recording_bytes_per_tenant: limits.recording_bytes_per_tenant,
            batch_rows: limits.prune_batch_rows.max(1),
        };
        match ctx.db.prune(&retention).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(deleted = n, "pruned rows past their retention");
                ctx.pipeline.notify(super::Notification::Pruned { rows: n });
            }
            Err(e) => tracing::error!(error = %e, "could not prune old rows"),
        }
        ctx.clock.sleep_until(now + PRUNE_EVERY_MS).await;
    }
}

pub async fn run_parts(ctx: Arc<Context>) {
    loop {
        let now = ctx.clock.now_ms();
        let delivered = ingest::flush_stale_parts(&ctx).await;
        if delivered > 0 {
            tracing::info!(delivered, "delivered incomplete inbound messages after the parts timeout");
        }
        ctx.clock.sleep_until(now + PARTS_EVERY_MS).await;
    }
}
