//! Accepting inbound SMS: validate, route, persist (group commit), then
//! hand the routed events to the workers. A message is acknowledged only
//! once it is durable.

use super::TrackedReceiver;
use super::batch::BatchError;
use super::{compliance, router};
use crate::app::App;
use crate::connectors::Acked;
use crate::phone;
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::{Direction, EventKind, InboundPart, MessageStatus, NewEvent, NewInbound, NewMessage, PartsKey};
use crate::{ids, phone::Masked};

/// An SMS as a connector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub from: String,
    pub to: String,
    pub body: String,
    pub connector: String,
    pub provider_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{field}: {value:?} is not a valid phone number")]
    InvalidNumber { field: &'static str, value: String },
    #[error("{0} is not a number of any tenant")]
    UnknownNumber(String),
    #[error("message is {chars} characters; the limit is {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("could not persist the message: {0}")]
    Store(#[from] BatchError),
}

#[derive(Debug, Clone)]
pub struct Accepted {
    pub message_id: String,
    pub tenant_id: String,
    pub event_ids: Vec<String>,
}

pub async fn accept(app: &App, sms: InboundSms) -> Result<Accepted, IngestError> {
    accept_consuming(app, sms, None).await.map(|a| a.expect("a message without parts is always inserted"))
}

/// Stores one part of a message the carrier delivered in pieces; the part
/// that completes it accepts the whole message (`Some`).
pub async fn accept_part(app: &App, connector: &str, part: InboundPart) -> Result<Option<Accepted>, IngestError> {
    let stored = app
        .db
        .store_inbound_part(connector, &part, app.clock.now_ms())
        .await
        .map_err(|e| IngestError::Store(BatchError::Store(std::sync::Arc::new(e))))?;
    let Some(whole) = stored else { return Ok(None) };
    let key =
        PartsKey { connector: connector.to_string(), from: part.from, reference: part.reference, total: part.total };
    let sms = InboundSms {
        from: whole.from,
        to: whole.to,
        body: whole.text,
        connector: connector.to_string(),
        provider_id: whole.provider_id,
    };
    accept_consuming(app, sms, Some(key)).await
}

/// What session connectors (SMPP) receive, accepted as webhooks are.
pub async fn run_session_inbound(
    app: std::sync::Arc<App>,
    mut messages: TrackedReceiver<Acked<InboundSms>>,
    mut parts: TrackedReceiver<Acked<(String, InboundPart)>>,
) {
    let (mut m, mut p) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            n = messages.recv_many(&mut m, 64) => {
                if n == 0 { return }
                for acked in m.drain(..) {
                    let result = accept(&app, acked.item.clone()).await;
                    settle(acked, result.map(|_| ()));
                }
                messages.committed(n);
            }
            n = parts.recv_many(&mut p, 64) => {
                if n == 0 { return }
                for acked in p.drain(..) {
                    let (connector, part) = acked.item.clone();
                    let result = accept_part(&app, &connector, part).await;
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

/// Accepts a message; `Ok(None)` when its parts were consumed by a copy.
async fn accept_consuming(
    app: &App,
    sms: InboundSms,
    parts: Option<PartsKey>,
) -> Result<Option<Accepted>, IngestError> {
    let from = phone::normalize(&sms.from, None)
        .map_err(|_| IngestError::InvalidNumber { field: "from", value: sms.from.clone() })?;
    let to = phone::normalize(&sms.to, None)
        .map_err(|_| IngestError::InvalidNumber { field: "to", value: sms.to.clone() })?;
    let chars = sms.body.chars().count();
    let limit = app.settings.limits.message_chars;
    if chars > limit {
        return Err(IngestError::TooLong { chars, limit });
    }
    let snapshot = app.directory.snapshot();
    let tenant_id = snapshot.numbers.get(&to).cloned().ok_or_else(|| IngestError::UnknownNumber(to.clone()))?;
    let now = app.clock.now_ms();
    let message_id = ids::message_id();
    // STOP, START and HELP are the host's to answer; plugins never see them.
    let compliance = snapshot.tenants.get(&tenant_id).and_then(|tenant| {
        let keyword = tenant.settings.compliance.keyword(&sms.body)?;
        Some(compliance::answer(tenant, keyword, &sms.body, &from, &to, &message_id, now))
    });
    let tenant_active = snapshot.tenants.get(&tenant_id).is_some_and(|t| t.active);
    let plugins = match compliance {
        // Stored, but a disabled tenant's plugins do not run.
        None if tenant_active => router::plugins_for_inbound(&snapshot, &tenant_id, &sms.body),
        _ => Vec::new(),
    };
    let (consent, confirmation) = compliance.unzip();
    let analysis = encoding::analyze(&sms.body, EncodingChoice::Auto).expect("auto encoding always succeeds");
    let payload = serde_json::json!({
        "id": message_id, "from": from, "to": to, "body": sms.body, "received_at": now,
    })
    .to_string();
    let events: Vec<NewEvent> = plugins
        .into_iter()
        .map(|plugin_id| NewEvent {
            id: ids::event_id(),
            tenant_id: tenant_id.clone(),
            plugin_id,
            kind: EventKind::Inbound,
            name: None,
            payload: payload.clone(),
            message_id: Some(message_id.clone()),
            run_at: now,
            created_at: now,
        })
        .collect();
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
        reference: sms.provider_id,
        connector: Some(sms.connector),
        plugin_id: None,
        event_id: None,
        in_reply_to: None,
        created_at: now,
        mode: "live",
        webhook_url: None,
        scheduled_at: None,
        price: 0,
        batch_id: None,
    };
    tracing::debug!(message_id, from = %Masked(&message.from), to = %Masked(&message.to), events = events.len(), "inbound accepted");
    let inbound = NewInbound {
        message,
        events,
        lease: app.pipeline.lease(&app.clock),
        consumes_parts: parts,
        consent: consent.flatten(),
        confirmation: confirmation.clone(),
    };
    let event_rows: Vec<_> = inbound.events.iter().map(NewEvent::to_row).collect();
    if !app.pipeline.ingest.submit(inbound).await? {
        return Ok(None);
    }
    for item in crate::store::outbox_items(confirmation.as_slice()) {
        app.pipeline.outbox.push(&item.message_id.clone(), item);
    }
    let event_ids = event_rows.iter().map(|e| e.id.clone()).collect();
    for row in event_rows {
        app.pipeline.events.push(&row.id.clone(), row);
    }
    Ok(Some(Accepted { message_id, tenant_id, event_ids }))
}
