//! `clock`: the host's (test-controllable) time.

use super::bindings::clock;
use crate::clock::Clock;

pub struct ClockState {
    pub(super) clock: Clock,
}

impl clock::Host for ClockState {
    async fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.clock.now_ms())
    }
}
