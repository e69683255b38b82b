//! Sending through the gateway: `POST /v1/messages` (one recipient or
//! many), `POST /v1/messages/batch` (individually personalised messages),
//! `DELETE /v1/messages/{id}` (cancel a scheduled message), and a message's
//! webhook deliveries.

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use super::json;
use crate::api::Context;
use crate::billing::format_amount;
use crate::clock::to_rfc3339;
use crate::pipeline::outbound::{self, Draft, Prepared, SendError};
use crate::sms::encoding::EncodingChoice;
use crate::store::{CancelResult, IdempotencyRecord};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// One number, or a list of them (bulk).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// A template created with `POST /v1/templates`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// Values of its `{{placeholders}}` (strings, numbers or booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    vars: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// E.164 recipient, or up to 1,000 of them.
    #[schema(schema_with = recipients_schema)]
    to: Recipients,
    /// One of your numbers or sender IDs (default: your default number).
    #[schema(max_length = 64)]
    from: Option<String>,
    /// The text (or give `template`); at most `limits.message_chars`.
    #[schema(min_length = 1, max_length = 1600)]
    message: Option<String>,
    template: Option<TemplateRef>,
    #[serde(default)]
    encoding: EncodingChoice,
    /// RFC 3339; between now and a year ahead.
    #[schema(format = DateTime)]
    schedule_time: Option<String>,
    /// Receives this message's status changes (else your account's URL):
    /// an http(s) URL.
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+", max_length = 2048)]
    webhook_url: Option<String>,
    /// Yours; echoed in status webhooks. References starting with
    /// `compliance:` are the engine's own.
    #[schema(max_length = 128)]
    reference: Option<String>,
    /// Send even during the recipient's quiet hours (one-time codes,
    /// alerts). Other messages falling in quiet hours are scheduled for
    /// when they end.
    #[serde(default)]
    urgent: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBatch {
    /// Individually personalised messages, each with a single `to`.
    #[schema(value_type = Vec<BatchMessage>, min_items = 1, max_items = 1000)]
    messages: Vec<SendMessage>,
}

/// One message of a batch: as a single send, with exactly one `to`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes batch items for the OpenAPI document
pub struct BatchMessage {
    #[schema(min_length = 1, max_length = 64)]
    to: String,
    #[schema(max_length = 64)]
    from: Option<String>,
    #[schema(min_length = 1, max_length = 1600)]
    message: Option<String>,
    template: Option<TemplateRef>,
    #[schema(required = false)]
    encoding: EncodingChoice,
    #[schema(format = DateTime)]
    schedule_time: Option<String>,
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+", max_length = 2048)]
    webhook_url: Option<String>,
    #[schema(max_length = 128)]
    reference: Option<String>,
    #[schema(required = false)]
    urgent: bool,
}

/// One number, or a list of 1 to 1,000.
fn recipients_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
    let number =
        || ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).min_length(Some(1)).max_length(Some(64));
    OneOfBuilder::new()
        .item(number())
        .item(ArrayBuilder::new().items(number()).min_items(Some(1)).max_items(Some(MAX_RECIPIENTS)))
        .build()
        .into()
}

/// The longest reference a sender may give.
const MAX_REFERENCE_BYTES: usize = 128;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QueuedMessage {
    id: String,
    to: String,
    from: String,
    /// `queued`, or `scheduled`
    status: String,
    segments: u32,
    /// `gsm7` or `ucs2`
    encoding: String,
    price: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SendResponse {
    /// The message id (single recipient).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The message ids, in recipient order (bulk and batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    status: String,
    segments: u32,
    encoding: String,
    count: usize,
    /// Total price, in `currency`.
    price: String,
    currency: String,
    messages: Vec<QueuedMessage>,
}

const MAX_RECIPIENTS: usize = 1000;

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn draft(m: SendMessage, prefix: String, single_only: bool) -> Result<Draft, ApiError> {
    let to = match m.to {
        Recipients::One(t) => vec![t],
        Recipients::Many(list) if single_only => {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("a batch message has one recipient, not {}", list.len()),
            )
            .with_field(format!("{prefix}to")));
        }
        Recipients::Many(list) => list,
    };
    if m.reference.as_ref().is_some_and(|r| r.chars().count() > MAX_REFERENCE_BYTES) {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("reference is at most {MAX_REFERENCE_BYTES} characters"),
        )
        .with_field(format!("{prefix}reference")));
    }
    if m.from.as_ref().is_some_and(|f| f.chars().count() > 64) {
        return Err(
            ApiError::bad_request("INVALID_FIELD", "from is at most 64 characters").with_field(format!("{prefix}from"))
        );
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(ApiError::bad_request(
            "TOO_MANY_RECIPIENTS",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        )
        .with_field(format!("{prefix}to")));
    }
    let template = match m.template {
        None => None,
        Some(t) => {
            let mut vars = HashMap::new();
            for (k, v) in t.vars {
                let text = scalar_text(&v).ok_or_else(|| {
                    ApiError::bad_request("INVALID_FIELD", "template variables are strings, numbers or booleans")
                        .with_field(format!("{prefix}template.vars.{k}"))
                })?;
                vars.insert(k, text);
            }
            Some((t.name, vars))
        }
    };
    Ok(Draft {
        field_prefix: prefix,
        to,
        from: m.from,
        message: m.message,
        template,
        encoding: m.encoding,
        schedule_time: m.schedule_time,
        webhook_url: m.webhook_url,
        reference: m.reference,
        urgent: m.urgent,
        account_sid: None,
        validity_s: None,
    })
}

