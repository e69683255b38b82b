//! Business events for plugins: `POST /v1/events/{plugin}` with
//! `{"name": "order.shipped", "payload": {...}}`, and
//! `GET /v1/plugins/{name}/events/{id}` to follow one (pending, done, or
//! dead with its last error).

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::messages::EventJson;
use crate::api::Context;
use crate::ids;
use crate::store::{EventKind, NewEvent};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

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
