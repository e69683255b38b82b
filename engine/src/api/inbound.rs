//! Carrier webhooks for inbound SMS.
//!
//! `POST /v1/inbound/generic` takes the common gateway shape
//! `{"from", "to", "message"}` and answers 200 once the message is durable.

use super::error::ApiError;
use super::json::Json;
use crate::app::App;
use crate::pipeline::ingest::{self, InboundSms, IngestError};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericInbound {
    from: String,
    to: String,
    #[serde(alias = "text", alias = "body")]
    message: String,
    /// The gateway's own id for the message, kept as its reference.
    #[serde(default)]
    id: Option<String>,
}

#[derive(Serialize)]
pub struct InboundAccepted {
    id: String,
    status: &'static str,
    /// How many plugins the message was routed to.
    routed: usize,
}

pub async fn generic(
    State(app): State<Arc<App>>,
    Json(body): Json<GenericInbound>,
) -> Result<axum::Json<InboundAccepted>, ApiError> {
    let sms = InboundSms {
        from: body.from,
        to: body.to,
        body: body.message,
        connector: "generic".into(),
        provider_id: body.id,
    };
    let accepted = ingest::accept(&app, sms).await.map_err(ingest_error)?;
    Ok(axum::Json(InboundAccepted { id: accepted.message_id, status: "received", routed: accepted.event_ids.len() }))
}

pub fn ingest_error(e: IngestError) -> ApiError {
    match e {
        IngestError::InvalidNumber { field, .. } => {
            ApiError::bad_request("INVALID_PHONE_NUMBER", e.to_string()).with_field(field)
        }
        IngestError::UnknownNumber(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_NUMBER", e.to_string()).with_field("to")
        }
        IngestError::TooLong { .. } => ApiError::bad_request("MESSAGE_TOO_LONG", e.to_string()).with_field("message"),
        IngestError::Store(e) => ApiError::unavailable(e),
    }
}
