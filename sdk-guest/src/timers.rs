//! Durable timers that call the plugin's `on_timer` later.

use crate::host::timers as raw;
use crate::types::HostError;
use std::time::Duration;

/// Calls `on_timer(payload)` at `at_ms` (milliseconds since the Unix
/// epoch). Scheduling an existing `key` replaces it.
pub fn schedule_at(key: impl AsRef<str>, at_ms: i64, payload: impl AsRef<str>) -> Result<(), HostError> {
    raw::schedule_at(key.as_ref(), at_ms, payload.as_ref())
}

/// Calls `on_timer(payload)` after `delay`.
pub fn schedule_after(key: impl AsRef<str>, delay: Duration, payload: impl AsRef<str>) -> Result<(), HostError> {
    raw::schedule_after(key.as_ref(), delay.as_millis().min(u64::MAX as u128) as u64, payload.as_ref())
}

/// Cancels the pending timer `key`; returns whether one was pending.
pub fn cancel(key: impl AsRef<str>) -> Result<bool, HostError> {
    raw::cancel(key.as_ref())
}
