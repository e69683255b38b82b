//! The sweeper: claims work that no live node holds (retries now due,
//! rows leased by a node that died, everything after a restart) and feeds
//! it to the workers and the dispatcher.

use super::Context;
use std::sync::Arc;
use std::time::Duration;

/// The longest the sweeper sleeps without being woken.
pub const POLL: Duration = Duration::from_secs(1);
const CLAIM_BATCH: u32 = 256;

pub async fn run(ctx: Arc<Context>) {
    loop {
        let now = ctx.clock.now_ms();
        let mut busy = false;
        // Claim only what the queues can absorb soon; the rest stays in the
        // database, where any node can take it.
        if ctx.pipeline.events.len() < 4 * CLAIM_BATCH as usize {
            match ctx.db.claim_events(&ctx.pipeline.lease(&ctx.clock), now, CLAIM_BATCH).await {
                Ok(events) => {
                    busy |= events.len() == CLAIM_BATCH as usize;
                    for e in events {
                        ctx.pipeline.enqueue_event(e);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim events"),
            }
        }
        if ctx.pipeline.outbox.len() < 4 * CLAIM_BATCH as usize {
            match ctx.db.claim_outbox(&ctx.pipeline.lease(&ctx.clock), now, CLAIM_BATCH).await {
                Ok(items) => {
                    busy |= items.len() == CLAIM_BATCH as usize;
                    for i in items {
                        ctx.pipeline.enqueue_send(i);
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
        if let Ok(Some(t)) = ctx.db.next_event_due().await {
            next = next.min(t);
        }
        if let Ok(Some(t)) = ctx.db.next_outbox_due().await {
            next = next.min(t);
        }
        // Never spin: at least a millisecond between sweeps.
        ctx.pipeline.sweeper.sleep_until(&ctx.clock, next.max(now + 1)).await;
    }
}
