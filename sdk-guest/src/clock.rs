//! The host's clock (tests can move it; prefer it to the system clock).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    crate::host::clock::now()
}
