//! Looking into a plugin's state, read-only: `GET /v1/plugins/{name}/kv`
//! (keys by prefix, with their values), `GET /v1/plugins/{name}/kv/{key}`
//! and `GET /v1/plugins/{name}/timers` (pending, soonest first). Only
//! invocations write this state; nothing here changes it.

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use super::json::Query;
use super::plugins::entry;
use crate::api::Context;
use crate::clock::to_rfc3339;
use crate::store::KvRow;
use axum::extract::{Path, State};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Longest key or prefix accepted (a plugin's keys are shorter).
const KEY_INPUT_BYTES: usize = 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KvQuery {
    /// Only keys that start with this.
    #[param(max_length = 1024)]
    prefix: Option<String>,
    /// Keys after this one (the previous page's `next_after`).
    #[param(max_length = 1024)]
    after: Option<String>,
    /// At most this many keys (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct KvJson {
    key: String,
    /// The value as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// The value in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    size_bytes: usize,
    /// Bumped by every write (what compare-and-swap compares).
    version: i64,
    updated_at: String,
}

impl From<KvRow> for KvJson {
    fn from(r: KvRow) -> Self {
        let size_bytes = r.value.len();
        let (value, value_base64) = match String::from_utf8(r.value) {
            Ok(text) => (Some(text), None),
            Err(e) => (None, Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))),
        };
        KvJson { key: r.key, value, value_base64, size_bytes, version: r.version, updated_at: to_rfc3339(r.updated_at) }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KvList {
    data: Vec<KvJson>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

fn bounded(value: &Option<String>, field: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > KEY_INPUT_BYTES => {
            Err(ApiError::bad_request("INVALID_PARAMETER", format!("{field} is at most {KEY_INPUT_BYTES} bytes"))
                .with_field(field.to_string()))
        }
        _ => Ok(()),
    }
}

/// A plugin's kv entries, in key order.
#[utoipa::path(get, path = "/v1/plugins/{name}/kv", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), KvQuery),
    responses((status = 200, body = KvList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<KvQuery>,
) -> Result<axum::Json<KvList>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    bounded(&q.prefix, "prefix")?;
    bounded(&q.after, "after")?;
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let rows = ctx
        .engine
        .db
        .kv_entries(
            &auth.tenant_id,
            &plugin.row.plugin_id,
            q.prefix.as_deref().unwrap_or(""),
            q.after.as_deref(),
            limit,
        )
        .await?;
    let next_after = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.key.clone())).flatten();
    Ok(axum::Json(KvList { data: rows.into_iter().map(KvJson::from).collect(), next_after }))
}

/// One kv entry of a plugin.
#[utoipa::path(get, path = "/v1/plugins/{name}/kv/{key}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("key" = String, Path, description = "The key (percent-encoded)")),
    responses((status = 200, body = KvJson), (status = 404, description = "PLUGIN_NOT_FOUND, KEY_NOT_FOUND", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path((name, key)): Path<(String, String)>,
) -> Result<axum::Json<KvJson>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let not_found = || ApiError::not_found("KEY_NOT_FOUND", format!("plugin {name:?} has no key {key:?}"));
    if key.len() > KEY_INPUT_BYTES {
        return Err(not_found());
    }
    let row = ctx
        .engine
        .db
        .kv_entries(&auth.tenant_id, &plugin.row.plugin_id, &key, None, 1)
        .await?
        .into_iter()
        .find(|r| r.key == key)
        .ok_or_else(not_found)?;
    Ok(axum::Json(row.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimersQuery {
    /// Timers after this one (the previous page's `next_after`).
    #[param(max_length = 1100)]
    after: Option<String>,
    /// At most this many timers (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct TimerJson {
    key: String,
    due_at: String,
    /// What the plugin's `on-timer` will receive.
    payload: String,
    /// `test` when a test key's invocation set it (it fires in the sandbox).
    mode: String,
    set_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TimerList {
    data: Vec<TimerJson>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

/// A plugin's pending timers, soonest first.
#[utoipa::path(get, path = "/v1/plugins/{name}/timers", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), TimersQuery),
    responses((status = 200, body = TimerList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn timers(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<TimersQuery>,
) -> Result<axum::Json<TimerList>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    // The cursor is `due-millis:key`.
    let after = match q.after.as_deref() {
        None => None,
        Some(cursor) => {
            let parsed = (cursor.len() <= KEY_INPUT_BYTES + 32)
                .then(|| cursor.split_once(':'))
                .flatten()
                .and_then(|(due, key)| Some((due.parse::<i64>().ok()?, key)));
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request("INVALID_PARAMETER", "after is the next_after of a previous page")
                    .with_field("after")
            })?)
        }
    };
    let rows = ctx.engine.db.pending_timers(&auth.tenant_id, &plugin.row.plugin_id, after, limit).await?;
    let next_after =
        (rows.len() == limit as usize).then(|| rows.last().map(|r| format!("{}:{}", r.due_at, r.key))).flatten();
    let data = rows
        .into_iter()
        .map(|r| TimerJson {
            key: r.key,
            due_at: to_rfc3339(r.due_at),
            payload: r.payload,
            mode: r.mode,
            set_at: to_rfc3339(r.created_at),
        })
        .collect();
    Ok(axum::Json(TimerList { data, next_after }))
}
