//! The dispatcher: hands outbox messages to connectors and records what
//! the carrier said.
//!
//! A message its own commit wrote `sending` (leased to this node) goes
//! at once; any other is first marked `sending` (in the writer's next
//! cycle). Then every message tries the connectors of its route in
//! order, each behind its gate (circuit breaker, rate limit, concurrency).
//! A transient failure or an open circuit moves on to the next connector
//! (failover); a permanent refusal fails the message at once; when no
//! connector took it, the message is retried later with exponential
//! backoff and jitter (or the carrier's `Retry-After`), until its deadline.
//!
//! A message leaves the outbox only when its result is recorded, so a
//! crash between the carrier's answer and the record sends it again on
//! restart: at-least-once towards the carrier. Connectors that can pass
//! our message id as an idempotency key let the carrier drop the repeat.

use super::Context;
use super::{Notification, TrackedReceiver, delivery};
use crate::connectors::{ConnectorError, OutboundSms};
use crate::phone::Masked;
use crate::sms::encoding::{Encoding, EncodingChoice};
use crate::store::cycle::SendingMarks;
use crate::store::{OutboxItem, SendOutcome, SendResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;

pub async fn run(ctx: Arc<Context>, mut outbox: mpsc::UnboundedReceiver<OutboxItem>) {
    let permits = Arc::new(Semaphore::new(ctx.limits.concurrent_sends));
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 256).await > 0 {
        // Recipients who opted out after their message was accepted.
        let refused = crate::compliance::refused(ctx.db.as_ref(), &batch).await;
        for item in batch.extract_if(.., |i| refused.opted_out.contains(&i.message_id)) {
            tracing::info!(message_id = %item.message_id, to = %Masked(&item.to), "recipient opted out; message not sent");
            let result = SendResult {
                message_id: item.message_id.clone(),
                connector: item.connector.clone(),
                outcome: SendOutcome::Failed {
                    error_code: "RECIPIENT_OPTED_OUT".into(),
                    error: "the recipient opted out of this tenant's messages".into(),
                },
                at: ctx.clock.now_ms(),
            };
            counted(&ctx, &item, &result);
            ctx.pipeline.outbox.run(&item.message_id, async { ctx.pipeline.sends.send(result) }).await;
        }
        for item in batch.extract_if(.., |i| refused.unchecked.contains(&i.message_id)) {
            let now = ctx.clock.now_ms();
            let at = now + ctx.limits.send_retry_delay(item.attempts + 1).as_millis() as i64;
            let result = SendResult {
                message_id: item.message_id.clone(),
                connector: item.connector.clone(),
                outcome: SendOutcome::Retry { at, error: "consent could not be checked".into() },
                at: now,
            };
            counted(&ctx, &item, &result);
            // Recorded before it is announced: whoever hears of the hold
            // (tests, `--follow`) finds the retry durable.
            let record = async {
                let lease = ctx.pipeline.lease(&ctx.clock);
                if let Err(e) = ctx.pipeline.writer.send_results(Arc::new(vec![result]), lease).await {
                    // The lease lapses and the sweeper offers the message again.
                    tracing::error!(error = %e, message_id = %item.message_id, "could not record a held message");
                }
            };
            ctx.pipeline.outbox.run(&item.message_id, record).await;
            ctx.pipeline.sweeper.now();
            ctx.pipeline.notify(Notification::SendHeld { message_id: item.message_id, reason: "consent unchecked" });
        }
        // Messages their commit wrote `sending` go as they are while their
        // lease has at least half its length left and outlasts a carrier
        // call; the others (the sweeper's, or ones that waited here long)
        // are marked first, which renews the lease and checks that no other
        // node took them over meanwhile.
        let fresh = (ctx.limits.work_lease_ms / 2).max(ctx.limits.connector_timeout_ms) as i64;
        let now = ctx.clock.now_ms();
        let unmarked: Vec<OutboxItem> =
            batch.extract_if(.., |i| !i.marked_until.is_some_and(|until| until - now >= fresh)).collect();
        if !batch.is_empty() {
            announce_sending(&ctx, &batch);
        }
        if !unmarked.is_empty() {
            batch.extend(mark_sending(&ctx, unmarked).await);
        }
        for item in batch.drain(..) {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let span = send_span(&item);
                let work = async {
                    let result = send(&ctx, &item).await;
                    let span = tracing::Span::current();
                    span.record("switchboard.connector", result.connector.as_str());
                    span.record("switchboard.outcome", outcome_name(&result.outcome));
                    counted(&ctx, &item, &result);
                    ctx.pipeline.sends.send(result);
                };
                ctx.pipeline.outbox.run(&item.message_id, work.instrument(span)).await;
                drop(permit);
            });
        }
    }
}

