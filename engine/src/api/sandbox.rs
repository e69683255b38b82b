//! The sandbox's inbound side: a tenant makes up an inbound SMS to one of
//! its numbers and sees its plugins answer, in test mode (their sends go
//! to the sandbox connector, free, `mode: "test"`). Any key may use it; it
//! never reaches a carrier and changes no one's consent.

use super::auth::AuthTenant;
use super::carriers::ingest_error;
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use crate::api::Context;
use crate::connectors::InboundSms;
use crate::pipeline::ingest;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxInbound {
    /// Who the made-up message is from.
    #[schema(min_length = 1, max_length = 64)]
    from: String,
    /// One of the tenant's numbers.
    #[schema(min_length = 1, max_length = 64)]
    to: String,
    /// At most `limits.message_chars`.
    #[schema(max_length = 1600)]
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct SandboxAccepted {
    /// The inbound message's id; its answers list it as `in_reply_to`.
    id: String,
    /// How many plugins it was routed to.
    routed: usize,
    mode: &'static str,
}

/// Make up an inbound SMS to one of your numbers; your plugins run on it in
/// test mode.
#[utoipa::path(post, path = "/v1/sandbox/inbound", tag = "messages", request_body = SandboxInbound,
    responses((status = 200, body = SandboxAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "UNKNOWN_NUMBER: not one of your numbers", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn inbound(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Json(body): Json<SandboxInbound>,
) -> Result<axum::Json<SandboxAccepted>, ApiError> {
    let sms = InboundSms {
        from: body.from,
        to: body.to,
        body: body.message,
        connector: crate::connectors::SANDBOX_CONNECTOR.to_string(),
        provider_id: None,
    };
    let accepted = ingest::accept_sandbox(&ctx.engine, &auth.tenant_id, sms).await.map_err(ingest_error)?;
    Ok(axum::Json(SandboxAccepted { id: accepted.message_id, routed: accepted.event_ids.len(), mode: "test" }))
}
