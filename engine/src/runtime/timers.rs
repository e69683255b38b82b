//! `timers`: durable timers that call the plugin's `on-timer` later.

use super::bindings::timers;
use super::bindings::types::Error;
use super::tape::Tape;
use super::usage::Usage;
use crate::clock::Clock;
use crate::store::{Database, TimerOp};
use std::sync::Arc;

pub struct TimersState {
    pub(super) db: Arc<dyn Database>,
    pub(super) tenant_id: String,
    pub(super) plugin_id: String,
    pub(super) clock: Clock,
    pub(super) max_ops: usize,
    pub(super) payload_bytes: usize,
    pub(super) key_bytes: usize,
    pub(super) ops: Vec<TimerOp>,
    /// Timers fire in the mode of the invocation that set them.
    pub(super) mode: &'static str,
    /// The tenant's quota of pending timers.
    pub(super) max_pending: i64,
    /// The tenant's pending timers, shared with the node's other invocations.
    pub(super) usage: Arc<Usage>,
    pub(super) tape: Tape,
}

impl TimersState {
    /// A timer the plugin may schedule, as far as its own arguments tell
    /// (checked before the quota, whose lookup uses the key).
    fn check_schedule(&self, key: &str, payload: &str) -> Result<(), Error> {
        self.check(key)?;
        if payload.len() > self.payload_bytes {
            return Err(Error::QuotaExceeded(format!(
                "timer payload is {} bytes; the limit is {}",
                payload.len(),
                self.payload_bytes
            )));
        }
        if payload.contains('\0') {
            return Err(Error::InvalidArgument(format!("timer payload: {}", crate::limits::NUL_REFUSED)));
        }
        Ok(())
    }

    /// Schedules a timer whose arguments and quota were checked.
    async fn schedule(&mut self, key: String, at: i64, payload: String) -> wasmtime::Result<Result<(), Error>> {
        if let Err(e) = self.check_schedule(&key, &payload) {
            return Ok(Err(e));
        }
        if let Err(e) = self.check_quota(&key).await? {
            return Ok(Err(e));
        }
        self.ops.push(TimerOp::Schedule { key, due_at: at, payload, mode: self.mode });
        Ok(Ok(()))
    }

    /// Refuses a timer that would take the tenant past its quota (a key
    /// already pending is replaced, not added).
    async fn check_quota(&mut self, key: &str) -> wasmtime::Result<Result<(), Error>> {
        let scheduled_here = self.ops.iter().any(|op| matches!(op, TimerOp::Schedule { key: k, .. } if k == key));
        if scheduled_here || self.pending(key).await? {
            return Ok(Ok(()));
        }
        if let Some(answer) = self.tape.replayed_check("timer_quota", key) {
            return Ok(answer);
        }
        let result = self.check_usage().await?;
        self.tape.record_check("timer_quota", key, &result);
        Ok(result)
    }

    /// Whether a timer `key` is pending in the store (as recorded, when replaying).
    async fn pending(&self, key: &str) -> wasmtime::Result<bool> {
        if let Some(answer) = self.tape.replayed_lookup("timer_pending", key) {
            return Ok(answer);
        }
        let pending = self
            .db
            .timer_pending(&self.tenant_id, &self.plugin_id, key)
            .await
            .map_err(|e| wasmtime::format_err!("timer lookup failed: {e}"))?;
        self.tape.record_lookup("timer_pending", key, pending);
        Ok(pending)
    }

    async fn check_usage(&mut self) -> wasmtime::Result<Result<(), Error>> {
        let max = self.max_pending;
        let lookup = |e: crate::store::StoreError| wasmtime::format_err!("timer lookup failed: {e}");
        let pending = self.usage.timers(self.db.as_ref(), &self.tenant_id).await.map_err(lookup)?;
        if pending >= max {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's quota of {max} pending timers is used up"))));
        }
        self.usage.admitted_timer(&self.tenant_id);
        Ok(Ok(()))
    }

    fn check(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() || key.len() > self.key_bytes {
            return Err(Error::InvalidArgument(format!("timer key must be 1 to {} bytes", self.key_bytes)));
        }
        if key.contains('\0') {
            return Err(Error::InvalidArgument(format!("timer key: {}", crate::limits::NUL_REFUSED)));
        }
        if self.ops.len() >= self.max_ops {
            return Err(Error::QuotaExceeded(format!("at most {} timer operations per invocation", self.max_ops)));
        }
        Ok(())
    }
}

impl timers::Host for TimersState {
    async fn schedule_at(&mut self, key: String, at: i64, payload: String) -> wasmtime::Result<Result<(), Error>> {
        self.schedule(key, at, payload).await
    }

    async fn schedule_after(
        &mut self,
        key: String,
        delay_ms: u64,
        payload: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let at = self.tape.now(&self.clock).saturating_add(delay_ms.min(i64::MAX as u64) as i64);
        self.schedule(key, at, payload).await
    }

    async fn cancel(&mut self, key: String) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.check(&key) {
            return Ok(Err(e));
        }
        // This invocation's own operations on the key win over the database.
        let decided_here = self.ops.iter().rev().find_map(|op| match op {
            TimerOp::Schedule { key: k, .. } if *k == key => Some(true),
            TimerOp::Cancel { key: k } if *k == key => Some(false),
            _ => None,
        });
        let pending = match decided_here {
            Some(pending) => pending,
            None => self.pending(&key).await?,
        };
        self.ops.push(TimerOp::Cancel { key });
        Ok(Ok(pending))
    }
}