fn send_error(e: SendError) -> ApiError {
    match e {
        SendError::Invalid { code, message, field } => ApiError::bad_request(code, message).with_field(field),
        SendError::SenderNotAllowed { message, field } => {
            ApiError::forbidden("SENDER_NOT_ALLOWED", message).with_field(field)
        }
        SendError::TemplateNotFound { ref field, .. } => {
            let field = field.clone();
            ApiError::bad_request("TEMPLATE_NOT_FOUND", e.to_string()).with_field(field)
        }
        SendError::InsufficientBalance { balance, needed } => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "INSUFFICIENT_BALANCE",
            format!("the messages cost {}, the balance is {}", format_amount(needed), format_amount(balance)),
        ),
        SendError::IdempotencyRace => ApiError::conflict("IDEMPOTENCY_IN_PROGRESS", e.to_string()),
        SendError::OptedOut { message, field } => {
            ApiError::bad_request("RECIPIENT_OPTED_OUT", message).with_field(field)
        }
        SendError::DailyQuotaExceeded { .. } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "DAILY_QUOTA_EXCEEDED", e.to_string())
        }
        SendError::Store(e) => ApiError::unavailable(e),
        SendError::Commit(e) => ApiError::unavailable(e),
    }
}

fn response_of(ctx: &Context, prepared: &Prepared, bulk: bool) -> SendResponse {
    let messages: Vec<QueuedMessage> = prepared
        .queued
        .iter()
        .map(|q| QueuedMessage {
            id: q.id.clone(),
            to: q.to.clone(),
            from: q.from.clone(),
            status: q.status.as_str().to_string(),
            segments: q.segments,
            encoding: q.encoding.as_str().to_string(),
            price: format_amount(q.price),
            scheduled_at: q.scheduled_at.map(to_rfc3339),
        })
        .collect();
    let first = &prepared.queued[0];
    SendResponse {
        id: (!bulk).then(|| first.id.clone()),
        ids: bulk.then(|| messages.iter().map(|m| m.id.clone()).collect()),
        batch_id: prepared.batch_id.clone(),
        status: first.status.as_str().to_string(),
        segments: first.segments,
        encoding: first.encoding.as_str().to_string(),
        count: messages.len(),
        price: format_amount(prepared.queued.iter().map(|q| q.price).sum()),
        currency: ctx.engine.pricing.currency.clone(),
        messages,
    }
}

/// Printable ASCII, 1 to 255 characters, no space at either end (the
/// pattern the OpenAPI document gives the header).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,253}[!-~])?$";
static IDEMPOTENCY_KEY: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(IDEMPOTENCY_KEY_PATTERN).expect("idempotency key pattern"));

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().ok().filter(|k| IDEMPOTENCY_KEY.is_match(k)).ok_or_else(|| {
        ApiError::bad_request("INVALID_PARAMETER", "Idempotency-Key must be 1 to 255 visible characters")
            .with_field("Idempotency-Key")
    })?;
    Ok(Some(key.to_string()))
}

fn replay(status: u16, response: String) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED),
        [("content-type", "application/json")],
        response,
    )
        .into_response();
    r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// The shared path of both send endpoints.
async fn accept(
    ctx: &Context,
    auth: &AuthTenant,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
    drafts: impl FnOnce() -> Result<Vec<Draft>, ApiError>,
    bulk: bool,
) -> Result<Response, ApiError> {
    let key = idempotency_key(headers)?;
    let request_hash = hex::encode(Sha256::digest([route.as_bytes(), b"\n", body].concat()));
    if let Some(k) = &key
        && let Some(stored) = ctx.engine.db.idempotency(&auth.tenant_id, k).await?
    {
        if stored.request_hash != request_hash {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with a different request",
            )
            .with_field("Idempotency-Key"));
        }
        return Ok(replay(stored.status, stored.response));
    }
    let tenant =
        outbound::tenant(&ctx.engine, &auth.tenant_id).ok_or_else(|| ApiError::unauthorized("unknown tenant"))?;
    let prepared = outbound::prepare(&ctx.engine, &tenant, auth.mode, drafts()?, bulk).await.map_err(send_error)?;
    let response = serde_json::to_string(&response_of(ctx, &prepared, bulk)).expect("serializes");
    let record = key.as_ref().map(|k| IdempotencyRecord {
        key: k.clone(),
        request_hash,
        status: StatusCode::ACCEPTED.as_u16(),
        response: response.clone(),
    });
    match outbound::commit(&ctx.engine, &auth.tenant_id, &prepared, record).await.map_err(send_error)? {
        Some(()) => Ok((StatusCode::ACCEPTED, [("content-type", "application/json")], response).into_response()),
        None => {
            // The same key committed concurrently: answer with its result.
            let k = key.expect("duplicates only happen with a key");
            let stored = ctx
                .engine
                .db
                .idempotency(&auth.tenant_id, &k)
                .await?
                .ok_or_else(|| send_error(SendError::IdempotencyRace))?;
            Ok(replay(stored.status, stored.response))
        }
    }
}

