//! Business events for plugins: `POST /v1/events/{plugin}` with
//! `{"name": "order.shipped", "payload": {...}}`;
//! `GET /v1/plugins/{name}/events/{id}` to follow one (pending, done, or
//! dead with its last error); `GET /v1/plugins/{name}/events?status=dead`
//! for the dead letters, and `POST .../events/{id}/retry` to run one again.

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use super::json::{Json, Query};
use super::messages::EventJson;
use super::plugins::{entry, lifecycle_error};
use crate::api::Context;
use crate::ids;
use crate::secrets::KeyMode;
use crate::store::{EventKind, NewEvent};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostEvent {
    /// An event name the plugin subscribes to (`triggers.events`).
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// Any JSON document; the plugin receives it as text.
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct EventAccepted {
    id: String,
    status: &'static str,
}

/// Deliver a business event to a plugin.
#[utoipa::path(post, path = "/v1/events/{plugin}", tag = "plugins", request_body = PostEvent,
    params(("plugin" = String, Path, description = "Plugin name")),
    responses((status = 202, body = EventAccepted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn post(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(plugin): Path<String>,
    Json(body): Json<PostEvent>,
) -> Result<(StatusCode, axum::Json<EventAccepted>), ApiError> {
    if body.name.is_empty() || body.name.len() > 128 {
        return Err(ApiError::bad_request("INVALID_FIELD", "name must be 1 to 128 characters").with_field("name"));
    }
    let payload = if body.payload.is_null() { serde_json::json!({}) } else { body.payload };
    let payload = payload.to_string();
    if payload.len() > ctx.engine.limits.http_body_bytes {
        return Err(ApiError::bad_request("PAYLOAD_TOO_LARGE", "payload is too large").with_field("payload"));
    }
    let snapshot = ctx.engine.directory.snapshot();
    let entry = snapshot
        .plugin_names
        .get(&(auth.tenant_id.clone(), plugin.clone()))
        .and_then(|id| snapshot.plugins.get(id))
        .ok_or_else(|| ApiError::not_found("PLUGIN_NOT_FOUND", format!("no plugin named {plugin:?}")))?;
    if entry.row.status != "active" {
        return Err(ApiError::new(StatusCode::CONFLICT, "PLUGIN_DISABLED", format!("plugin {plugin:?} is disabled")));
    }
    if !entry.wants_event(&body.name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "EVENT_NOT_SUBSCRIBED",
            format!(
                "plugin {plugin:?} does not subscribe to event {:?} (see triggers.events in its manifest)",
                body.name
            ),
        )
        .with_field("name"));
    }
    let now = ctx.engine.clock.now_ms();
    let event = NewEvent {
        id: ids::event_id(),
        tenant_id: auth.tenant_id.clone(),
        plugin_id: entry.row.plugin_id.clone(),
        kind: EventKind::Event,
        name: Some(body.name),
        payload,
        message_id: None,
        run_at: now,
        created_at: now,
        // A test key's event runs its plugin in test mode: sends go to the
        // sandbox, free.
        mode: auth.mode.as_str(),
        trace_context: crate::telemetry::current(),
    };
    ctx.engine
        .db
        .insert_events(std::slice::from_ref(&event), &ctx.engine.pipeline.lease(&ctx.engine.clock))
        .await
        .map_err(ApiError::unavailable)?;
    let id = event.id.clone();
    ctx.engine.pipeline.enqueue_event(event.to_row());
    Ok((StatusCode::ACCEPTED, axum::Json(EventAccepted { id, status: "pending" })))
}

/// An event's processing state.
#[utoipa::path(get, path = "/v1/plugins/{name}/events/{id}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("id" = String, Path, description = "Event id")),
    responses((status = 200, body = EventJson), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path((plugin, id)): Path<(String, String)>,
) -> Result<axum::Json<EventJson>, ApiError> {
    let event = ctx
        .engine
        .db
        .get_event(&auth.tenant_id, &id)
        .await?
        .filter(|e| e.plugin == plugin)
        .ok_or_else(|| ApiError::not_found("EVENT_NOT_FOUND", format!("plugin {plugin:?} has no event {id:?}")))?;
    Ok(axum::Json(event.into()))
}

/// Which events to list.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatusFilter {
    /// Used up their attempts (the dead letters).
    #[default]
    Dead,
    /// Waiting to run, or to run again.
    Pending,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// `dead` (default) or `pending`.
    status: Option<EventStatusFilter>,
    /// At most this many events (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Events older than this id (the previous page's `next_before`).
    #[param(max_length = 64)]
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    data: Vec<EventJson>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
}

