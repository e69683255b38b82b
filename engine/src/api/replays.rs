//! Replays: `POST /v1/plugins/{name}/replays` re-runs recorded invocations
//! against another version in the background (nothing is sent or
//! written); `GET /v1/plugins/{name}/replays[/{id}]` shows their progress
//! and reports.

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::plugins::{entry, lifecycle_error};
use crate::api::Context;
use crate::deploy::replay::{ReplayError, ReplayRequest, Report, STALE_MS};
use crate::store::{RecordingSelection, ReplayRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Most event ids one replay may name.
const MAX_EVENTS: usize = 1_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReplay {
    /// The version to run the recorded invocations against (deployed,
    /// staged or earlier).
    #[schema(min_length = 1, max_length = 32)]
    version: String,
    /// Replay the invocations of the last while: `90m`, `24h`, `7d`
    /// (default `24h` when `events` is not given either).
    #[schema(max_length = 16)]
    since: Option<String>,
    /// Or replay the invocations of these events.
    #[schema(max_items = 1000)]
    events: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayView {
    id: String,
    plugin: String,
    version: String,
    /// `running`, `done`, `failed`, or `interrupted` (its node stopped
    /// before it finished: start it again).
    status: String,
    /// Recorded invocations it runs, and how many have run.
    total: i64,
    done: i64,
    created_at: String,
    finished_at: Option<String>,
    error: Option<String>,
    /// What it found, once `done`.
    #[schema(value_type = Option<Report>)]
    report: Option<serde_json::Value>,
}

fn view(row: ReplayRow, plugin: &str, now: i64) -> ReplayView {
    let status =
        if row.status == "running" && now - row.updated_at > STALE_MS { "interrupted".to_string() } else { row.status };
    ReplayView {
        id: row.id,
        plugin: plugin.to_string(),
        version: row.version,
        status,
        total: row.total,
        done: row.done,
        created_at: crate::clock::to_rfc3339(row.created_at),
        finished_at: row.finished_at.map(crate::clock::to_rfc3339),
        error: row.error,
        report: row.report.and_then(|r| serde_json::from_str(&r).ok()),
    }
}

/// `90m`, `24h`, `7d`, `30s` as milliseconds.
pub(super) fn duration_ms(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

fn replay_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::Lifecycle(e) => lifecycle_error(e),
        ReplayError::NothingRecorded => ApiError::conflict("NOTHING_RECORDED", e.to_string()),
        ReplayError::TooMany { .. } => ApiError::bad_request("TOO_MANY_INVOCATIONS", e.to_string()).with_field("since"),
        ReplayError::Running(_) => ApiError::conflict("REPLAY_RUNNING", e.to_string()),
        ReplayError::Load(_) => ApiError::internal(e),
    }
}

/// Replay recorded invocations against a version: each runs again in the
/// sandbox with what it saw when recorded served back (kv values, clock,
/// HTTP answers, random seed), and nothing is sent, written or fetched.
/// Runs in the background at the lowest CPU priority; read its progress
/// and report at `GET .../replays/{id}`.
#[utoipa::path(post, path = "/v1/plugins/{name}/replays", tag = "plugins", request_body = NewReplay,
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 202, body = ReplayView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "NOTHING_RECORDED, REPLAY_RUNNING", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn start(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
    Json(body): Json<NewReplay>,
) -> Result<(StatusCode, axum::Json<ReplayView>), ApiError> {
    entry(&ctx, &auth.tenant_id, &name)?;
    let now = ctx.engine.clock.now_ms();
    let selection = match (body.since, body.events) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("INVALID_FIELD", "give since or events, not both").with_field("events"));
        }
        (_, Some(events)) => {
            if events.is_empty() || events.len() > MAX_EVENTS {
                return Err(
                    ApiError::bad_request("INVALID_FIELD", format!("1 to {MAX_EVENTS} event ids")).with_field("events")
                );
            }
            if let Some(i) = events.iter().position(|e| e.is_empty() || e.len() > 64) {
                return Err(ApiError::bad_request("INVALID_FIELD", "an event id is 1 to 64 characters")
                    .with_field(format!("events[{i}]")));
            }
            RecordingSelection { since: None, event_ids: events }
        }
        (since, None) => {
            let since = since.as_deref().unwrap_or("24h");
            let ms = duration_ms(since).ok_or_else(|| {
                ApiError::bad_request("INVALID_FIELD", "since is a number and s, m, h or d: 90m, 24h, 7d")
                    .with_field("since")
            })?;
            RecordingSelection { since: Some(now.saturating_sub(ms)), event_ids: vec![] }
        }
    };
    let request = ReplayRequest { tenant_id: &auth.tenant_id, plugin: &name, version: &body.version, selection };
    let row = ctx.control.start_replay(request).await.map_err(replay_error)?;
    ctx.control
        .audit(&auth.actor(), "plugin.replay", &name, serde_json::json!({ "replay": row.id, "version": row.version }))
        .await;
    Ok((StatusCode::ACCEPTED, axum::Json(view(row, &name, now))))
}

#[derive(Serialize, ToSchema)]
pub struct ReplayList {
    /// The plugin's latest replays, newest first (reports left out).
    replays: Vec<ReplayView>,
}

/// A plugin's latest replays.
#[utoipa::path(get, path = "/v1/plugins/{name}/replays", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = ReplayList), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<ReplayList>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let now = ctx.engine.clock.now_ms();
    let rows = ctx.engine.db.replays(&auth.tenant_id, &plugin.row.plugin_id, 20).await?;
    let replays = rows
        .into_iter()
        .map(|mut r| {
            r.report = None;
            view(r, &name, now)
        })
        .collect();
    Ok(axum::Json(ReplayList { replays }))
}

/// One replay: its progress, and its report once done.
#[utoipa::path(get, path = "/v1/plugins/{name}/replays/{id}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("id" = String, Path, description = "Replay id")),
    responses((status = 200, body = ReplayView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<ReplayView>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let row = ctx
        .engine
        .db
        .replay(&auth.tenant_id, &id)
        .await?
        .filter(|r| r.plugin_id == plugin.row.plugin_id)
        .ok_or_else(|| ApiError::not_found("REPLAY_NOT_FOUND", format!("no replay {id:?} of {name:?}")))?;
    Ok(axum::Json(view(row, &name, ctx.engine.clock.now_ms())))
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("24h"), Some(86_400_000));
        assert_eq!(duration_ms("90m"), Some(5_400_000));
        assert_eq!(duration_ms("7d"), Some(604_800_000));
        for bad in ["", "h", "0h", "-1h", "24", "24x", "99999999999999999d", "1é", "é"] {
            assert_eq!(duration_ms(bad), None, "{bad}");
        }
    }
}