/// Send one message, or the same message to many recipients.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first result", pattern = "^[!-~]([ -~]{0,253}[!-~])?$", min_length = 1, max_length = 255)),
    responses(
        (status = 202, description = "Queued or scheduled", body = SendResponse),
        (status = 400, description = "Invalid request (bad number, encoding, schedule time, template...)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 402, description = "INSUFFICIENT_BALANCE", body = ErrorBody),
        (status = 403, description = "SENDER_NOT_ALLOWED", body = ErrorBody),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED", body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn send(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    json::check_content_type(&headers)?;
    let parse = || {
        let m: SendMessage = json::parse(&body)?;
        let bulk = matches!(m.to, Recipients::Many(_));
        Ok::<_, ApiError>((draft(m, String::new(), false)?, bulk))
    };
    // Parse once up front to learn whether it is a bulk send.
    let (d, bulk) = parse()?;
    accept(&ctx, &auth, &headers, "POST /v1/messages", &body, || Ok(vec![d]), bulk).await
}

/// Send individually personalised messages in one request.
#[utoipa::path(post, path = "/v1/messages/batch", tag = "messages", request_body = SendBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first result", pattern = "^[!-~]([ -~]{0,253}[!-~])?$", min_length = 1, max_length = 255)),
    responses(
        (status = 202, description = "Queued or scheduled", body = SendResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 402, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn send_batch(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    json::check_content_type(&headers)?;
    let batch: SendBatch = json::parse(&body)?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_RECIPIENTS {
        return Err(ApiError::bad_request("INVALID_FIELD", format!("a batch has 1 to {MAX_RECIPIENTS} messages"))
            .with_field("messages"));
    }
    let drafts = batch
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| draft(m, format!("messages[{i}]."), true))
        .collect::<Result<Vec<_>, _>>()?;
    accept(&ctx, &auth, &headers, "POST /v1/messages/batch", &body, || Ok(drafts), true).await
}

/// Cancel a scheduled message (its price is refunded).
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Cancelled; the message", body = super::messages::MessageJson),
        (status = 404, body = ErrorBody), (status = 409, description = "MESSAGE_NOT_CANCELLABLE", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn cancel(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(id): Path<String>,
) -> Result<axum::Json<super::messages::MessageJson>, ApiError> {
    if auth.mode == crate::secrets::KeyMode::Test
        && let Some(m) = ctx.engine.db.get_message(&auth.tenant_id, &id).await?
        && m.mode != "test"
    {
        return Err(ApiError::forbidden("TEST_KEY", "a test key can cancel test messages only"));
    }
    match ctx.engine.db.cancel_scheduled(&auth.tenant_id, &id, ctx.engine.clock.now_ms()).await? {
        CancelResult::Cancelled => {
            ctx.engine.pipeline.webhooks.now();
            let m = ctx
                .engine
                .db
                .get_message(&auth.tenant_id, &id)
                .await?
                .ok_or_else(|| ApiError::internal("cancelled message vanished"))?;
            Ok(axum::Json(m.into()))
        }
        CancelResult::NotFound => Err(ApiError::not_found("MESSAGE_NOT_FOUND", format!("no message {id:?}"))),
        CancelResult::NotCancellable(status) => Err(ApiError::conflict(
            "MESSAGE_NOT_CANCELLABLE",
            format!("only scheduled messages can be cancelled; this one is {status}"),
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAttemptJson {
    at: String,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveryJson {
    id: String,
    url: String,
    /// `pending`, `delivered` or `failed`
    status: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    attempts: Vec<WebhookAttemptJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveries {
    data: Vec<WebhookDeliveryJson>,
}

/// The status webhooks of a message and every attempt to deliver them.
#[utoipa::path(get, path = "/v1/messages/{id}/webhooks", tag = "messages",
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = WebhookDeliveries), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn webhooks(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookDeliveries>, ApiError> {
    if ctx.engine.db.get_message(&auth.tenant_id, &id).await?.is_none() {
        return Err(ApiError::not_found("MESSAGE_NOT_FOUND", format!("no message {id:?}")));
    }
    let data = ctx
        .engine
        .db
        .webhooks_for_message(&auth.tenant_id, &id)
        .await?
        .into_iter()
        .map(|d| WebhookDeliveryJson {
            id: d.id,
            url: d.url,
            status: d.status,
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            attempts: d
                .attempts
                .into_iter()
                .map(|a| WebhookAttemptJson {
                    at: to_rfc3339(a.at),
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
            next_attempt_at: d.next_attempt_at.map(to_rfc3339),
        })
        .collect();
    Ok(axum::Json(WebhookDeliveries { data }))
}