/// Marks `items` `sending` (in the writer's next cycle) and returns those
/// still this node's to send.
async fn mark_sending(ctx: &Context, mut items: Vec<OutboxItem>) -> Vec<OutboxItem> {
    let ids: Vec<String> = items.iter().map(|i| i.message_id.clone()).collect();
    let started = std::time::Instant::now();
    let marks =
        SendingMarks { message_ids: ids.clone(), at: ctx.clock.now_ms(), lease: ctx.pipeline.lease(&ctx.clock) };
    let marked = ctx.pipeline.writer.sending(marks).await;
    tracing::trace!(size = ids.len(), took_us = started.elapsed().as_micros() as u64, "marked sending");
    match marked {
        Ok(ours) => {
            let ours: std::collections::HashSet<String> = ours.into_iter().collect();
            for item in items.extract_if(.., |i| !ours.contains(&i.message_id)) {
                tracing::info!(message_id = %item.message_id, "message taken over by another node; not sent here");
                ctx.pipeline.outbox.run(&item.message_id, async {}).await;
            }
            announce_sending(ctx, &items);
            items
        }
        // Not marked, not sent: the rows stay leased to this node and
        // the sweeper offers them again once the lease lapses.
        Err(e) => {
            tracing::error!(error = %e, "could not mark messages as sending; they wait");
            for item in items.drain(..) {
                ctx.pipeline.outbox.run(&item.message_id, async {}).await;
                ctx.pipeline
                    .notify(Notification::SendHeld { message_id: item.message_id, reason: "not marked sending" });
            }
            Vec::new()
        }
    }
}

/// `items` are durably `sending`: the webhooks that owes go out, and
/// whoever follows the messages hears of it.
fn announce_sending(ctx: &Context, items: &[OutboxItem]) {
    ctx.pipeline.webhooks.now();
    for item in items {
        ctx.pipeline.notify(Notification::MessageStatus {
            message_id: item.message_id.clone(),
            status: "sending".into(),
            tenant_id: Some(item.tenant_id.clone()),
        });
    }
}

/// The span of one attempt to send a message, in the message's trace.
fn send_span(item: &OutboxItem) -> tracing::Span {
    crate::telemetry::resume(item.trace_context.as_deref(), || {
        tracing::info_span!(
            "sms.send",
            otel.kind = "producer",
            messaging.system = "sms",
            messaging.operation.type = "send",
            messaging.message.id = %item.message_id,
            switchboard.attempt = item.attempts + 1,
            switchboard.connector = tracing::field::Empty,
            switchboard.outcome = tracing::field::Empty,
        )
    })
}

/// What became of a message at its connector, as metrics and spans name it.
fn outcome_name(outcome: &SendOutcome) -> &'static str {
    match outcome {
        SendOutcome::Sent { .. } => "sent",
        SendOutcome::Failed { .. } => "failed",
        SendOutcome::Retry { .. } => "retry",
    }
}

/// Counts what became of a message at its connector (`sent`, `failed`,
/// `retry`) and the segments sent.
fn counted(ctx: &Context, item: &OutboxItem, result: &SendResult) {
    if let SendOutcome::Sent { .. } = &result.outcome {
        let choice =
            if item.encoding == Encoding::Ucs2.as_str() { EncodingChoice::Unicode } else { EncodingChoice::Auto };
        if let Ok(analysis) = crate::sms::encoding::analyze(&item.body, choice) {
            ctx.metrics.segments(&result.connector, analysis.segments as u64);
        }
    }
    ctx.metrics.outbound(&result.connector, outcome_name(&result.outcome), &item.tenant_id);
}

/// The error code of a message whose validity period ended before it was sent.
pub const VALIDITY_EXPIRED: &str = "VALIDITY_EXPIRED";

