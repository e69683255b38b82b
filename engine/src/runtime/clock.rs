//! `clock`: the host's (test-controllable) time.

use super::bindings::clock;
use super::tape::Tape;
use crate::clock::Clock;

pub struct ClockState {
    pub(super) clock: Clock,
    pub(super) tape: Tape,
}

impl clock::Host for ClockState {
    async fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.tape.now(&self.clock))
    }
}
