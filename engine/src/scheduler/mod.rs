//! The scheduler: turns due timers and cron fires into events.
//!
//! Firing deletes the timer and inserts its event in one transaction, so
//! each timer fires exactly once, after restarts too ([`cron`] does the
//! same for schedules). It sleeps on the [`Clock`](crate::clock::Clock)
//! until the earliest due time, and is woken when an invocation schedules
//! timers, a plugin is deployed, or a test shifts the clock.

pub mod cron;

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;

const FIRE_BATCH: u32 = 256;
const POLL: Duration = Duration::from_secs(5);

pub async fn run(app: Arc<App>) {
    loop {
        // Fire only as fast as the workers take events: due timers wait in
        // the database, not in memory, and a burst of them (a whole day's
        // reminders at 9:00) does not queue ahead of everything else.
        app.pipeline.events.wait_below(2 * FIRE_BATCH as usize).await;
        let now = app.clock.now_ms();
        match app.db.fire_due_timers(&app.pipeline.lease(&app.clock), now, FIRE_BATCH).await {
            Ok(events) => {
                let full = events.len() == FIRE_BATCH as usize;
                for e in events {
                    app.pipeline.events.push(&e.id.clone(), e);
                }
                if full {
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "could not fire timers"),
        }
        let mut next = now + POLL.as_millis() as i64;
        if let Ok(Some(due)) = app.db.next_timer_due().await {
            next = next.min(due);
        }
        if let Some(due) = cron::fire_due(&app, now).await {
            next = next.min(due);
        }
        app.pipeline.scheduler.sleep_until(&app.clock, next.max(now + 1)).await;
    }
}
