//! Accepting inbound SMS: validate, route, persist (the writer), then
//! hand the routed events to the workers. A message is acknowledged only
//! once it is durable.

use super::Context;
use super::TrackedReceiver;
use super::inbound_routing;
use super::writer::WriteError;
use crate::compliance;
use crate::connectors::Acked;
use crate::connectors::InboundSms;
use crate::phone;
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::{
    Direction, EventKind, InboundOutcome, InboundPart, MessageStatus, NewEvent, NewInbound, NewMessage, PartsKey,
    Reassembled,
};
use crate::{ids, phone::Masked};
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{field}: {value:?} is not a valid phone number")]
    InvalidNumber { field: &'static str, value: String },
    /// No tenant has the number on the connector the message came through
    /// (a number of another connector looks the same: unknown here).
    #[error("{number} is not a number on connector {connector:?}")]
    UnknownNumber { number: String, connector: String },
    #[error("message is {chars} characters; the limit is {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("could not persist the message: {0}")]
    Store(#[from] WriteError),
}

/// Longest carrier message id accepted, in bytes.
pub const MAX_PROVIDER_ID_BYTES: usize = 128;

#[derive(Debug, Clone)]
pub struct Accepted {
    pub message_id: String,
    pub tenant_id: String,
    pub event_ids: Vec<String>,
    /// The carrier sent this message before: this is the first one's id,
    /// and nothing ran again.
    pub duplicate: bool,
}

pub async fn accept(ctx: &Context, sms: InboundSms) -> Result<Accepted, IngestError> {
    accept_consuming(ctx, sms, None, None).await.map(|a| a.expect("a message without parts is always answered"))
}

/// An inbound message a tenant's test key made up (`POST
/// /v1/sandbox/inbound`): to one of its numbers, in test mode. Its plugins
/// run in test mode (their sends go to the sandbox, free); a STOP or START
/// is answered from the sandbox and changes no one's consent.
pub async fn accept_sandbox(ctx: &Context, tenant_id: &str, sms: InboundSms) -> Result<Accepted, IngestError> {
    let sms = InboundSms { provider_id: None, ..sms };
    accept_consuming(ctx, sms, None, Some(tenant_id))
        .await
        .map(|a| a.expect("a message without parts is always answered"))
}

/// Stores one part of a message the carrier delivered in pieces; the part
/// that completes it accepts the whole message (`Some`).
pub async fn accept_part(ctx: &Context, connector: &str, part: InboundPart) -> Result<Option<Accepted>, IngestError> {
    if part.total == 0 || part.part == 0 || part.part > part.total {
        return Err(IngestError::Invalid {
            field: "part",
            message: format!("part {} of {} does not exist", part.part, part.total),
        });
    }
    if part.reference.len() > MAX_PROVIDER_ID_BYTES {
        return Err(IngestError::Invalid { field: "reference", message: "the part reference is too long".into() });
    }
    // Checked before anything is stored: a part for a number that is not
    // this connector's never waits in the store.
    let from = normalized(&part.from, "from")?;
    let to = normalized(&part.to, "to")?;
    owner_of(ctx, &to, connector)?;
    if part.provider_id.as_ref().is_some_and(|id| id.len() > MAX_PROVIDER_ID_BYTES) {
        return Err(IngestError::Invalid {
            field: "id",
            message: format!("a carrier message id is at most {MAX_PROVIDER_ID_BYTES} bytes"),
        });
    }
    if part.total == 1 {
        let sms =
            InboundSms { from, to, body: part.text, connector: connector.to_string(), provider_id: part.provider_id };
        return accept_consuming(ctx, sms, None, None).await;
    }
    // A retry of a part of a message already accepted answers as that message.
    if let Some(id) = &part.provider_id {
        let seen = ctx.db.inbound_receipt(connector, id).await;
        if let Some(message_id) = seen.map_err(|e| IngestError::Store(WriteError::Store(std::sync::Arc::new(e))))? {
            let tenant_id = owner_of(ctx, &to, connector)?;
            return Ok(Some(Accepted { message_id, tenant_id, event_ids: Vec::new(), duplicate: true }));
        }
    }
    let part = InboundPart { from, to, ..part };
    let stored = ctx
        .db
        .store_inbound_part(connector, &part, ctx.clock.now_ms())
        .await
        .map_err(|e| IngestError::Store(WriteError::Store(std::sync::Arc::new(e))))?;
    let Some(whole) = stored else { return Ok(None) };
    accept_reassembled(ctx, connector, whole).await
}

/// A message made of stored parts: complete, or what arrived before the
/// timeout (marked `INCOMPLETE`). `None` when a copy consumed the parts.
async fn accept_reassembled(
    ctx: &Context,
    connector: &str,
    whole: Reassembled,
) -> Result<Option<Accepted>, IngestError> {
    let key = PartsKey {
        connector: connector.to_string(),
        from: whole.from.clone(),
        to: whole.to.clone(),
        reference: whole.reference.clone(),
        total: whole.total,
        parts: whole.parts,
    };
    let sms = InboundSms {
        from: whole.from,
        to: whole.to,
        body: whole.text,
        connector: connector.to_string(),
        provider_id: whole.provider_id,
    };
    accept_consuming(ctx, sms, Some(key), None).await
}

/// Delivers the long messages whose parts stopped arriving more than
/// `limits.inbound_parts_timeout_s` ago, as what arrived. Returns how many.
pub async fn flush_stale_parts(ctx: &Context) -> usize {
    let before = ctx.clock.now_ms() - ctx.limits.inbound_parts_timeout_s as i64 * 1000;
    let stale = match ctx.db.stale_inbound_parts(before, 256).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not look for incomplete inbound messages");
            return 0;
        }
    };
    let mut delivered = 0;
    for (connector, whole) in stale {
        match accept_reassembled(ctx, &connector, whole).await {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "incomplete inbound message not delivered"),
        }
    }
    delivered
}

