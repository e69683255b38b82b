//! The Messages resource: create, list, fetch, update (cancel a scheduled
//! message, redact a body) and delete.

use super::resource::MessageResource;
use super::{TwilioAuth, TwilioError};
use crate::api::Context;
use crate::connectors::twilio::wire;
use crate::pipeline::outbound::{self, Draft, Prepared, SendError};
use crate::secrets::KeyMode;
use crate::store::{CancelResult, Direction, EraseResult, IdempotencyRecord, MessageFilter, MessageView};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The largest `PageSize` Twilio accepts (and its default).
pub const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Twilio's limit on a body, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// A form's fields, in order (a name may repeat: `MediaUrl`).
fn form_fields(headers: &HeaderMap, body: &Bytes) -> Result<Vec<(String, String)>, TwilioError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(TwilioError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            20001,
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

fn bad(code: u32, message: impl Into<String>) -> TwilioError {
    TwilioError::bad_request(code, message)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

/// Our message id for the `{Sid}.json` path segment, or 404.
fn message_id(file: &str, path: &str) -> Result<String, TwilioError> {
    file.strip_suffix(".json").and_then(wire::message_id).ok_or_else(|| TwilioError::not_found(path))
}

/// What became of a send, in Twilio's codes.
fn send_error(e: SendError, to: &str) -> TwilioError {
    match e {
        SendError::Invalid { code, message, field } => match field.as_str() {
            "to" => bad(21211, format!("The 'To' number {to} is not a valid phone number.")),
            "message" if code == "MESSAGE_TOO_LONG" => {
                bad(21617, "The concatenated message body exceeds the 1600 character limit.")
            }
            "message" => bad(21602, format!("Message body is required. ({message})")),
            "schedule_time" => bad(35114, format!("Scheduling does not support this timestamp: {message}")),
            "webhook_url" => bad(21609, format!("The StatusCallback URL is not valid: {message}")),
            _ => bad(21000, message),
        },
        SendError::SenderNotAllowed { message, .. } => bad(
            21606,
            format!("The From phone number is not a valid, SMS-capable phone number for your account ({message})."),
        ),
        SendError::TemplateNotFound { .. } => TwilioError::internal(e),
        SendError::InsufficientBalance { .. } => {
            TwilioError::new(StatusCode::PAYMENT_REQUIRED, 20005, format!("Account not active: {e}"))
        }
        SendError::IdempotencyRace => TwilioError::new(StatusCode::CONFLICT, 20409, e.to_string()),
        SendError::OptedOut { .. } => bad(21610, "Attempt to send to unsubscribed recipient"),
        SendError::DailyQuotaExceeded { .. } => TwilioError::new(StatusCode::TOO_MANY_REQUESTS, 20429, e.to_string()),
        SendError::Store(e) => unavailable(e),
        SendError::Commit(e) => unavailable(e),
    }
}

fn unavailable(e: impl std::fmt::Display) -> TwilioError {
    tracing::error!(error = %e, "service unavailable");
    TwilioError::new(StatusCode::SERVICE_UNAVAILABLE, 20503, "Service unavailable; retry shortly")
}

/// A message as it was just accepted, before anything happened to it.
fn accepted_view(prepared: &Prepared) -> MessageView {
    let m = &prepared.messages[0];
    MessageView {
        id: m.id.clone(),
        direction: Direction::Outbound.as_str().to_string(),
        from: m.from.clone(),
        to: m.to.clone(),
        body: m.body.clone(),
        status: m.status.as_str().to_string(),
        segments: i64::from(m.segments),
        encoding: m.encoding.to_string(),
        reference: m.reference.clone(),
        error_code: None,
        connector: m.connector.clone(),
        provider_id: None,
        plugin: None,
        in_reply_to: None,
        created_at: m.created_at,
        updated_at: m.created_at,
        mode: m.mode.to_string(),
        scheduled_at: m.scheduled_at,
        price: m.price,
        batch_id: None,
        account_sid: m.account_sid.clone(),
        trace_context: m.trace_context.clone(),
        history: Vec::new(),
        parts: Vec::new(),
    }
}

/// The draft a create request describes, or Twilio's error for it.
fn draft(fields: &[(String, String)], account_sid: &str) -> Result<Draft, TwilioError> {
    if field(fields, "MediaUrl").is_some() || field(fields, "SendAsMms") == Some("true") {
        return Err(bad(21620, "Switchboard sends SMS only: MediaUrl (MMS) is not supported"));
    }
    if field(fields, "ContentSid").is_some() {
        return Err(bad(21619, "Switchboard sends a Body: ContentSid (Content API templates) is not supported"));
    }
    let to =
        field(fields, "To").filter(|t| !t.is_empty()).ok_or_else(|| bad(21604, "A 'To' phone number is required."))?;
    let from = field(fields, "From").filter(|f| !f.is_empty());
    let service = field(fields, "MessagingServiceSid").filter(|s| !s.is_empty());
    if let Some(s) = service
        && !(s.len() == 34 && s.starts_with("MG") && s[2..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad(21701, format!("The Messaging Service Sid {s} is invalid.")));
    }
    if from.is_none() && service.is_none() {
        return Err(bad(21603, "A 'From' phone number is required."));
    }
    let body = field(fields, "Body").unwrap_or_default();
    if body.is_empty() {
        return Err(bad(21602, "Message body is required."));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(bad(21617, "The concatenated message body exceeds the 1600 character limit."));
    }
    let schedule_time = match (field(fields, "ScheduleType"), field(fields, "SendAt")) {
        (None, None) => None,
        (Some("fixed"), Some(at)) => Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| bad(35114, format!("Scheduling does not support this timestamp: {at}")))?
                .to_rfc3339(),
        ),
        (Some("fixed"), None) => return Err(bad(35114, "SendAt is required when ScheduleType is fixed")),
        (Some(other), _) => return Err(bad(35111, format!("ScheduleType {other:?} is not supported; use fixed"))),
        (None, Some(_)) => return Err(bad(35111, "ScheduleType=fixed is required with SendAt")),
    };
    let webhook_url = match field(fields, "StatusCallback").filter(|u| !u.is_empty()) {
        Some(u) if u.len() > 2048 => return Err(bad(21609, "The StatusCallback URL is too long.")),
        other => other.map(str::to_string),
    };
    let validity_s = match field(fields, "ValidityPeriod") {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=36_000).contains(n))
                .ok_or_else(|| bad(90007, "ValidityPeriod is a whole number of seconds from 1 to 36000"))?,
        ),
    };
    Ok(Draft {
        to: vec![to.to_string()],
        // A Messaging Service sends from the tenant's default number.
        from: from.map(str::to_string),
        message: Some(body.to_string()),
        schedule_time,
        webhook_url,
        account_sid: Some(account_sid.to_string()),
        validity_s,
        ..Draft::default()
    })
}

