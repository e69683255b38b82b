//! The tenant's deployed plugins: `GET /v1/plugins` and
//! `GET /v1/plugins/{name}/logs`.

use super::auth::AuthTenant;
use super::error::ApiError;
use crate::app::App;
use crate::clock::to_rfc3339;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize)]
pub struct PluginJson {
    name: String,
    version: String,
    status: String,
    keywords: Vec<String>,
    catch_all: bool,
    events: Vec<String>,
}

pub async fn list(State(app): State<Arc<App>>, auth: AuthTenant) -> axum::Json<serde_json::Value> {
    let snapshot = app.directory.snapshot();
    let mut plugins: Vec<PluginJson> = snapshot
        .plugins
        .values()
        .filter(|p| p.row.tenant_id == auth.tenant_id)
        .map(|p| PluginJson {
            name: p.row.name.clone(),
            version: p.row.version.clone(),
            status: p.row.status.clone(),
            keywords: p.keywords.clone(),
            catch_all: p.catch_all,
            events: p.events.clone(),
        })
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    axum::Json(serde_json::json!({ "data": plugins }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
struct LogJson {
    event_id: String,
    level: String,
    message: String,
    at: String,
}

pub async fn logs(
    State(app): State<Arc<App>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let snapshot = app.directory.snapshot();
    let plugin_id = snapshot
        .plugin_names
        .get(&(auth.tenant_id.clone(), name.clone()))
        .ok_or_else(|| ApiError::not_found("PLUGIN_NOT_FOUND", format!("no plugin named {name:?}")))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = app.db.plugin_logs(&auth.tenant_id, plugin_id, limit).await?;
    let data: Vec<LogJson> = rows
        .into_iter()
        .map(|r| LogJson { event_id: r.event_id, level: r.level, message: r.message, at: to_rfc3339(r.at) })
        .collect();
    Ok(axum::Json(serde_json::json!({ "data": data })))
}