/// What session connectors (SMPP) receive, accepted as webhooks are.
pub async fn run_session_inbound(
    ctx: std::sync::Arc<Context>,
    mut messages: TrackedReceiver<Acked<InboundSms>>,
    mut parts: TrackedReceiver<Acked<(String, InboundPart)>>,
) {
    let (mut m, mut p) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            n = messages.recv_many(&mut m, 64) => {
                if n == 0 { return }
                for acked in m.drain(..) {
                    let result = accept(&ctx, acked.item.clone()).await;
                    settle(acked, result.map(|_| ()));
                }
                messages.committed(n);
            }
            n = parts.recv_many(&mut p, 64) => {
                if n == 0 { return }
                for acked in p.drain(..) {
                    let (connector, part) = acked.item.clone();
                    let result = accept_part(&ctx, &connector, part).await;
                    settle(acked, result.map(|_| ()));
                }
                parts.committed(n);
            }
        }
    }
}

/// Acknowledges what was recorded, or refused for good (an unknown number,
/// an invalid sender: as a webhook's 4xx). A storage failure is not
/// acknowledged, so the carrier delivers it again.
fn settle<T>(acked: Acked<T>, result: Result<(), IngestError>) {
    match result {
        Err(IngestError::Store(e)) => tracing::error!(error = %e, "inbound message not stored; the carrier will retry"),
        Err(e) => {
            tracing::warn!(error = %e, "inbound message refused");
            acked.done();
        }
        Ok(()) => {
            acked.done();
        }
    }
}

fn normalized(raw: &str, field: &'static str) -> Result<String, IngestError> {
    phone::normalize(raw, None).map_err(|e| IngestError::InvalidNumber { field, value: e.0 })
}

/// The tenant whose number `to` is, if the message may arrive for it
/// through `connector`: the connector the number is on, or the built-in
/// unsigned `generic` webhook for numbers on a simulator.
fn owner_of(ctx: &Context, to: &str, connector: &str) -> Result<String, IngestError> {
    let snapshot = ctx.directory.snapshot();
    let unknown = || IngestError::UnknownNumber { number: to.to_string(), connector: connector.to_string() };
    let tenant_id = snapshot.numbers.get(to).ok_or_else(unknown)?;
    let on = snapshot.tenants.get(tenant_id).and_then(|t| t.senders.get(to)).map(|s| s.connector.as_str());
    let allowed = match on {
        Some(on) if on == connector => true,
        Some(on) => connector == crate::connectors::GENERIC && ctx.connectors.is_simulator(on),
        None => false,
    };
    if allowed { Ok(tenant_id.clone()) } else { Err(unknown()) }
}

