//! Accepting inbound SMS: validate, route, persist (group commit), then
//! hand the routed events to the workers. A message is acknowledged only
//! once it is durable.

use super::batch::BatchError;
use super::router;
use crate::app::App;
use crate::phone;
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::{Direction, EventKind, MessageStatus, NewEvent, NewInbound, NewMessage};
use crate::{ids, phone::Masked};

/// An SMS as a connector received it.
#[derive(Debug, Clone)]
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
    let plugins = router::plugins_for_inbound(&snapshot, &tenant_id, &sms.body);

    let now = app.clock.now_ms();
    let message_id = ids::message_id();
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
    let inbound = NewInbound { message, events, lease: app.pipeline.lease(&app.clock) };
    let event_rows: Vec<_> = inbound.events.iter().map(NewEvent::to_row).collect();
    app.pipeline.ingest.submit(inbound).await?;
    let event_ids = event_rows.iter().map(|e| e.id.clone()).collect();
    for row in event_rows {
        app.pipeline.events.push(&row.id.clone(), row);
    }
    Ok(Accepted { message_id, tenant_id, event_ids })
}