/// A plugin's dead-lettered (or pending) events, newest first.
#[utoipa::path(get, path = "/v1/plugins/{name}/events", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), EventsQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(plugin): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<axum::Json<EventList>, ApiError> {
    let entry = entry(&ctx, &auth.tenant_id, &plugin)?;
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    if q.before.as_ref().is_some_and(|b| b.len() > 64) {
        return Err(ApiError::bad_request("INVALID_PARAMETER", "before is an event id").with_field("before"));
    }
    let status = match q.status.unwrap_or_default() {
        EventStatusFilter::Dead => "dead",
        EventStatusFilter::Pending => "pending",
    };
    let rows =
        ctx.engine.db.list_events(&auth.tenant_id, &entry.row.plugin_id, status, limit, q.before.as_deref()).await?;
    let next_before = (rows.len() == limit as usize).then(|| rows.last().map(|e| e.id.clone())).flatten();
    Ok(axum::Json(EventList { data: rows.into_iter().map(EventJson::from).collect(), next_before }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryEvent {
    /// The version to run: a deployed version, or `active`. Default: the
    /// version the event failed on.
    #[schema(min_length = 1, max_length = 32)]
    version: Option<String>,
}

/// Run a dead-lettered event again, from its first attempt. It runs the
/// version it failed on, unless `version` names another (or `active`).
#[utoipa::path(post, path = "/v1/plugins/{name}/events/{id}/retry", tag = "plugins", request_body = RetryEvent,
    params(("name" = String, Path, description = "Plugin name"), ("id" = String, Path, description = "Event id")),
    responses((status = 202, body = EventJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "EVENT_NOT_DEAD, PLUGIN_DISABLED", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn retry(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path((plugin, id)): Path<(String, String)>,
    body: bytes::Bytes,
) -> Result<(StatusCode, axum::Json<EventJson>), ApiError> {
    // The body is optional: none runs the version the event failed on.
    let body: RetryEvent =
        if body.iter().all(u8::is_ascii_whitespace) { RetryEvent::default() } else { super::json::parse(&body)? };
    let entry = entry(&ctx, &auth.tenant_id, &plugin)?;
    let db = &ctx.engine.db;
    let not_found = || ApiError::not_found("EVENT_NOT_FOUND", format!("plugin {plugin:?} has no event {id:?}"));
    let event = db.get_event(&auth.tenant_id, &id).await?.filter(|e| e.plugin == plugin).ok_or_else(not_found)?;
    // A test key runs what it started, in the sandbox; a live event's
    // retry can send for real, so it takes a live key.
    if auth.mode == KeyMode::Test && event.mode != "test" {
        return Err(ApiError::forbidden("TEST_KEY", "a test key can retry only events a test key started"));
    }
    if event.status != "dead" {
        return Err(ApiError::conflict(
            "EVENT_NOT_DEAD",
            format!("event {id:?} is {}; only a dead-lettered event can be retried", event.status),
        ));
    }
    if entry.row.status != "active" {
        return Err(ApiError::conflict("PLUGIN_DISABLED", format!("plugin {plugin:?} is {}", entry.row.status)));
    }
    let version_id = match body.version.as_deref() {
        None => None,
        Some("active") => Some(entry.row.version_id.clone()),
        Some(v) => {
            let versions =
                crate::deploy::history(db.as_ref(), &auth.tenant_id, &plugin).await.map_err(lifecycle_error)?;
            let found = versions.into_iter().find(|r| r.version == v).ok_or_else(|| {
                ApiError::not_found("VERSION_NOT_FOUND", format!("plugin {plugin:?} has no version {v:?}"))
                    .with_field("version")
            })?;
            Some(found.version_id)
        }
    };
    let now = ctx.engine.clock.now_ms();
    let row = db
        .retry_event(&auth.tenant_id, &id, version_id.as_deref(), &ctx.engine.pipeline.lease(&ctx.engine.clock), now)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::conflict("EVENT_NOT_DEAD", format!("event {id:?} is no longer dead-lettered")))?;
    ctx.control
        .audit(
            &auth.actor(),
            "plugin.event.retry",
            &plugin,
            serde_json::json!({ "event_id": id, "version_id": row.version_id }),
        )
        .await;
    ctx.engine.pipeline.enqueue_event(row);
    let view = db.get_event(&auth.tenant_id, &id).await?.ok_or_else(not_found)?;
    Ok((StatusCode::ACCEPTED, axum::Json(view.into())))
}