/// `POST .../Messages.json`: send one message.
pub async fn create(
    State(ctx): State<Arc<Context>>,
    auth: TwilioAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let fields = form_fields(&headers, &body)?;
    let draft = draft(&fields, &auth.account_sid)?;
    let to = draft.to[0].clone();
    let key = match headers.get("i-twilio-idempotency-token") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| TwilioError::bad_request(20001, "I-Twilio-Idempotency-Token is 1 to 255 characters"))?
                .to_string(),
        ),
    };
    let request_hash = hex::encode(Sha256::digest([b"twilio POST Messages\n".as_slice(), &body].concat()));
    if let Some(k) = &key
        && let Some(stored) = ctx.engine.db.idempotency(&auth.tenant_id, k).await?
    {
        if stored.request_hash != request_hash {
            return Err(TwilioError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                20001,
                "this I-Twilio-Idempotency-Token was used with a different request",
            ));
        }
        return Ok(json(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED), stored.response));
    }
    let tenant = outbound::tenant(&ctx.engine, &auth.tenant_id).ok_or_else(TwilioError::authenticate)?;
    let prepared =
        outbound::prepare(&ctx.engine, &tenant, auth.mode, vec![draft], false).await.map_err(|e| send_error(e, &to))?;
    let resource = MessageResource::of(&accepted_view(&prepared), &auth.account_sid, &ctx.engine.pricing.currency);
    let response = serde_json::to_string(&resource).expect("serializes");
    let record = key.as_ref().map(|k| IdempotencyRecord {
        key: k.clone(),
        request_hash,
        status: StatusCode::CREATED.as_u16(),
        response: response.clone(),
    });
    match outbound::commit(&ctx.engine, &auth.tenant_id, &prepared, record).await.map_err(|e| send_error(e, &to))? {
        Some(()) => Ok(json(StatusCode::CREATED, response)),
        None => {
            let k = key.expect("duplicates only happen with a key");
            let stored = ctx
                .engine
                .db
                .idempotency(&auth.tenant_id, &k)
                .await?
                .ok_or_else(|| send_error(SendError::IdempotencyRace, &to))?;
            Ok(json(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED), stored.response))
        }
    }
}

