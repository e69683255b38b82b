//! The sweeper: claims work that no live node holds (retries now due,
//! rows leased by a node that died, everything after a restart) and feeds
//! it to the workers and the dispatcher.

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;

/// The longest the sweeper sleeps without being woken.
pub const POLL: Duration = Duration::from_secs(1);
const CLAIM_BATCH: u32 = 256;

pub async fn run(app: Arc<App>) {
    loop {
        let now = app.clock.now_ms();
        let mut busy = false;
        // Claim only what the queues can absorb soon; the rest stays in the
        // database, where any node can take it.
        if app.pipeline.events.len() < 4 * CLAIM_BATCH as usize {
            match app.db.claim_events(&app.pipeline.lease(&app.clock), now, CLAIM_BATCH).await {
                Ok(events) => {
                    busy |= events.len() == CLAIM_BATCH as usize;
                    for e in events {
                        app.pipeline.events.push(&e.id.clone(), e);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim events"),
            }
        }
        if app.pipeline.outbox.len() < 4 * CLAIM_BATCH as usize {
            match app.db.claim_outbox(&app.pipeline.lease(&app.clock), now, CLAIM_BATCH).await {
                Ok(items) => {
                    busy |= items.len() == CLAIM_BATCH as usize;
                    for i in items {
                        app.pipeline.outbox.push(&i.message_id.clone(), i);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim the outbox"),
            }
        }
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        let mut next = now + POLL.as_millis() as i64;
        if let Ok(Some(t)) = app.db.next_event_due().await {
            next = next.min(t);
        }
        if let Ok(Some(t)) = app.db.next_outbox_due().await {
            next = next.min(t);
        }
        // Never spin: at least a millisecond between sweeps.
        app.pipeline.sweeper.sleep_until(&app.clock, next.max(now + 1)).await;
    }
}
