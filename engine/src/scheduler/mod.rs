//! The scheduler: turns due timers and cron fires into events.
//!
//! Firing deletes the timer and inserts its event in one transaction, so
//! each timer fires exactly once, after restarts too ([`cron`] does the
//! same for schedules). It sleeps on the [`Clock`](crate::clock::Clock)
//! until the earliest due time, and is woken when an invocation schedules
//! timers, a plugin is deployed, or a test shifts the clock.

pub mod cron;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::pipeline::Pipeline;
use crate::store::Database;
use std::sync::Arc;
use std::time::Duration;

/// Timers fired in one transaction at most.
const FIRE_BATCH: u32 = 256;
/// The first batch after a quiet spell. A burst (a whole day's reminders due
/// at 9:00) starts small, so the first reminders reach the workers, and
/// their completions the writer, before a full batch holds the one writer;
/// each full batch doubles the next, up to [`FIRE_BATCH`].
const FIRST_FIRE_BATCH: u32 = 16;
const POLL: Duration = Duration::from_secs(5);

/// What the scheduler uses.
pub struct Context {
    pub db: Arc<dyn Database>,
    pub clock: Clock,
    /// Whose cron schedules run (active plugins of active tenants).
    pub directory: Arc<Directory>,
    /// How late a missed cron fire may still run (`limits.cron_grace_s`).
    pub cron_grace_ms: i64,
    /// Where fired events go, and the wake the scheduler sleeps on.
    pub pipeline: Arc<Pipeline>,
}

pub async fn run(ctx: Context) {
    let mut batch = FIRST_FIRE_BATCH;
    loop {
        // Fire only as fast as the workers take events: due timers wait in
        // the database, not in memory, and a burst of them (a whole day's
        // reminders at 9:00) does not queue ahead of everything else.
        ctx.pipeline.wait_for_event_room(2 * FIRE_BATCH as usize).await;
        let now = ctx.clock.now_ms();
        match ctx.db.fire_due_timers(&ctx.pipeline.lease(&ctx.clock), now, batch).await {
            Ok(events) => {
                let full = events.len() == batch as usize;
                for e in events {
                    ctx.pipeline.enqueue_event(e);
                }
                if full {
                    batch = (batch * 2).min(FIRE_BATCH);
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "could not fire timers"),
        }
        batch = FIRST_FIRE_BATCH;
        let mut next = now + POLL.as_millis() as i64;
        if let Ok(Some(due)) = ctx.db.next_timer_due().await {
            next = next.min(due);
        }
        if let Some(due) = cron::fire_due(&ctx, now).await {
            next = next.min(due);
        }
        ctx.pipeline.scheduler.sleep_until(&ctx.clock, next.max(now + 1)).await;
    }
}
