//! The writer: the one task that commits what the pipeline produces.
//!
//! Callers submit work (an accepted inbound message, an API send, a
//! completed invocation, a batch of `sending` marks, carrier answers or
//! delivery reports) and await its result. The writer takes everything
//! queued meanwhile and commits it as one cycle, in one transaction
//! ([`crate::store::cycle`]): one disk flush for all of it. While one
//! cycle is written the next accumulates, so cycles follow load: one item
//! when idle, hundreds under load, without a timer adding latency.
//!
//! Where the database takes several writers (PostgreSQL), each kind of
//! work has a lane of its own instead, written side by side, so that a
//! slow kind does not hold the others back
//! ([`crate::store::cycle::WriteCycles::single_writer`]).
//!
//! A kind of work the cycle could not write is tried again in its own
//! transaction (where PostgreSQL's conflicts with other nodes are retried)
//! before its callers hear of an error.

use crate::metrics::Metrics;
use crate::store::cycle::{CycleResults, SendingMarks, Shared, WriteCycle};
use crate::store::{
    CompletionResult, Database, EventCompletion, InboundOutcome, Lease, NewInbound, OutboundRequest, OutboundResult,
    ProviderReport, Recorded, SendResult, StoreError,
};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Rows one cycle takes at most (an inbound message, a send, a completion
/// or one id of a batch count one each).
const MAX_CYCLE_ROWS: usize = 2048;

type Reply<R> = oneshot::Sender<Shared<R>>;

// Each job moves once, through the channel: boxing the large one would cost
// an allocation to save a copy.
#[allow(clippy::large_enum_variant)]
enum Job {
    Inbound(NewInbound, Reply<InboundOutcome>),
    Outbound(OutboundRequest, Reply<OutboundResult>),
    Completion(EventCompletion, Reply<CompletionResult>),
    Sending(SendingMarks, Reply<Vec<String>>),
    SendResults(Arc<Vec<SendResult>>, Lease, Reply<Recorded>),
    Reports(Arc<Vec<ProviderReport>>, Lease, Reply<Recorded>),
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the engine is shutting down")]
    Closed,
}

#[derive(Clone)]
pub struct Writer {
    /// One lane, or one per kind of job (see the module documentation).
    lanes: Vec<mpsc::UnboundedSender<Job>>,
}

impl Writer {
    /// Spawns the writing task.
    pub fn spawn(db: Arc<dyn Database>, metrics: Arc<Metrics>) -> Self {
        let lanes = if db.single_writer() { 1 } else { Job::KINDS };
        let lanes = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(db.clone(), metrics.clone(), rx));
                tx
            })
            .collect();
        Writer { lanes }
    }

    /// Accepts an inbound message with the events routed from it.
    pub async fn inbound(&self, item: NewInbound) -> Result<InboundOutcome, WriteError> {
        self.submit(|reply| Job::Inbound(item, reply)).await
    }

    /// Queues an API request with its debit and idempotency record.
    pub async fn outbound(&self, request: OutboundRequest) -> Result<OutboundResult, WriteError> {
        self.submit(|reply| Job::Outbound(request, reply)).await
    }

    /// Commits an invocation's outcome with its event.
    pub async fn completion(&self, completion: EventCompletion) -> Result<CompletionResult, WriteError> {
        self.submit(|reply| Job::Completion(completion, reply)).await
    }

    /// Marks messages `sending`; the ids still leased to this node come back.
    pub async fn sending(&self, marks: SendingMarks) -> Result<Vec<String>, WriteError> {
        self.submit(|reply| Job::Sending(marks, reply)).await
    }

    /// Records what connectors answered.
    pub async fn send_results(&self, results: Arc<Vec<SendResult>>, lease: Lease) -> Result<Recorded, WriteError> {
        self.submit(|reply| Job::SendResults(results, lease, reply)).await
    }

    /// Applies carrier delivery reports.
    pub async fn reports(&self, reports: Arc<Vec<ProviderReport>>, lease: Lease) -> Result<Recorded, WriteError> {
        self.submit(|reply| Job::Reports(reports, lease, reply)).await
    }

    async fn submit<R>(&self, job: impl FnOnce(Reply<R>) -> Job) -> Result<R, WriteError> {
        let (reply, wait) = oneshot::channel();
        let job = job(reply);
        let lane = &self.lanes[job.kind() % self.lanes.len()];
        lane.send(job).map_err(|_| WriteError::Closed)?;
        wait.await.map_err(|_| WriteError::Closed)?.map_err(WriteError::Store)
    }
}

impl Job {
    const KINDS: usize = 5;

    /// The lane of a job where each kind has one. Carrier answers and
    /// delivery reports share one, so that a report is written after the
    /// answer submitted before it, as in a single cycle.
    fn kind(&self) -> usize {
        match self {
            Job::Inbound(..) => 0,
            Job::Outbound(..) => 1,
            Job::Completion(..) => 2,
            Job::Sending(..) => 3,
            Job::SendResults(..) | Job::Reports(..) => 4,
        }
    }
}

