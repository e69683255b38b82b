//! Carrier webhooks: `/v1/inbound/{connector}` for inbound messages and
//! `/v1/status/{connector}` for delivery reports (GET or POST, in the
//! carrier's own format). The connector verifies the carrier's signature
//! and parses the request; nothing is acknowledged before it is durable.
//!
//! The built-in `generic` connector takes `{"from", "to", "message"}` JSON.

use super::error::{ApiError, ErrorBody};
use crate::api::Context;
use crate::connectors::{WebhookError, WebhookEvent, WebhookKind, WebhookRequest};
use crate::pipeline::{delivery, ingest};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct InboundAccepted {
    /// The message's id (absent while parts of it are still missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// `received`; `part_stored` for one part of a longer message;
    /// `duplicate` when the carrier sent this message id before (the
    /// first message's id, nothing run again).
    status: &'static str,
    /// How many plugins the message was routed to.
    routed: usize,
}

/// The URL the carrier called, as it sees it.
fn public_url(ctx: &Context, headers: &HeaderMap, uri: &Uri) -> String {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    match &ctx.public_base_url {
        Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
        None => {
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    }
}

async fn webhook(
    ctx: &Context,
    kind: WebhookKind,
    connector: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let registered = ctx
        .engine
        .connectors
        .get(connector)
        .ok_or_else(|| ApiError::not_found("CONNECTOR_NOT_FOUND", format!("no connector named {connector:?}")))?;
    let url = public_url(ctx, &headers, &uri);
    let req = WebhookRequest {
        url: &url,
        method: method.as_str(),
        headers: &headers,
        query: uri.query().unwrap_or(""),
        body: &body,
    };
    let (event, reply) = registered.connector.webhook(kind, &req).map_err(|e| match e {
        WebhookError::BadSignature => {
            ApiError::forbidden("INVALID_SIGNATURE", "the webhook signature is missing or wrong")
        }
        WebhookError::Invalid { code, message, field } => {
            let status = if code == "UNSUPPORTED_MEDIA_TYPE" {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut err = ApiError::new(status, code, message);
            err.field = field;
            err
        }
        WebhookError::NotSupported(_) => {
            ApiError::not_found("NOT_FOUND", format!("connector {connector:?} takes no such webhook"))
        }
    })?;
    let answer = |a: ingest::Accepted| InboundAccepted {
        status: if a.duplicate { "duplicate" } else { "received" },
        routed: a.event_ids.len(),
        id: Some(a.message_id),
    };
    let accepted = match event.storable() {
        WebhookEvent::Inbound(sms) => Some(answer(ingest::accept(&ctx.engine, sms).await.map_err(ingest_error)?)),
        WebhookEvent::InboundPart(part) => {
            let a = ingest::accept_part(&ctx.engine, connector, part).await.map_err(ingest_error)?;
            Some(match a {
                Some(a) => answer(a),
                None => InboundAccepted { id: None, status: "part_stored", routed: 0 },
            })
        }
        WebhookEvent::Status(report) => {
            delivery::record(&ctx.engine, vec![report]).await;
            None
        }
        WebhookEvent::Ignored => None,
    };
    if !reply.body.is_empty() {
        // The carrier's own answer (TwiML for Twilio).
        return Ok((StatusCode::OK, [("content-type", reply.content_type)], reply.body).into_response());
    }
    Ok(match accepted {
        Some(accepted) => axum::Json(accepted).into_response(),
        None => axum::Json(ReportRecorded { status: "recorded" }).into_response(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct ReportRecorded {
    /// `recorded` (a report for a status this engine does not track is
    /// acknowledged the same way).
    status: &'static str,
}

/// An inbound SMS from a carrier, in the carrier's format (for `generic`:
/// `{"from", "to", "message", "id"?}` JSON). Answered once durable.
#[utoipa::path(post, path = "/v1/inbound/{connector}", tag = "inbound",
    params(("connector" = String, Path, description = "Connector name (`generic`, or one from the settings)")),
    request_body(content = String, description = "The carrier's own format", content_type = "application/json"),
    responses((status = 200, description = "Durably accepted (TwiML for Twilio)", content(
            (InboundAccepted = "application/json"), (String = "text/xml"))),
        (status = 400, body = ErrorBody), (status = 403, description = "INVALID_SIGNATURE", body = ErrorBody),
        (status = 404, description = "CONNECTOR_NOT_FOUND, or UNKNOWN_NUMBER: no number on this connector", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 429, description = "too many failed signatures from this address", body = ErrorBody)))]
pub async fn inbound_post(
    State(ctx): State<Arc<Context>>,
    Path(connector): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    webhook(&ctx, WebhookKind::Inbound, &connector, method, uri, headers, body).await
}

/// The same, for carriers that call with GET (Vonage).
#[utoipa::path(get, path = "/v1/inbound/{connector}", tag = "inbound",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 200, description = "Durably accepted (TwiML for Twilio)", content(
            (InboundAccepted = "application/json"), (String = "text/xml"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn inbound_get(
    State(ctx): State<Arc<Context>>,
    Path(connector): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    webhook(&ctx, WebhookKind::Inbound, &connector, method, uri, headers, Bytes::new()).await
}

/// A delivery report from a carrier, in the carrier's format.
#[utoipa::path(post, path = "/v1/status/{connector}", tag = "inbound",
    params(("connector" = String, Path, description = "Connector name")),
    request_body(content = String, description = "The carrier's own format", content_type = "application/json"),
    responses((status = 200, description = "Recorded", body = ReportRecorded), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn status_post(
    State(ctx): State<Arc<Context>>,
    Path(connector): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    webhook(&ctx, WebhookKind::Status, &connector, method, uri, headers, body).await
}

/// The same, for carriers that call with GET (Vonage).
#[utoipa::path(get, path = "/v1/status/{connector}", tag = "inbound",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 200, description = "Recorded", body = ReportRecorded), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn status_get(
    State(ctx): State<Arc<Context>>,
    Path(connector): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    webhook(&ctx, WebhookKind::Status, &connector, method, uri, headers, Bytes::new()).await
}

pub fn ingest_error(e: ingest::IngestError) -> ApiError {
    use ingest::IngestError;
    match e {
        IngestError::InvalidNumber { field, .. } => {
            ApiError::bad_request("INVALID_PHONE_NUMBER", e.to_string()).with_field(field)
        }
        IngestError::UnknownNumber { .. } => ApiError::not_found("UNKNOWN_NUMBER", e.to_string()).with_field("to"),
        IngestError::TooLong { .. } => ApiError::bad_request("MESSAGE_TOO_LONG", e.to_string()).with_field("message"),
        IngestError::Invalid { field, .. } => ApiError::bad_request("INVALID_FIELD", e.to_string()).with_field(field),
        IngestError::Store(e) => ApiError::unavailable(e),
    }
}
