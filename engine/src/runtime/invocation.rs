//! One invocation: a fresh store and instance, the trigger's export called
//! under CPU, memory and time limits, and the buffered effects collected.

use super::bindings::{self, DeliveryReport, InboundMessage};
use super::{
    clock::ClockState, config::ConfigState, http::HttpState, kv::KvState, log::LogState, messaging::MessagingState,
    timers::TimersState,
};
use crate::store::{Effects, LogLine};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the plugin is called for.
#[derive(Debug, Clone)]
pub enum Trigger {
    Inbound(InboundMessage),
    Event { name: String, payload: String },
    Timer { payload: String },
    Delivery(DeliveryReport),
}

impl Trigger {
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Inbound(_) => "inbound",
            Trigger::Event { .. } => "event",
            Trigger::Timer { .. } => "timer",
            Trigger::Delivery(_) => "delivery",
        }
    }
}

/// Everything one store holds. Each capability keeps its own state.
pub struct InvocationState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) messaging: MessagingState,
    pub(super) kv: KvState,
    pub(super) timers: TimersState,
    pub(super) config: ConfigState,
    pub(super) http: HttpState,
    pub(super) log: LogState,
    pub(super) clock: ClockState,
    /// Stands in for every capability the manifest does not grant.
    pub(super) ungranted: super::ungranted::Ungranted,
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::types::Host for InvocationState {}

impl InvocationState {
    pub(super) fn take_effects(&mut self) -> Effects {
        Effects {
            sends: std::mem::take(&mut self.messaging.sends),
            kv_reads: self.kv.reads.drain().collect(),
            kv_writes: std::mem::take(&mut self.kv.writes).into_iter().collect(),
            timer_ops: std::mem::take(&mut self.timers.ops),
        }
    }
}

/// Caps linear memory and records its high-water mark.
pub(super) struct MemoryLimiter {
    pub(super) limit: usize,
    pub(super) peak: usize,
}

/// The error a memory grow past the limit traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the plugin asked for {desired} bytes, the limit is {limit}")]
pub struct MemoryLimitExceeded {
    pub desired: usize,
    pub limit: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired, limit: self.limit }));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Why an invocation produced no effects.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvocationFailure {
    #[error("plugin returned an error: {0}")]
    Plugin(String),
    #[error("CPU limit exceeded: the invocation used all of its {0} fuel")]
    OutOfFuel(u64),
    #[error("time limit exceeded: the invocation ran longer than {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    MemoryLimit(String),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
}

impl InvocationFailure {
    pub fn outcome(&self) -> &'static str {
        match self {
            InvocationFailure::Plugin(_) => "error",
            InvocationFailure::OutOfFuel(_) => "fuel_exhausted",
            InvocationFailure::Timeout(_) => "timeout",
            InvocationFailure::MemoryLimit(_) => "memory_exceeded",
            InvocationFailure::Trap(_) => "trap",
            InvocationFailure::Instantiate(_) => "instantiate_failed",
        }
    }
}

/// The result of one invocation, with its measurements.
#[derive(Debug)]
pub struct InvocationOutcome {
    pub result: Result<Effects, InvocationFailure>,
    /// What the invocation saw and committed, serialized, when its tape
    /// recorded (and the recording fit `limits.recording_bytes_per_invocation`).
    pub recording: Option<Vec<u8>>,
    pub logs: Vec<LogLine>,
    pub fuel_used: u64,
    pub memory_peak: usize,
    pub duration: Duration,
}
