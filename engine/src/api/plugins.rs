//! The tenant's deployed plugins: `GET /v1/plugins` and
//! `GET /v1/plugins/{name}/logs`.

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use crate::app::App;
use crate::clock::to_rfc3339;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct PluginJson {
    name: String,
    version: String,
    status: String,
    keywords: Vec<String>,
    catch_all: bool,
    events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    data: Vec<PluginJson>,
}

/// The tenant's deployed plugins and their triggers.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, body = PluginList)), security(("api_key" = [])))]
pub async fn list(State(app): State<Arc<App>>, auth: AuthTenant) -> axum::Json<PluginList> {
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
    axum::Json(PluginList { data: plugins })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Newest lines first, at most this many (default 100, max 1000).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct LogJson {
    event_id: String,
    level: String,
    message: String,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogList {
    data: Vec<LogJson>,
}

/// A plugin's recent log lines.
#[utoipa::path(get, path = "/v1/plugins/{name}/logs", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), LogsQuery),
    responses((status = 200, body = LogList), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn logs(
    State(app): State<Arc<App>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::Json<LogList>, ApiError> {
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
    Ok(axum::Json(LogList { data }))
}
