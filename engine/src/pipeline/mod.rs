//! The event pipeline, one direction:
//!
//! ```text
//! ingest ──► events (leased) ──► worker: invoke plugin ──► commit effects with the event
//!                ▲                                              │
//!   sweeper ─────┤ retries, orphans                             ▼
//!   scheduler ───┘ due timers                       outbox ──► dispatcher ──► connector
//!                                                                  ▲              │
//!                                        delivery reports ◄────────┴──────────────┘
//! ```
//!
//! Work lives in the database first and in memory second: every queue here
//! only carries rows already committed and leased to this node, so a crash
//! loses nothing (the leases lapse, or are released at restart, and the
//! sweeper claims the rows again).

mod apps;
pub mod delivery;
pub mod dispatcher;
pub mod fair;
pub mod inbound_routing;
pub mod ingest;
pub mod outbound;
pub mod outbound_routing;
pub mod retention;
pub mod sweeper;
pub mod webhooks;
pub mod worker;
pub mod writer;

use crate::billing::Pricing;
use crate::clock::{Clock, Millis};
use crate::connectors::Connectors;
use crate::connectors::{InboundSms, Tracked, TrackedReceiver};
use crate::directory::Directory;
use crate::limits::Limits;
use crate::net::Dns;
use crate::runtime::Runtime;
use crate::secrets::Sealer;
use crate::store::{Database, EventRow, Lease, OutboxItem};
use crate::tenancy::Route;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use writer::Writer;

