//! Workers: run each leased event's plugin in a fresh sandbox and commit
//! the outcome with the event.
//!
//! Success commits the buffered effects (sends, kv writes, timers) and
//! marks the event done in one transaction; failure commits nothing but
//! the event's retry time (or its dead-lettering) and the invocation
//! record. A kv conflict re-runs the invocation at once.
//!
//! Events wait in per-tenant queues and start in fair turns (see
//! [`super::fair`]); a tenant over its invocations-per-minute quota has its
//! events deferred to the next minute, without using up attempts.

use super::Context;
use super::Notification;
use super::fair::FairQueue;
use crate::runtime::bindings::{DeliveryReport, DeliveryStatus, InboundMessage};
use crate::runtime::tape::Tape;
use crate::runtime::{InvocationContext, Trigger};
use crate::store::{
    Completion, CompletionResult, EventCompletion, EventKind, EventRow, InvocationRecord, MessageStatus,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Re-runs after kv conflicts before the attempt counts as failed.
const MAX_CONFLICT_RERUNS: u32 = 100;

/// Re-runs after a kv conflict take their plugin's lock, so contending
/// invocations of one plugin retry one at a time instead of colliding
/// again (first attempts still run in parallel).
#[derive(Default)]
struct RerunLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RerunLocks {
    fn of(&self, plugin_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().expect("rerun locks").entry(plugin_id.to_string()).or_default().clone()
    }
}

/// Invocations per tenant in the current minute (this node's count).
#[derive(Default)]
struct MinuteCounts(std::sync::Mutex<HashMap<String, (i64, u32)>>);

impl MinuteCounts {
    /// Counts one invocation; `Err(next minute)` when the quota is used up.
    fn take(&self, tenant: &str, quota: u32, now: crate::clock::Millis) -> Result<(), crate::clock::Millis> {
        let minute = now - now.rem_euclid(60_000);
        let mut counts = self.0.lock().expect("minute counts");
        let entry = counts.entry(tenant.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= quota {
            return Err(minute + 60_000);
        }
        entry.1 += 1;
        Ok(())
    }
}

pub async fn run(ctx: Arc<Context>, mut events: mpsc::UnboundedReceiver<EventRow>) {
    let limits = &ctx.limits;
    let mut queue: FairQueue<EventRow> =
        FairQueue::new(limits.concurrent_invocations, limits.tenant_concurrent_invocations);
    let (finished_tx, mut finished) = mpsc::unbounded_channel::<String>();
    let reruns = Arc::new(RerunLocks::default());
    let minutes = Arc::new(MinuteCounts::default());
    loop {
        while let Some((tenant, event)) = queue.start_next() {
            let (ctx, reruns, minutes, finished_tx) =
                (ctx.clone(), reruns.clone(), minutes.clone(), finished_tx.clone());
            tokio::spawn(async move {
                let id = event.id.clone();
                let slot = Slot { tenant: Some(tenant), finished: finished_tx };
                let span = invocation_span(&event);
                ctx.pipeline.events.run(&id, process(&ctx, &reruns, &minutes, event, slot).instrument(span)).await;
            });
        }
        tokio::select! {
            event = events.recv() => match event {
                Some(e) => queue.push(&e.tenant_id.clone(), e),
                None => return,
            },
            Some(tenant) = finished.recv() => queue.finished(&tenant),
        }
    }
}

/// The span of one event's processing (its invocation and the commit of
/// its outcome), in the trace of what caused the event; an event with no
/// stored context (a timer's, a cron fire's) begins a trace of its own.
fn invocation_span(event: &EventRow) -> tracing::Span {
    let make = || {
        tracing::info_span!(
            "plugin.invoke",
            otel.kind = "internal",
            switchboard.event.id = %event.id,
            switchboard.event.kind = event.kind.as_str(),
            switchboard.plugin.id = %event.plugin_id,
            switchboard.attempt = event.attempts + 1,
            switchboard.plugin.version = tracing::field::Empty,
            switchboard.outcome = tracing::field::Empty,
            switchboard.fuel = tracing::field::Empty,
            switchboard.memory_peak_bytes = tracing::field::Empty,
            switchboard.duration_us = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    };
    match event.trace_context.as_deref() {
        Some(stored) => crate::telemetry::resume(Some(stored), make),
        None => crate::telemetry::begin(make),
    }
}

/// A tenant's turn in the fair queue, given back as soon as its plugin has
/// run: waiting for the writer's commit costs no CPU, and holding the turn
/// through it would cap a tenant at (turns ÷ commit time) events/s.
/// (Re-runs after a kv conflict run outside the turn: they are rare, and
/// one at a time per plugin.)
struct Slot {
    tenant: Option<String>,
    finished: mpsc::UnboundedSender<String>,
}

impl Slot {
    fn release(&mut self) {
        if let Some(tenant) = self.tenant.take() {
            let _ = self.finished.send(tenant);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why an event cannot run at all (as opposed to the plugin failing).
pub(super) enum Unrunnable {
    /// Permanent: dead-letter now.
    Dead(String),
    /// Transient: retry later.
    Retry(String),
    /// Over a quota: run at this time, without using up an attempt.
    Deferred(crate::clock::Millis),
}

async fn process(ctx: &Context, locks: &RerunLocks, minutes: &MinuteCounts, event: EventRow, mut slot: Slot) {
    let mut reruns = 0;
    let mut rerun_lock = None;
    let limits = &ctx.limits;
    let quota = ctx
        .directory
        .snapshot()
        .tenants
        .get(&event.tenant_id)
        .map_or(limits.tenant_invocations_per_minute, |t| t.settings.quotas.resolve(limits).invocations_per_minute);
    let deferred = minutes.take(&event.tenant_id, quota, ctx.clock.now_ms()).err();
    loop {
        let outcome = if let Some(until) = deferred {
            Err(Unrunnable::Deferred(until))
        } else if reruns >= MAX_CONFLICT_RERUNS {
            Err(Unrunnable::Retry(format!("kv conflicts persisted over {reruns} re-runs")))
        } else if event.kind == EventKind::App {
            super::apps::attempt(ctx, &event).await
        } else {
            attempt(ctx, &event).await
        };
        slot.release();
        let (mut completion, record) = match outcome {
            Ok(done) => done,
            Err(Unrunnable::Dead(reason)) => (Completion::Failed { error: reason, retry_at: None }, None),
            Err(Unrunnable::Retry(reason)) => {
                (Completion::Failed { error: reason, retry_at: next_retry(ctx, &event) }, None)
            }
            Err(Unrunnable::Deferred(until)) => (
                Completion::Deferred {
                    until,
                    reason: format!("the tenant's quota of {quota} invocations per minute is used up"),
                },
                None,
            ),
        };
        if let Completion::Succeeded(effects) = &mut completion {
            // Sends join the invocation's span, or where there is none (an
            // unsampled trace) the event's own context.
            let made_here = crate::telemetry::current();
            for m in &mut effects.sends {
                m.trace_context = made_here.clone().or_else(|| event.trace_context.clone());
            }
        }
        let retry_at = match &completion {
            Completion::Failed { retry_at, .. } => Some(*retry_at),
            Completion::Succeeded(_) => None,
            Completion::Deferred { until, .. } => Some(Some(*until)),
        };
        // Scheduled sends wait in the outbox; the sweeper must know the new due time.
        let schedules =
            matches!(&completion, Completion::Succeeded(e) if e.sends.iter().any(|m| m.scheduled_at.is_some()));
        let now = ctx.clock.now_ms();
        let record = record.unwrap_or_else(|| InvocationRecord {
            tenant_id: event.tenant_id.clone(),
            plugin_id: event.plugin_id.clone(),
            version_id: String::new(),
            event_id: event.id.clone(),
            trigger: event.kind.as_str(),
            started_at: now,
            duration_us: 0,
            fuel_used: 0,
            memory_peak: 0,
            outcome: "not_run",
            error: match &completion {
                Completion::Failed { error, .. } | Completion::Deferred { reason: error, .. } => Some(error.clone()),
                Completion::Succeeded(_) => None,
            },
            logs: vec![],
            recording: None,
            canary: false,
        });
        let span = tracing::Span::current();
        span.record("switchboard.outcome", record.outcome);
        span.record("switchboard.fuel", record.fuel_used);
        span.record("switchboard.memory_peak_bytes", record.memory_peak);
        span.record("switchboard.duration_us", record.duration_us);
        if !record.version_id.is_empty() {
            span.record("switchboard.plugin.version", record.version_id.as_str());
        }
        if record.outcome != "ok" {
            span.record("error.type", record.outcome);
        }
        ctx.metrics.invocation(crate::metrics::InvocationSample {
            outcome: record.outcome,
            duration: std::time::Duration::from_micros(record.duration_us.max(0) as u64),
            fuel: record.fuel_used.max(0) as u64,
        });
        let submitted = ctx
            .pipeline
            .writer
            .completion(EventCompletion {
                event_id: event.id.clone(),
                tenant_id: event.tenant_id.clone(),
                plugin_id: event.plugin_id.clone(),
                lease_owner: ctx.pipeline.node_id.clone(),
                attempt: event.attempts,
                completion,
                record,
                suspend_after: ctx.limits.plugin_suspend_after_failures,
                outbox_lease: ctx.pipeline.lease(&ctx.clock),
            })
            .instrument(crate::telemetry::commit_span("completion"))
            .await;
        let result = match submitted {
            Ok(r) => r,
            Err(e) => {
                // Nothing was committed: the lease will lapse and the
                // sweeper will offer the event again.
                tracing::error!(event_id = %event.id, error = %e, "could not commit an invocation");
                return;
            }
        };
        match result {
            CompletionResult::Conflict => {
                // Maybe the balance could not pay: re-run on the real one.
                ctx.runtime.usage.balances.forget(&event.tenant_id);
                reruns += 1;
                if rerun_lock.is_none() {
                    rerun_lock = Some(locks.of(&event.plugin_id).lock_owned().await);
                }
                continue;
            }
            CompletionResult::LeaseLost => {
                tracing::info!(event_id = %event.id, "event was taken over by another worker; outcome discarded");
                return;
            }
            CompletionResult::Committed { outbox, timers_changed, suspended } => {
                if suspended {
                    tracing::warn!(plugin_id = %event.plugin_id, "plugin suspended after repeated failures");
                    if let Err(e) = ctx.reload().await {
                        tracing::error!(error = %e, "could not reload the directory");
                    }
                }
                for item in outbox {
                    ctx.pipeline.enqueue_send(item);
                }
                if timers_changed {
                    ctx.pipeline.scheduler.now();
                }
                if schedules {
                    ctx.pipeline.sweeper.now();
                }
                let status = match retry_at {
                    None => "done",
                    Some(Some(_)) => {
                        ctx.pipeline.sweeper.now();
                        "retry"
                    }
                    Some(None) => "dead",
                };
                ctx.pipeline.notify(Notification::EventSettled {
                    event_id: event.id.clone(),
                    tenant_id: event.tenant_id.clone(),
                    status,
                });
                if ctx.directory.snapshot().plugins.get(&event.plugin_id).is_some_and(|p| p.canary.is_some()) {
                    ctx.pipeline.notify(Notification::CanaryInvoked { plugin_id: event.plugin_id.clone() });
                }
                return;
            }
        }
    }
}

/// When to try a failed event again, or `None` when it has used up its
/// attempts and goes to the dead letters.
pub(super) fn next_retry(ctx: &Context, event: &EventRow) -> Option<i64> {
    let attempts_made = event.attempts + 1;
    let limits = &ctx.limits;
    (attempts_made < limits.event_max_attempts)
        .then(|| ctx.clock.now_ms() + limits.event_retry_delay(attempts_made).as_millis() as i64)
}

/// The event's tenant, if it still exists and is active: otherwise the
/// event is dead (plugins and webhook apps alike).
pub(super) fn active_tenant(
    snapshot: &crate::directory::Snapshot,
    tenant_id: &str,
) -> Result<std::sync::Arc<crate::directory::TenantProfile>, Unrunnable> {
    let tenant =
        snapshot.tenants.get(tenant_id).ok_or_else(|| Unrunnable::Dead("the tenant no longer exists".into()))?.clone();
    if !tenant.active {
        return Err(Unrunnable::Dead("the tenant is disabled".into()));
    }
    Ok(tenant)
}

async fn attempt(ctx: &Context, event: &EventRow) -> Result<(Completion, Option<InvocationRecord>), Unrunnable> {
    let snapshot = ctx.directory.snapshot();
    let plugin = snapshot
        .plugins
        .get(&event.plugin_id)
        .ok_or_else(|| Unrunnable::Dead("the plugin is no longer deployed".into()))?
        .clone();
    let tenant = active_tenant(&snapshot, &event.tenant_id)?;
    // An event bound to a version (an earlier attempt failed on it) runs
    // that version, whatever is active now (a canary rolled back unbinds
    // its events).
    let bound;
    let row = match &event.version_id {
        Some(v) if *v != plugin.row.version_id => {
            bound = ctx
                .db
                .plugin_version(&event.plugin_id, v)
                .await
                .map_err(|e| Unrunnable::Retry(format!("could not read the plugin version: {e}")))?
                .ok_or_else(|| Unrunnable::Dead("the version this event is bound to no longer exists".into()))?;
            &bound
        }
        // A canary takes its customers' events on their first attempt; the
        // rest, and retries (a canary failure is retried on the active
        // version, so no customer waits on a canary), run the active version.
        _ => match &plugin.canary {
            Some(canary) if event.attempts == 0 && canary.takes(event) => &canary.row,
            _ => &plugin.row,
        },
    };
    let ran_canary = plugin.canary.as_ref().is_some_and(|c| c.row.version_id == row.version_id);
    if row.status != "active" {
        let reason = row.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        return Err(Unrunnable::Dead(format!("the plugin is {}{reason}", row.status)));
    }
    let loaded =
        ctx.runtime.load(row).await.map_err(|e| Unrunnable::Retry(format!("could not load the plugin: {e}")))?;
    let trigger = trigger_of(event).map_err(Unrunnable::Dead)?;
    let reply_to = match (&trigger, &event.message_id) {
        (Trigger::Inbound(m), Some(id)) => Some((id.clone(), m.from.clone())),
        _ => None,
    };
    let started_at = ctx.clock.now_ms();
    let trigger_name = trigger.name();
    let mode = if event.mode == "test" { crate::secrets::KeyMode::Test } else { crate::secrets::KeyMode::Live };
    let tape = Tape::live(&ctx.limits, &trigger, &event.mode);
    let invocation = InvocationContext { tenant, event_id: event.id.clone(), reply_to, mode, tape };
    let outcome = ctx.runtime.invoke(&loaded, invocation, trigger).await;
    let (completion, error, outcome_name) = match outcome.result {
        Ok(effects) => (Completion::Succeeded(effects), None, "ok"),
        Err(failure) => {
            let retry_at = next_retry(ctx, event);
            tracing::warn!(event_id = %event.id, plugin = %row.name, attempt = event.attempts + 1, error = %failure, "invocation failed");
            let error = failure.to_string();
            (Completion::Failed { error: error.clone(), retry_at }, Some(error), failure.outcome())
        }
    };
    let record = InvocationRecord {
        tenant_id: event.tenant_id.clone(),
        plugin_id: event.plugin_id.clone(),
        version_id: row.version_id.clone(),
        event_id: event.id.clone(),
        trigger: trigger_name,
        started_at,
        duration_us: outcome.duration.as_micros() as i64,
        fuel_used: outcome.fuel_used as i64,
        memory_peak: outcome.memory_peak as i64,
        outcome: outcome_name,
        error,
        logs: outcome.logs,
        recording: outcome.recording,
        canary: ran_canary,
    };
    Ok((completion, Some(record)))
}

/// Rebuilds the WIT-level trigger from a stored event.
fn trigger_of(event: &EventRow) -> Result<Trigger, String> {
    let json =
        || serde_json::from_str::<serde_json::Value>(&event.payload).map_err(|e| format!("corrupt payload: {e}"));
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    Ok(match event.kind {
        EventKind::Inbound => {
            let v = json()?;
            Trigger::Inbound(InboundMessage {
                id: text(&v, "id"),
                from: text(&v, "from"),
                to: text(&v, "to"),
                body: text(&v, "body"),
                received_at: v.get("received_at").and_then(|x| x.as_i64()).unwrap_or(0),
            })
        }
        EventKind::Event => {
            Trigger::Event { name: event.name.clone().unwrap_or_default(), payload: event.payload.clone() }
        }
        EventKind::Timer => Trigger::Timer { payload: event.payload.clone() },
        EventKind::App => return Err("a webhook app's event is not a plugin's trigger".into()),
        EventKind::Delivery => {
            let v = json()?;
            let status = MessageStatus::parse(&text(&v, "status")).ok_or("corrupt delivery status")?;
            Trigger::Delivery(DeliveryReport {
                message_id: text(&v, "message_id"),
                reference: v.get("reference").and_then(|x| x.as_str()).map(str::to_string),
                to: text(&v, "to"),
                status: wit_status(status),
                error_code: v.get("error_code").and_then(|x| x.as_str()).map(str::to_string),
                at: v.get("at").and_then(|x| x.as_i64()).unwrap_or(0),
            })
        }
    })
}

fn wit_status(s: MessageStatus) -> DeliveryStatus {
    match s {
        MessageStatus::Received | MessageStatus::Queued => DeliveryStatus::Queued,
        MessageStatus::Scheduled => DeliveryStatus::Scheduled,
        MessageStatus::Sending => DeliveryStatus::Sending,
        MessageStatus::Sent => DeliveryStatus::Sent,
        MessageStatus::Delivered => DeliveryStatus::Delivered,
        MessageStatus::Undelivered => DeliveryStatus::Undelivered,
        MessageStatus::Failed => DeliveryStatus::Failed,
        MessageStatus::Expired => DeliveryStatus::Expired,
        MessageStatus::Cancelled => DeliveryStatus::Cancelled,
    }
}
