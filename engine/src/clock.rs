//! The engine's notion of "now".
//!
//! Everything that stores or compares business time (message timestamps,
//! timer due times, retry times) asks the [`Clock`]. In production it is the
//! system clock. Tests shift it forward ([`Clock::advance`]) to make a
//! reminder due tomorrow fire now: the clock keeps running in real time from
//! the shifted point, and everything sleeping on it wakes to re-check.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Milliseconds since the Unix epoch: the one time unit stored in the database.
pub type Millis = i64;

#[derive(Clone)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    offset_ms: AtomicI64,
    /// A frozen clock reads this (plus the offset) instead of the system time.
    frozen_at: Option<Millis>,
    shifted: watch::Sender<u64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock {
            inner: Arc::new(ClockInner { offset_ms: AtomicI64::new(0), frozen_at: None, shifted: watch::channel(0).0 }),
        }
    }

    /// A clock stopped at `ms` that moves only when advanced (tests that
    /// assert exact timestamps).
    pub fn frozen(ms: Millis) -> Self {
        Clock {
            inner: Arc::new(ClockInner {
                offset_ms: AtomicI64::new(0),
                frozen_at: Some(ms),
                shifted: watch::channel(0).0,
            }),
        }
    }

    pub fn now_ms(&self) -> Millis {
        let base = self.inner.frozen_at.unwrap_or_else(|| Utc::now().timestamp_millis());
        base + self.inner.offset_ms.load(Ordering::Relaxed)
    }

    pub fn now(&self) -> DateTime<Utc> {
        to_datetime(self.now_ms())
    }

    /// Moves the clock forward (tests, and `switchboard simulate --at`).
    pub fn advance(&self, by: Duration) {
        self.inner.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
        self.inner.shifted.send_modify(|n| *n += 1);
    }

    /// Moves the clock so that now is `to` (never backwards).
    pub fn advance_to(&self, to: Millis) {
        let now = self.now_ms();
        if to > now {
            self.advance(Duration::from_millis((to - now) as u64));
        }
    }

    /// Sleeps until the clock reads `deadline` or later, waking early if the
    /// clock is shifted past it.
    pub async fn sleep_until(&self, deadline: Millis) {
        let mut shifted = self.inner.shifted.subscribe();
        loop {
            let now = self.now_ms();
            if now >= deadline {
                return;
            }
            let wait = Duration::from_millis((deadline - now) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shifted.changed() => {}
            }
        }
    }

    /// Resolves on the next shift of the clock (for loops that sleep on
    /// something else too).
    pub fn shifts(&self) -> watch::Receiver<u64> {
        self.inner.shifted.subscribe()
    }
}

/// Midnight UTC of the day `ms` falls in.
pub fn start_of_utc_day(ms: Millis) -> Millis {
    ms - ms.rem_euclid(86_400_000)
}

pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn to_rfc3339(ms: Millis) -> String {
    to_datetime(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