/// Tries the message's connectors in route order.
async fn send(ctx: &Context, item: &OutboxItem) -> SendResult {
    let sms = OutboundSms {
        message_id: item.message_id.clone(),
        tenant_id: item.tenant_id.clone(),
        from: item.from.clone(),
        to: item.to.clone(),
        body: item.body.clone(),
        reference: item.reference.clone(),
        encoding: if item.encoding == Encoding::Ucs2.as_str() { Encoding::Ucs2 } else { Encoding::Gsm7 },
    };
    if let Some(expired) = item.expires_at.filter(|e| ctx.clock.now_ms() > *e) {
        let outcome = SendOutcome::Failed {
            error_code: VALIDITY_EXPIRED.into(),
            error: format!(
                "its validity period ended at {} before it could be sent",
                crate::clock::to_rfc3339(expired)
            ),
        };
        return SendResult {
            message_id: item.message_id.clone(),
            connector: item.connector.clone(),
            outcome,
            at: ctx.clock.now_ms(),
        };
    }
    let timeout = Duration::from_millis(ctx.limits.connector_timeout_ms);
    let mut last_error = String::from("no connector is configured for this route");
    let mut carrier_wait: Option<Duration> = None;
    let mut outcome = None;
    let candidates = super::outbound_routing::candidates(ctx, item);
    if candidates.is_empty() {
        let outcome = SendOutcome::Failed {
            error_code: "NO_ALLOWED_CONNECTOR".into(),
            error: "no connector this tenant may use carries this message".into(),
        };
        return SendResult {
            message_id: item.message_id.clone(),
            connector: item.connector.clone(),
            outcome,
            at: ctx.clock.now_ms(),
        };
    }
    for name in candidates {
        let Some(reg) = ctx.connectors.get(&name) else {
            last_error = format!("no connector named {name:?}");
            continue;
        };
        if !reg.gate.admit() {
            last_error = format!("connector {name}: circuit open");
            continue;
        }
        let pass = reg.gate.pass().await;
        let asked = std::time::Instant::now();
        let span = crate::telemetry::nested(|| {
            tracing::info_span!(
                "carrier.request",
                otel.kind = "client",
                switchboard.connector = %name,
                switchboard.result = tracing::field::Empty,
            )
        });
        let result = tokio::time::timeout(timeout, reg.connector.send(&sms))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| Err(ConnectorError::transient(format!("no answer within {timeout:?}"))));
        drop(pass);
        let answer = match &result {
            Ok(_) => "ok",
            Err(ConnectorError::Permanent { .. }) => "refused",
            Err(ConnectorError::Throttled { .. }) => "throttled",
            Err(ConnectorError::Transient { .. }) => "error",
        };
        span.record("switchboard.result", answer);
        ctx.metrics.carrier_request(&name, answer, asked.elapsed());
        match result {
            Ok(accepted) => {
                reg.gate.record(true);
                outcome = Some((name, SendOutcome::Sent { provider_ids: accepted.provider_ids }));
                break;
            }
            Err(ConnectorError::Permanent { code, message }) => {
                reg.gate.record(true);
                tracing::warn!(message_id = %item.message_id, to = %Masked(&item.to), connector = %name, code, "carrier refused message");
                outcome = Some((name, SendOutcome::Failed { error_code: code, error: message }));
                break;
            }
            Err(ConnectorError::Throttled { message, retry_after }) => {
                reg.gate.release_probe();
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                reg.gate.pause(wait);
                carrier_wait = Some(carrier_wait.map_or(wait, |w| w.max(wait)));
                last_error = format!("connector {name}: {message}");
            }
            Err(ConnectorError::Transient { message, retry_after }) => {
                reg.gate.record(false);
                if let Some(wait) = retry_after {
                    carrier_wait = Some(carrier_wait.map_or(wait, |w| w.max(wait)));
                }
                tracing::info!(message_id = %item.message_id, connector = %name, error = %message, "transient carrier failure");
                last_error = format!("connector {name}: {message}");
            }
        }
    }
    let now = ctx.clock.now_ms();
    let (connector, outcome) = outcome.unwrap_or_else(|| {
        let limits = &ctx.limits;
        let backoff = limits.send_retry_delay(item.attempts + 1);
        let at = now + carrier_wait.map_or(backoff, |w| w.max(backoff)).as_millis() as i64;
        let deadline = item.due_at + limits.send_retry_deadline_s as i64 * 1000;
        let outcome = if item.expires_at.is_some_and(|e| at > e) {
            SendOutcome::Failed { error_code: VALIDITY_EXPIRED.into(), error: last_error }
        } else if at > deadline {
            SendOutcome::Failed { error_code: "CARRIER_UNAVAILABLE".into(), error: last_error }
        } else {
            SendOutcome::Retry { at, error: last_error }
        };
        (item.connector.clone(), outcome)
    });
    SendResult { message_id: item.message_id.clone(), connector, outcome, at: now }
}

/// Records connector results in batches (through the writer).
pub async fn record_results(ctx: Arc<Context>, mut results: TrackedReceiver<SendResult>) {
    let mut batch = Vec::new();
    while results.recv_many(&mut batch, 512).await > 0 {
        let started = std::time::Instant::now();
        let count = batch.len();
        let batch_now = Arc::new(std::mem::take(&mut batch));
        let recorded = loop {
            match ctx.pipeline.writer.send_results(batch_now.clone(), ctx.pipeline.lease(&ctx.clock)).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::error!(error = %e, "could not record send results; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        tracing::trace!(size = count, took_us = started.elapsed().as_micros() as u64, "send results recorded");
        // A retry is announced once it is recorded: the sweeper then finds
        // it due, and a watcher that acts on it acts on the stored state.
        let mut retries = false;
        for r in batch_now.iter() {
            if let SendOutcome::Retry { at, .. } = &r.outcome {
                retries = true;
                ctx.pipeline.notify(Notification::SendRetry { message_id: r.message_id.clone(), at: *at });
            }
        }
        if retries {
            ctx.pipeline.sweeper.now();
        }
        results.committed(count);
        delivery::hand_on(&ctx, recorded);
    }
}