/// One of the tenant's messages the credential may see (a test
/// credential sees test messages only).
async fn visible(ctx: &Context, auth: &TwilioAuth, id: &str, path: &str) -> Result<MessageView, TwilioError> {
    ctx.engine
        .db
        .get_message(&auth.tenant_id, id)
        .await?
        .filter(|m| auth.mode == KeyMode::Live || m.mode == "test")
        .ok_or_else(|| TwilioError::not_found(path))
}

fn resource_json(ctx: &Context, m: &MessageView, account_sid: &str) -> Response {
    let resource = MessageResource::of(m, account_sid, &ctx.engine.pricing.currency);
    json(StatusCode::OK, serde_json::to_string(&resource).expect("serializes"))
}

/// `GET .../Messages/{Sid}.json`.
pub async fn fetch(
    State(ctx): State<Arc<Context>>,
    auth: TwilioAuth,
    Path((_, file)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Result<Response, TwilioError> {
    let id = message_id(&file, uri.path())?;
    let m = visible(&ctx, &auth, &id, uri.path()).await?;
    Ok(resource_json(&ctx, &m, &auth.account_sid))
}

/// `POST .../Messages/{Sid}.json`: `Status=canceled` cancels a scheduled
/// message; `Body=` (empty) redacts a finished one.
pub async fn update(
    State(ctx): State<Arc<Context>>,
    auth: TwilioAuth,
    Path((_, file)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let id = message_id(&file, uri.path())?;
    let fields = form_fields(&headers, &body)?;
    visible(&ctx, &auth, &id, uri.path()).await?;
    let now = ctx.engine.clock.now_ms();
    match (field(&fields, "Status"), field(&fields, "Body")) {
        (Some("canceled"), None) => match ctx.engine.db.cancel_scheduled(&auth.tenant_id, &id, now).await? {
            CancelResult::Cancelled => ctx.engine.pipeline.webhooks.now(),
            CancelResult::NotFound => return Err(TwilioError::not_found(uri.path())),
            CancelResult::NotCancellable(status) => {
                return Err(TwilioError::bad_request(
                    30409,
                    format!("This message cannot be canceled: it is {}", wire_status(&status)),
                ));
            }
        },
        (None, Some("")) => match ctx.engine.db.redact_message(&auth.tenant_id, &id, now).await? {
            EraseResult::Done => {}
            EraseResult::NotFound => return Err(TwilioError::not_found(uri.path())),
            EraseResult::InProgress(status) => {
                return Err(TwilioError::bad_request(
                    20009,
                    format!("Cannot redact a message that is in progress ({})", wire_status(&status)),
                ));
            }
        },
        (None, Some(_)) => return Err(TwilioError::bad_request(21000, "Body can only be set to \"\" (redaction)")),
        (Some(other), _) => {
            return Err(TwilioError::bad_request(21000, format!("Status can only be set to canceled, not {other:?}")));
        }
        (None, None) => return Err(TwilioError::bad_request(21000, "give Status=canceled or Body=\"\"")),
    }
    let m = visible(&ctx, &auth, &id, uri.path()).await?;
    Ok(resource_json(&ctx, &m, &auth.account_sid))
}

fn wire_status(ours: &str) -> &'static str {
    crate::store::MessageStatus::parse(ours).map(wire::status).unwrap_or("unknown")
}

/// `DELETE .../Messages/{Sid}.json`: a finished message is deleted.
pub async fn delete(
    State(ctx): State<Arc<Context>>,
    auth: TwilioAuth,
    Path((_, file)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Result<Response, TwilioError> {
    let id = message_id(&file, uri.path())?;
    visible(&ctx, &auth, &id, uri.path()).await?;
    match ctx.engine.db.delete_message(&auth.tenant_id, &id).await? {
        EraseResult::Done => Ok(StatusCode::NO_CONTENT.into_response()),
        EraseResult::NotFound => Err(TwilioError::not_found(uri.path())),
        EraseResult::InProgress(status) => Err(TwilioError::new(
            StatusCode::CONFLICT,
            20009,
            format!("Cannot delete message because it is in progress ({})", wire_status(&status)),
        )),
    }
}

/// `GET .../Messages.json`: newest first, filtered by `To`, `From`,
/// `DateSent`, `DateSent<`, `DateSent>`, paged by `PageSize`, `Page`,
/// `PageToken`.
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: TwilioAuth,
    RawQuery(query): RawQuery,
    uri: axum::http::Uri,
) -> Result<Response, TwilioError> {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |k: &str| field(&params, k);
    let invalid = |name: &str, what: &str| bad(20001, format!("{name} {what}"));
    let page_size = match get("PageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| invalid("PageSize", "is a whole number from 1 to 1000"))?,
    };
    let page = match get("Page") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| invalid("Page", "is a whole number from 0"))?,
    };
    let before_id = match get("PageToken") {
        None => None,
        Some(token) => Some(
            token.strip_prefix("PA").and_then(wire::message_id).ok_or_else(|| invalid("PageToken", "is not valid"))?,
        ),
    };
    let (mut since, mut until) = (None, None);
    for (name, value) in &params {
        let range = match name.as_str() {
            "DateSent" | "DateSent<" | "DateSent>" => {
                day_or_instant(value).ok_or_else(|| invalid(name, "is a date (YYYY-MM-DD) or an ISO 8601 time"))?
            }
            _ => continue,
        };
        match name.as_str() {
            // A date: the whole UTC day (of an instant too).
            "DateSent" => {
                let day = range.0 - range.0.rem_euclid(86_400_000);
                (since, until) = (Some(day), Some(day + 86_400_000));
            }
            "DateSent<" => until = Some(range.1),
            _ => since = Some(range.0),
        }
    }
    let filter = MessageFilter {
        to: get("To").map(str::to_string),
        from: get("From").map(str::to_string),
        since,
        until,
        mode: Some(if auth.mode == KeyMode::Test { "test" } else { "live" }.to_string()),
        before_id,
        limit: page_size,
        ..MessageFilter::default()
    };
    let messages = ctx.engine.db.list_messages(&auth.tenant_id, &filter).await?;
    let base = uri.path().to_string();
    let filters: String = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PageSize" | "Page" | "PageToken"))
        .map(|(k, v)| format!("&{}={}", enc(k), enc(v)))
        .collect();
    let page_uri = |page: u32, token: Option<&str>| {
        let token = token.map(|t| format!("&PageToken={t}")).unwrap_or_default();
        format!("{base}?PageSize={page_size}&Page={page}{token}{filters}")
    };
    let next_page_uri = (messages.len() == page_size as usize)
        .then(|| messages.last().map(|m| page_uri(page + 1, Some(&format!("PA{}", wire::message_sid(&m.id))))))
        .flatten();
    let start = u64::from(page) * u64::from(page_size);
    let body = serde_json::json!({
        "end": (start + messages.len() as u64).saturating_sub(1),
        "first_page_uri": page_uri(0, None),
        "messages": messages
            .iter()
            .map(|m| MessageResource::of(m, &auth.account_sid, &ctx.engine.pricing.currency))
            .collect::<Vec<_>>(),
        "next_page_uri": next_page_uri,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": serde_json::Value::Null,
        "start": start,
        "uri": match query.as_deref() { Some(q) => format!("{base}?{q}"), None => base.clone() },
    });
    Ok(json(StatusCode::OK, body.to_string()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `[from, until)` in milliseconds for a date (its whole UTC day) or an
/// instant (that instant alone, as a bound).
fn day_or_instant(value: &str) -> Option<(i64, i64)> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        return Some((start, start + 86_400_000));
    }
    let at = chrono::DateTime::parse_from_rfc3339(value).ok()?.timestamp_millis();
    Some((at, at + 1))
}