/// What happened in the pipeline, for observers (tests, `--follow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// An event finished an attempt: `done`, `retry` or `dead`.
    EventSettled { event_id: String, tenant_id: String, status: &'static str },
    /// An inbound message was accepted (and is durable).
    Received { tenant_id: String, message_id: String },
    /// A message reached a new status. The tenant is known where the
    /// message is sent; reports that move it later name the message only.
    MessageStatus { message_id: String, status: String, tenant_id: Option<String> },
    /// No connector took a message; it is offered again at `at`.
    SendRetry { message_id: String, at: Millis },
    /// A message was held back before any connector saw it (its consent
    /// could not be re-checked, or it could not be marked `sending`); it
    /// is offered again later.
    SendHeld { message_id: String, reason: &'static str },
    /// Housekeeping deleted `rows` past their retention.
    Pruned { rows: u64 },
    /// A plugin with a canary finished an invocation: time to judge it.
    CanaryInvoked { plugin_id: String },
}

/// A queue of leased rows with de-duplication: a row already queued or in
/// progress here is not queued twice.
pub struct WorkQueue<T> {
    tx: mpsc::UnboundedSender<T>,
    in_flight: Mutex<HashSet<String>>,
    running: AtomicUsize,
    /// Signalled whenever a row is done.
    drained: Notify,
}

impl<T> WorkQueue<T> {
    fn new() -> (Self, mpsc::UnboundedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (WorkQueue { tx, in_flight: Mutex::default(), running: AtomicUsize::new(0), drained: Notify::new() }, rx)
    }

    /// Runs `work` on one item, counted as running until it finishes.
    pub async fn run<F: Future<Output = ()>>(&self, id: &str, work: F) {
        self.running.fetch_add(1, Ordering::SeqCst);
        work.await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.done(id);
    }

    pub fn push(&self, id: &str, item: T) {
        let mut in_flight = self.in_flight.lock().expect("queue lock");
        // A closed queue (an ingest-only node) leaves the row to others.
        if in_flight.insert(id.to_string()) && self.tx.send(item).is_err() {
            in_flight.remove(id);
        }
    }

    fn done(&self, id: &str) {
        self.in_flight.lock().expect("queue lock").remove(id);
        self.drained.notify_waiters();
    }

    /// Waits until fewer than `n` rows are queued or in progress here.
    pub async fn wait_below(&self, n: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.len() < n {
                return;
            }
            drained.await;
        }
    }

    pub fn len(&self) -> usize {
        self.in_flight.lock().expect("queue lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Wakes a loop that sleeps until its next due time.
#[derive(Default)]
pub struct Wake {
    notify: Notify,
}

impl Wake {
    pub fn now(&self) {
        self.notify.notify_one();
    }

    /// Sleeps until `deadline` on `clock`, or until woken.
    pub async fn sleep_until(&self, clock: &Clock, deadline: Millis) {
        tokio::select! {
            _ = clock.sleep_until(deadline) => {}
            _ = self.notify.notified() => {}
        }
    }
}

/// What the pipeline's tasks use, and all they use: the wiring (`app`)
/// builds it; the API and the control operations accept work through it.
pub struct Context {
    pub db: Arc<dyn Database>,
    pub directory: Arc<Directory>,
    pub runtime: Arc<Runtime>,
    pub connectors: Arc<Connectors>,
    pub clock: Clock,
    pub limits: Limits,
    pub pricing: Arc<Pricing>,
    /// Opens tenants' sealed webhook secrets.
    pub sealer: Arc<Sealer>,
    /// The queues, batchers and wakes work moves through.
    pub pipeline: Arc<Pipeline>,
    /// The operator's outbound routes (a tenant's own win).
    pub routes: Vec<Route>,
    /// Whether this node runs plugins, the dispatcher and timers (an
    /// ingest-only node only accepts and persists).
    pub process_events: bool,
    /// Where status webhooks resolve names, and whether they may reach
    /// private addresses.
    pub dns: Dns,
    pub webhooks_allow_private_addresses: bool,
    /// The HTTP client that calls numbers' webhook apps (`apps`), built on
    /// first use and kept: its connections are reused.
    pub apps_http: std::sync::OnceLock<reqwest::Client>,
    /// What `GET /metrics` exposes; the pipeline's tasks record into it.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Context {
    /// Reloads the directory after a change, and tells the other nodes
    /// sharing the database to reload theirs.
    pub async fn reload(&self) -> Result<(), crate::store::StoreError> {
        self.directory.reload(self.db.as_ref()).await?;
        self.db.announce_directory_change().await
    }
}

pub struct Pipeline {
    pub node_id: String,
    /// Whether this node runs the work it accepts (see `Settings::process_events`).
    processing: bool,
    /// How long claimed work stays this node's (`Limits::work_lease_ms`).
    lease_ms: i64,
    events: WorkQueue<EventRow>,
    outbox: WorkQueue<OutboxItem>,
    /// Commits accepted work, completions, marks, answers and reports.
    pub writer: Writer,
    pub sends: Tracked<crate::store::SendResult>,
    /// What session connectors (SMPP) receive: reports, messages, parts.
    pub sinks: crate::connectors::Sinks,
    pub sweeper: Wake,
    pub scheduler: Wake,
    pub webhooks: Wake,
    pub notifications: broadcast::Sender<Notification>,
    /// Stops the loops that take new work.
    intake: CancellationToken,
    /// Stops the recorders, once nothing is left to record.
    pub(crate) recorders: CancellationToken,
}

/// The receiving ends, handed to the tasks [`spawn`] starts.
pub struct Receivers {
    events: mpsc::UnboundedReceiver<EventRow>,
    outbox: mpsc::UnboundedReceiver<OutboxItem>,
    sends: TrackedReceiver<crate::store::SendResult>,
    reports: TrackedReceiver<crate::connectors::Acked<crate::store::ProviderReport>>,
    inbound: TrackedReceiver<crate::connectors::Acked<InboundSms>>,
    parts: TrackedReceiver<crate::connectors::Acked<(String, crate::store::InboundPart)>>,
}

impl Pipeline {
    pub fn new(
        db: Arc<dyn Database>,
        metrics: Arc<crate::metrics::Metrics>,
        node_id: String,
        processing: bool,
        lease_ms: u64,
    ) -> (Self, Receivers) {
        let (events, events_rx) = WorkQueue::new();
        let (outbox, outbox_rx) = WorkQueue::new();
        let (sends, sends_rx) = Tracked::new();
        let (reports, reports_rx) = Tracked::new();
        let (inbound, inbound_rx) = Tracked::new();
        let (parts, parts_rx) = Tracked::new();
        let writer = Writer::spawn(db, metrics);
        let pipeline = Pipeline {
            node_id,
            processing,
            lease_ms: lease_ms as i64,
            events,
            outbox,
            writer,
            sends,
            sinks: crate::connectors::Sinks { reports, inbound, parts },
            sweeper: Wake::default(),
            scheduler: Wake::default(),
            webhooks: Wake::default(),
            notifications: broadcast::channel(4096).0,
            intake: CancellationToken::new(),
            recorders: CancellationToken::new(),
        };
        let receivers = Receivers {
            events: events_rx,
            outbox: outbox_rx,
            sends: sends_rx,
            reports: reports_rx,
            inbound: inbound_rx,
            parts: parts_rx,
        };
        (pipeline, receivers)
    }

    /// The lease new work is born with: held by this node, or free at once
    /// on a node that does not process.
    pub fn lease(&self, clock: &Clock) -> Lease {
        let until = if self.processing { clock.now_ms() + self.lease_ms } else { 0 };
        Lease { owner: self.node_id.clone(), until }
    }

    /// Queues an event committed and leased to this node: the one way work
    /// reaches the workers (from ingest, the API, timers, cron, the sweeper).
    pub fn enqueue_event(&self, event: EventRow) {
        self.events.push(&event.id.clone(), event);
    }

    /// Queues a message committed and leased to this node for the dispatcher.
    pub fn enqueue_send(&self, item: OutboxItem) {
        self.outbox.push(&item.message_id.clone(), item);
    }

    /// Waits until fewer than `n` events are queued or running here (the
    /// scheduler fires only as fast as the workers take events).
    pub async fn wait_for_event_room(&self, n: usize) {
        self.events.wait_below(n).await
    }

    /// Runs `task` until the node stops taking work.
    pub fn spawn_intake(&self, task: impl Future<Output = ()> + Send + 'static) {
        spawn_until(&self.intake, task);
    }

    /// Runs `task` until nothing is left to record (after the intake stops).
    pub fn spawn_recorder(&self, task: impl Future<Output = ()> + Send + 'static) {
        spawn_until(&self.recorders, task);
    }

    pub fn notify(&self, n: Notification) {
        let _ = self.notifications.send(n);
    }

    /// Stops taking work, lets what is running finish and be recorded (up
    /// to `grace`), then stops. What is left is durable and leased; a
    /// restart releases the leases and carries on.
    pub async fn shutdown(&self, grace: Duration) {
        self.intake.cancel();
        let deadline = Instant::now() + grace;
        let busy = || {
            self.events.running.load(Ordering::SeqCst) > 0
                || self.outbox.running.load(Ordering::SeqCst) > 0
                || self.sends.pending() > 0
                || self.sinks.reports.pending() > 0
                || self.sinks.inbound.pending() > 0
                || self.sinks.parts.pending() > 0
        };
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.recorders.cancel();
    }
}

fn spawn_until(token: &CancellationToken, task: impl Future<Output = ()> + Send + 'static) {
    let token = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = task => {}
        }
    });
}

/// Starts the pipeline's tasks.
pub fn spawn(ctx: Arc<Context>, rx: Receivers) {
    let (intake, recorders) = (&ctx.pipeline.intake, &ctx.pipeline.recorders);
    spawn_until(recorders, dispatcher::record_results(ctx.clone(), rx.sends));
    spawn_until(recorders, delivery::run(ctx.clone(), rx.reports));
    spawn_until(recorders, ingest::run_session_inbound(ctx.clone(), rx.inbound, rx.parts));
    if !ctx.process_events {
        return;
    }
    spawn_until(intake, worker::run(ctx.clone(), rx.events));
    spawn_until(intake, dispatcher::run(ctx.clone(), rx.outbox));
    spawn_until(intake, sweeper::run(ctx.clone()));
    spawn_until(intake, webhooks::run(ctx.clone()));
    spawn_until(intake, retention::run(ctx.clone()));
    spawn_until(intake, retention::run_parts(ctx.clone()));
}
