//! Retention: invocation records and plugin logs older than
//! `limits.plugin_records_retention_s` are deleted, hourly.

use crate::app::App;
use std::sync::Arc;

const EVERY_MS: i64 = 3_600_000;

pub async fn run(app: Arc<App>) {
    loop {
        let now = app.clock.now_ms();
        let keep_ms = app.settings.limits.plugin_records_retention_s as i64 * 1000;
        match app.db.prune_records(now - keep_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old invocation records and plugin logs"),
            Err(e) => tracing::error!(error = %e, "could not prune invocation records"),
        }
        app.clock.sleep_until(now + EVERY_MS).await;
    }
}
