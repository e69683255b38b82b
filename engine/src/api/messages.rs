//! Reading messages: `GET /v1/messages` (filters, cursor pagination) and
//! `GET /v1/messages/{id}` (status history; for inbound messages, the
//! plugins it was routed to and how their processing went).

use super::auth::AuthTenant;
use super::error::ApiError;
use super::error::ErrorBody;
use super::json::Query;
use super::params::{DirectionFilter, ModeFilter, page_limit};
use crate::api::Context;
use crate::clock::to_rfc3339;
use crate::store::{Direction, EventView, MessageFilter, MessageStatus, MessageView};
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

#[derive(Serialize, ToSchema)]
pub struct MessageJson {
    id: String,
    direction: String,
    from: String,
    to: String,
    message: String,
    status: String,
    segments: i64,
    encoding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to: Option<String>,
    created_at: String,
    updated_at: String,
    /// `live`, or `test` (sent with a test key, through the sandbox).
    mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<String>,
    price: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    /// The OpenTelemetry trace that follows this message through every
    /// hop (32 hex digits), when the engine exports traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    history: Vec<HistoryJson>,
    /// The parts a multi-part message was sent as, each with its carrier id
    /// and delivery status (partial delivery shows here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<PartJson>,
    /// Inbound messages: the plugins it was routed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    processing: Option<Vec<EventJson>>,
}

#[derive(Serialize, ToSchema)]
pub struct PartJson {
    part: i64,
    provider_id: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryJson {
    status: String,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventJson {
    pub id: String,
    pub plugin: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The version the event runs: the one it failed on (its retries run
    /// it too), or the one a retry asked for. Absent: the active version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl From<EventView> for EventJson {
    fn from(e: EventView) -> Self {
        EventJson {
            id: e.id,
            plugin: e.plugin,
            kind: e.kind,
            name: e.name,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            message_id: e.message_id,
            created_at: to_rfc3339(e.created_at),
            updated_at: to_rfc3339(e.updated_at),
            version: e.version,
        }
    }
}

impl From<MessageView> for MessageJson {
    fn from(m: MessageView) -> Self {
        // The store gives the history in the order it was recorded, which
        // is causal order: a carrier's report can carry an earlier time
        // than the answer to the send it reports on.
        let history = m.history;
        MessageJson {
            id: m.id,
            direction: m.direction,
            from: m.from,
            to: m.to,
            message: m.body,
            status: m.status,
            segments: m.segments,
            encoding: m.encoding,
            reference: m.reference,
            error_code: m.error_code,
            connector: m.connector,
            provider_id: m.provider_id,
            plugin: m.plugin,
            in_reply_to: m.in_reply_to,
            created_at: to_rfc3339(m.created_at),
            updated_at: to_rfc3339(m.updated_at),
            mode: m.mode,
            scheduled_at: m.scheduled_at.map(to_rfc3339),
            price: crate::billing::format_amount(m.price),
            batch_id: m.batch_id,
            trace_id: m.trace_context.as_deref().and_then(crate::telemetry::trace_id).map(str::to_string),
            parts: m
                .parts
                .into_iter()
                .filter(|_| m.segments > 1)
                .map(|p| PartJson {
                    part: p.part,
                    provider_id: p.provider_id,
                    status: p.status,
                    error_code: p.error_code,
                })
                .collect(),
            history: history
                .into_iter()
                .map(|h| HistoryJson { status: h.status, at: to_rfc3339(h.at), error_code: h.error_code })
                .collect(),
            processing: None,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(inline)]
    direction: Option<DirectionFilter>,
    #[param(schema_with = super::params::status_schema)]
    status: Option<String>,
    /// Messages to this number.
    #[param(schema_with = super::params::number_schema)]
    to: Option<String>,
    /// Messages from this number (or sender ID).
    #[param(schema_with = super::params::number_schema)]
    from: Option<String>,
    /// RFC 3339; messages created at or after.
    #[param(schema_with = super::params::date_time_schema)]
    since: Option<String>,
    /// RFC 3339; messages created before.
    #[param(schema_with = super::params::date_time_schema)]
    until: Option<String>,
    /// Replies to this inbound message.
    in_reply_to: Option<String>,
    #[param(inline)]
    mode: Option<ModeFilter>,
    /// Messages of one bulk or batch send.
    batch_id: Option<String>,
    /// Messages whose text contains this, ignoring the case of ASCII
    /// letters (1 to 100 characters).
    #[param(min_length = 1, max_length = 100)]
    text: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Page {
    data: Vec<MessageJson>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn text_param(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.is_empty() || t.chars().count() > 100 => {
            Err(ApiError::bad_request("INVALID_PARAMETER", "text is 1 to 100 characters").with_field("text"))
        }
        t => Ok(t),
    }
}

fn time_param(value: &Option<String>, field: &'static str) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v).map(|t| t.timestamp_millis()).map_err(|_| {
                ApiError::bad_request("INVALID_PARAMETER", format!("{field} must be an RFC 3339 time"))
                    .with_field(field)
            })
        })
        .transpose()
}

fn number_param(value: &Option<String>, field: &'static str) -> Result<Option<String>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            crate::phone::normalize(v, None)
                .map_err(|e| ApiError::bad_request("INVALID_PHONE_NUMBER", e.to_string()).with_field(field))
        })
        .transpose()
}

/// Messages, newest first, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = Page), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Page>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let direction = q.direction.map(|d| match d {
        DirectionFilter::Inbound => Direction::Inbound,
        DirectionFilter::Outbound => Direction::Outbound,
    });
    let status = q
        .status
        .as_deref()
        .map(|s| {
            MessageStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request("INVALID_PARAMETER", format!("unknown status {s:?}")).with_field("status")
            })
        })
        .transpose()?;
    let filter = MessageFilter {
        direction,
        status,
        to: number_param(&q.to, "to")?,
        from: number_param(&q.from, "from")?,
        since: time_param(&q.since, "since")?,
        until: time_param(&q.until, "until")?,
        in_reply_to: q.in_reply_to,
        mode: q.mode.map(|m| m.as_str().to_string()),
        batch_id: q.batch_id,
        before_id: q.cursor,
        text: text_param(q.text)?,
        limit: limit + 1,
    };
    let mut rows = ctx.engine.db.list_messages(&auth.tenant_id, &filter).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(axum::Json(Page { data: rows.into_iter().map(MessageJson::from).collect(), next_cursor }))
}

/// A message with its status history.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = MessageJson), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageJson>, ApiError> {
    let message = ctx
        .engine
        .db
        .get_message(&auth.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("MESSAGE_NOT_FOUND", format!("no message {id:?}")))?;
    let inbound = message.direction == Direction::Inbound.as_str();
    let mut json = MessageJson::from(message);
    if inbound {
        let events = ctx.engine.db.events_for_message(&auth.tenant_id, &id).await?;
        json.processing = Some(events.into_iter().map(EventJson::from).collect());
    }
    Ok(axum::Json(json))
}
