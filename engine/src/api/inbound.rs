//! Carrier webhooks for inbound SMS.
//!
//! `POST /v1/inbound/generic` takes the common gateway shape
//! `{"from", "to", "message"}` and answers 200 once the message is durable.

use super::error::{ApiError, ErrorBody};
use super::json::Json;
use crate::app::App;
use crate::pipeline::ingest::{self, InboundSms, IngestError};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
pub struct InboundAccepted {
    id: String,
    status: &'static str,
    /// How many plugins the message was routed to.
    routed: usize,
}

/// Carrier webhook: an SMS received on a tenant's number (generic gateway shape).
#[utoipa::path(post, path = "/v1/inbound/generic", tag = "inbound", request_body = GenericInbound,
    responses((status = 200, description = "Durably accepted", body = InboundAccepted), (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, description = "UNKNOWN_NUMBER", body = ErrorBody)))]
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
