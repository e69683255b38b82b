//! One writer cycle: everything the pipeline has waiting to be written —
//! accepted inbound, API sends, completed invocations, `sending` marks,
//! carrier answers, delivery reports — committed in one transaction.
//!
//! Each kind is what its own store method would write ([`Events`],
//! [`Deliveries`]); taken together they cost one `BEGIN`/`COMMIT` and one
//! disk flush instead of one each. That is how a database with one writer
//! connection (SQLite) writes a cycle; one with several (PostgreSQL) writes
//! each kind in a transaction of its own, side by side. A kind that fails
//! is undone alone and the others commit: in one transaction, the cycle is
//! first written without savepoints (they cost statements and a
//! sub-journal on every cycle, and parts rarely fail); when a part fails,
//! the transaction is undone and the cycle written again with each kind
//! inside a savepoint.
//!
//! [`Events`]: super::Events
//! [`Deliveries`]: super::Deliveries

use super::{
    CompletionResult, EventCompletion, InboundOutcome, Lease, NewInbound, OutboundRequest, OutboundResult,
    ProviderReport, Recorded, SendResult, StoreError,
};
use crate::clock::Millis;
use async_trait::async_trait;
use std::sync::Arc;

/// A result several callers share (one failed commit fails them all).
pub type Shared<T> = Result<T, Arc<StoreError>>;

/// Messages to mark `sending`, as [`super::Deliveries::mark_sending`] takes them.
#[derive(Debug, Clone)]
pub struct SendingMarks {
    pub message_ids: Vec<String>,
    pub at: Millis,
    pub lease: Lease,
}

/// What one cycle writes. Inbound, API sends and completions are batches
/// of single items from many callers; marks, answers and reports arrive
/// as batches already, one entry per batch.
#[derive(Default)]
pub struct WriteCycle {
    pub inbound: Vec<NewInbound>,
    pub outbound: Vec<OutboundRequest>,
    pub completions: Vec<EventCompletion>,
    pub sending: Vec<SendingMarks>,
    pub send_results: Vec<(Arc<Vec<SendResult>>, Lease)>,
    pub reports: Vec<(Arc<Vec<ProviderReport>>, Lease)>,
}

impl WriteCycle {
    pub fn is_empty(&self) -> bool {
        self.kinds() == 0
    }

    /// How many kinds of work the cycle holds (each batch of marks,
    /// answers or reports counts as one).
    pub fn kinds(&self) -> usize {
        usize::from(!self.inbound.is_empty())
            + usize::from(!self.outbound.is_empty())
            + usize::from(!self.completions.is_empty())
            + self.sending.len()
            + self.send_results.len()
            + self.reports.len()
    }
}

/// What each part of a cycle came to, in the cycle's order. A part that
/// failed alone carries its own error; when the commit failed, every part
/// carries that error.
pub struct CycleResults {
    /// Whether the transaction committed (what failed alone inside it did not).
    pub committed: bool,
    /// Whether each kind was written in a transaction of its own (a
    /// database with several writers): what failed, failed alone.
    pub kinds_alone: bool,
    pub inbound: Shared<Vec<InboundOutcome>>,
    pub outbound: Shared<Vec<OutboundResult>>,
    pub completions: Shared<Vec<CompletionResult>>,
    pub sending: Vec<Shared<Vec<String>>>,
    pub send_results: Vec<Shared<Recorded>>,
    pub reports: Vec<Shared<Recorded>>,
}

impl CycleResults {
    /// Every part failed with `error`.
    pub fn failed(cycle: &WriteCycle, error: StoreError) -> Self {
        let error = Arc::new(error);
        CycleResults {
            committed: false,
            kinds_alone: false,
            inbound: Err(error.clone()),
            outbound: Err(error.clone()),
            completions: Err(error.clone()),
            sending: cycle.sending.iter().map(|_| Err(error.clone())).collect(),
            send_results: cycle.send_results.iter().map(|_| Err(error.clone())).collect(),
            reports: cycle.reports.iter().map(|_| Err(error.clone())).collect(),
        }
    }
}

#[async_trait]
pub trait WriteCycles {
    /// Writes `cycle` in one transaction (see the module documentation).
    async fn write_cycle(&self, cycle: &WriteCycle) -> CycleResults;
    /// Whether the database writes through one connection (SQLite): then
    /// one cycle holds every kind of work. A database with several
    /// (PostgreSQL, where each statement is a network round trip) is
    /// better served by a writer per kind, side by side.
    fn single_writer(&self) -> bool;
}