/// Accepts a message; `Ok(None)` when its parts were consumed by a copy.
/// `sandbox_for`: a test-mode message made up by that tenant.
///
/// The message's trace begins here (inside the carrier's request, when it
/// came as a webhook): its span's context is stored with the message and
/// its events, and every later step joins it.
async fn accept_consuming(
    ctx: &Context,
    sms: InboundSms,
    parts: Option<PartsKey>,
    sandbox_for: Option<&str>,
) -> Result<Option<Accepted>, IngestError> {
    let span = crate::telemetry::begin(|| {
        tracing::info_span!(
            "sms.receive",
            otel.kind = "consumer",
            messaging.system = "sms",
            messaging.operation.type = "receive",
            messaging.destination.name = %sms.connector,
            messaging.message.id = tracing::field::Empty,
            switchboard.events = tracing::field::Empty,
            switchboard.duplicate = tracing::field::Empty,
        )
    });
    // In an unsampled trace there is no span here: the message keeps the
    // request's context (its trace id), unsampled.
    let trace_context = crate::telemetry::traceparent_of(&span).or_else(crate::telemetry::current);
    receive(ctx, sms, parts, sandbox_for, trace_context).instrument(span).await
}

async fn receive(
    ctx: &Context,
    sms: InboundSms,
    parts: Option<PartsKey>,
    sandbox_for: Option<&str>,
    trace_context: Option<String>,
) -> Result<Option<Accepted>, IngestError> {
    if sms.provider_id.as_ref().is_some_and(|id| id.len() > MAX_PROVIDER_ID_BYTES) {
        return Err(IngestError::Invalid {
            field: "id",
            message: format!("a carrier message id is at most {MAX_PROVIDER_ID_BYTES} bytes"),
        });
    }
    let from = normalized(&sms.from, "from")?;
    let to = normalized(&sms.to, "to")?;
    let chars = sms.body.chars().count();
    let limit = ctx.limits.message_chars;
    if chars > limit {
        return Err(IngestError::TooLong { chars, limit });
    }
    let snapshot = ctx.directory.snapshot();
    let (tenant_id, mode) = match sandbox_for {
        None => (owner_of(ctx, &to, &sms.connector)?, "live"),
        Some(tenant) if snapshot.tenants.get(tenant).is_some_and(|t| t.senders.contains_key(&to)) => {
            (tenant.to_string(), "test")
        }
        Some(_) => return Err(IngestError::UnknownNumber { number: to, connector: sms.connector }),
    };
    let now = ctx.clock.now_ms();
    let message_id = ids::message_id();
    let incomplete = parts.as_ref().is_some_and(|k| k.parts < k.total);
    let analysis = encoding::analyze(&sms.body, EncodingChoice::Auto).expect("auto encoding always succeeds");
    let message = NewMessage {
        id: message_id.clone(),
        tenant_id: tenant_id.clone(),
        direction: Direction::Inbound,
        from,
        to,
        body: sms.body,
        status: MessageStatus::Received,
        segments: analysis.segments as u32,
        encoding: analysis.encoding.as_str(),
        reference: sms.provider_id.clone(),
        connector: Some(sms.connector.clone()),
        plugin_id: None,
        event_id: None,
        in_reply_to: None,
        created_at: now,
        mode,
        webhook_url: None,
        scheduled_at: None,
        price: 0,
        batch_id: None,
        error_code: incomplete.then_some("INCOMPLETE"),
        account_sid: None,
        expires_at: None,
        trace_context: trace_context.clone(),
    };
    // STOP, START and HELP are the host's to answer; plugins never see them.
    let compliance = snapshot.tenants.get(&tenant_id).and_then(|tenant| {
        let keyword = tenant.settings.compliance.keyword(&message.body)?;
        let answerer = compliance::Answerer {
            id: &tenant.id,
            name: &tenant.name,
            settings: &tenant.settings.compliance,
            connector: tenant.sender(&message.to).map(|s| s.connector.clone()),
        };
        Some(compliance::answer(&answerer, keyword, &message, &ctx.pricing))
    });
    let tenant_active = snapshot.tenants.get(&tenant_id).is_some_and(|t| t.active);
    // The number's webhook app gets every message but STOP/START/HELP.
    let app = (compliance.is_none() && tenant_active)
        .then(|| snapshot.tenants.get(&tenant_id)?.sender(&message.to)?.sms_url.clone())
        .flatten()
        .map(|_| crate::store::app_source(&message.to));
    let plugins = match compliance {
        // Stored, but a disabled tenant's plugins do not run.
        None if tenant_active => inbound_routing::plugins_for_inbound(&snapshot, &tenant_id, &message.body),
        _ => Vec::new(),
    };
    let (mut consent, mut confirmation) = compliance.unzip();
    if mode == "test" {
        // Made-up traffic changes no one's consent; its answer is a test message.
        consent = None;
        if let Some(reply) = confirmation.as_mut() {
            reply.connector = Some(crate::connectors::SANDBOX_CONNECTOR.to_string());
            reply.mode = "test";
            reply.price = 0;
        }
    }
    let mut payload = serde_json::json!({
        "id": message_id, "from": message.from, "to": message.to, "body": message.body, "received_at": now,
    });
    if incomplete {
        payload["incomplete"] = serde_json::Value::Bool(true);
    }
    let payload = payload.to_string();
    let events: Vec<NewEvent> = plugins
        .into_iter()
        .map(|plugin_id| (plugin_id, EventKind::Inbound))
        .chain(app.map(|source| (source, EventKind::App)))
        .map(|(plugin_id, kind)| NewEvent {
            id: ids::event_id(),
            tenant_id: tenant_id.clone(),
            plugin_id,
            kind,
            name: None,
            payload: payload.clone(),
            message_id: Some(message_id.clone()),
            run_at: now,
            created_at: now,
            mode,
            trace_context: trace_context.clone(),
        })
        .collect();
    tracing::Span::current().record("switchboard.events", events.len());
    tracing::debug!(message_id, from = %Masked(&message.from), to = %Masked(&message.to), events = events.len(), "inbound accepted");
    let inbound = NewInbound {
        message,
        events,
        lease: ctx.pipeline.lease(&ctx.clock),
        consumes_parts: parts,
        consent: consent.flatten(),
        confirmation: confirmation.clone(),
        confirmations_per_hour: ctx.limits.compliance_replies_per_hour,
        provider_id: sms.provider_id,
    };
    let event_rows: Vec<_> = inbound.events.iter().map(NewEvent::to_row).collect();
    let connector = sms.connector;
    let committed = ctx.pipeline.writer.inbound(inbound).instrument(crate::telemetry::commit_span("inbound"));
    let span = tracing::Span::current();
    match committed.await? {
        InboundOutcome::PartsTaken => return Ok(None),
        InboundOutcome::Duplicate { message_id } => {
            span.record("messaging.message.id", message_id.as_str());
            span.record("switchboard.duplicate", true);
            ctx.metrics.inbound(&connector, "duplicate", &tenant_id);
            return Ok(Some(Accepted { message_id, tenant_id, event_ids: Vec::new(), duplicate: true }));
        }
        InboundOutcome::Inserted { confirmed } => {
            span.record("messaging.message.id", message_id.as_str());
            ctx.metrics.inbound(&connector, "accepted", &tenant_id);
            if confirmed {
                for item in crate::store::outbox_items(confirmation.as_slice(), None) {
                    ctx.pipeline.enqueue_send(item);
                }
            }
        }
    }
    let event_ids = event_rows.iter().map(|e| e.id.clone()).collect();
    for row in event_rows {
        ctx.pipeline.enqueue_event(row);
    }
    ctx.pipeline.notify(super::Notification::Received { tenant_id: tenant_id.clone(), message_id: message_id.clone() });
    Ok(Some(Accepted { message_id, tenant_id, event_ids, duplicate: false }))
}