/// One cycle's work and who waits for each part.
#[derive(Default)]
struct Cycle {
    work: WriteCycle,
    inbound: Vec<Reply<InboundOutcome>>,
    outbound: Vec<Reply<OutboundResult>>,
    completions: Vec<Reply<CompletionResult>>,
    sending: Vec<Reply<Vec<String>>>,
    send_results: Vec<Reply<Recorded>>,
    reports: Vec<Reply<Recorded>>,
    rows: usize,
}

impl Cycle {
    fn add(&mut self, job: Job) {
        let w = &mut self.work;
        self.rows += match job {
            Job::Inbound(item, reply) => {
                w.inbound.push(item);
                self.inbound.push(reply);
                1
            }
            Job::Outbound(item, reply) => {
                w.outbound.push(item);
                self.outbound.push(reply);
                1
            }
            Job::Completion(item, reply) => {
                w.completions.push(item);
                self.completions.push(reply);
                1
            }
            Job::Sending(marks, reply) => {
                let rows = marks.message_ids.len();
                w.sending.push(marks);
                self.sending.push(reply);
                rows
            }
            Job::SendResults(results, lease, reply) => {
                let rows = results.len();
                w.send_results.push((results, lease));
                self.send_results.push(reply);
                rows
            }
            Job::Reports(reports, lease, reply) => {
                let rows = reports.len();
                w.reports.push((reports, lease));
                self.reports.push(reply);
                rows
            }
        };
    }
}

async fn run(db: Arc<dyn Database>, metrics: Arc<Metrics>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        let mut cycle = Cycle::default();
        cycle.add(job);
        while cycle.rows < MAX_CYCLE_ROWS {
            match rx.try_recv() {
                Ok(job) => cycle.add(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let results = db.write_cycle(&cycle.work).await;
        metrics.write_cycle(cycle.rows, started.elapsed());
        tracing::trace!(
            rows = cycle.rows,
            kinds = cycle.work.kinds(),
            committed = results.committed,
            took_us = started.elapsed().as_micros() as u64,
            "write cycle"
        );
        answer(db.as_ref(), cycle, results).await;
    }
}

/// Hands each caller its result, first writing again, alone, what failed.
async fn answer(db: &dyn Database, cycle: Cycle, results: CycleResults) {
    let Cycle { work, inbound, outbound, completions, sending, send_results, reports, .. } = cycle;
    // Kinds already written alone are not written again.
    let alone = results.kinds_alone;
    let inbound_results = match results.inbound {
        Err(_) if work.inbound.is_empty() => Ok(Vec::new()),
        Err(e) if !alone => again("inbound", e, db.insert_inbound(&work.inbound)).await,
        ok => ok,
    };
    reply_each(inbound, inbound_results);
    let outbound_results = match results.outbound {
        Err(_) if work.outbound.is_empty() => Ok(Vec::new()),
        Err(e) if !alone => again("sends", e, db.insert_outbound(&work.outbound)).await,
        ok => ok,
    };
    reply_each(outbound, outbound_results);
    let completion_results = match results.completions {
        Err(_) if work.completions.is_empty() => Ok(Vec::new()),
        Err(e) if !alone => again("completions", e, db.complete_events(&work.completions)).await,
        ok => ok,
    };
    reply_each(completions, completion_results);
    for ((marks, result), reply) in work.sending.iter().zip(results.sending).zip(sending) {
        let result = match result {
            Err(e) if !alone => {
                again("sending marks", e, db.mark_sending(&marks.message_ids, marks.at, &marks.lease)).await
            }
            ok => ok,
        };
        let _ = reply.send(result);
    }
    for (((batch, lease), result), reply) in work.send_results.iter().zip(results.send_results).zip(send_results) {
        let result = match result {
            Err(e) if !alone => again("carrier answers", e, db.record_send_results(batch, lease)).await,
            ok => ok,
        };
        let _ = reply.send(result);
    }
    for (((batch, lease), result), reply) in work.reports.iter().zip(results.reports).zip(reports) {
        let result = match result {
            Err(e) if !alone => again("delivery reports", e, db.record_reports(batch, lease)).await,
            ok => ok,
        };
        let _ = reply.send(result);
    }
}

/// Writes one kind of work again in its own transaction.
async fn again<T>(what: &str, error: Arc<StoreError>, alone: impl Future<Output = Result<T, StoreError>>) -> Shared<T> {
    tracing::warn!(error = %error, what, "write cycle could not write this part; writing it alone");
    alone.await.map_err(|e| {
        tracing::error!(error = %e, what, "write failed");
        Arc::new(e)
    })
}

/// Answers the callers of a batch, one result each, in order.
fn reply_each<R>(replies: Vec<Reply<R>>, results: Shared<Vec<R>>) {
    match results {
        Ok(results) => {
            debug_assert_eq!(results.len(), replies.len());
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
