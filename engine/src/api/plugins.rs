//! Reading a tenant's plugins: `GET /v1/plugins`, `GET /v1/plugins/{name}`
//! (versions, status, triggers), its log lines and invocation records.
//! Deploying and switching versions is in `plugin_lifecycle`.

use super::auth::AuthTenant;
use super::error::{ApiError, ErrorBody};
use super::json::Query;
use crate::api::Context;
use crate::clock::to_rfc3339;
use crate::deploy::{self, LifecycleError};
use crate::directory::PluginEntry;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct PluginJson {
    name: String,
    version: String,
    /// `active`, `disabled` (by the tenant) or `suspended` (after repeated failures).
    status: String,
    /// Why the plugin is disabled or suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    keywords: Vec<String>,
    catch_all: bool,
    events: Vec<String>,
    cron: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
}

impl PluginJson {
    fn of(p: &PluginEntry) -> Self {
        let manifest = crate::manifest::stored(&p.row.manifest_json);
        PluginJson {
            name: p.row.name.clone(),
            version: p.row.version.clone(),
            status: p.row.status.clone(),
            status_reason: p.row.status_reason.clone(),
            keywords: p.keywords.clone(),
            catch_all: p.catch_all,
            events: p.events.clone(),
            cron: manifest.triggers.cron,
            timezone: manifest.triggers.timezone,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    data: Vec<PluginJson>,
}

/// The tenant's deployed plugins and their triggers.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, body = PluginList)), security(("api_key" = [])))]
pub async fn list(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> axum::Json<PluginList> {
    let snapshot = ctx.engine.directory.snapshot();
    let mut plugins: Vec<PluginJson> =
        snapshot.plugins.values().filter(|p| p.row.tenant_id == auth.tenant_id).map(|p| PluginJson::of(p)).collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    axum::Json(PluginList { data: plugins })
}

#[derive(Serialize, ToSchema)]
pub struct VersionJson {
    version: String,
    deployed_at: String,
    /// SHA-256 of the component.
    component_sha256: String,
    active: bool,
    /// Whether it is the plugin's canary.
    canary: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PluginDetail {
    #[serde(flatten)]
    plugin: PluginJson,
    /// Granted capabilities.
    capabilities: Vec<String>,
    /// Hosts the `http` capability may call.
    http_allow: Vec<String>,
    /// Every deployed version, oldest first.
    versions: Vec<VersionJson>,
    /// The active version's config (what the `config` capability hands the plugin).
    #[schema(value_type = Object)]
    config: serde_json::Value,
    /// The JSON Schema its config must satisfy, when the manifest has one
    /// (`PUT /v1/plugins/{name}/config` checks against it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    config_schema: Option<serde_json::Value>,
    /// The canary taking part of the events, with both versions' figures
    /// since it started; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    canary: Option<crate::deploy::canary::CanaryView>,
}

pub(super) fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::NoSuchPlugin(_) => ApiError::not_found("PLUGIN_NOT_FOUND", e.to_string()),
        LifecycleError::NoSuchVersion { .. } => {
            ApiError::not_found("VERSION_NOT_FOUND", e.to_string()).with_field("version")
        }
        LifecycleError::NothingToRollBack(_) => ApiError::conflict("NO_EARLIER_VERSION", e.to_string()),
        LifecycleError::NoCanary(_) => ApiError::conflict("NO_CANARY", e.to_string()),
        LifecycleError::Store(e) => ApiError::internal(e),
    }
}

/// The tenant's plugin `name`, from the directory.
pub(super) fn entry(ctx: &Context, tenant_id: &str, name: &str) -> Result<Arc<PluginEntry>, ApiError> {
    let snapshot = ctx.engine.directory.snapshot();
    snapshot
        .plugin_names
        .get(&(tenant_id.to_string(), name.to_string()))
        .and_then(|id| snapshot.plugins.get(id))
        .cloned()
        .ok_or_else(|| ApiError::not_found("PLUGIN_NOT_FOUND", format!("no plugin named {name:?}")))
}

pub(super) async fn detail(ctx: &Context, tenant_id: &str, name: &str) -> Result<PluginDetail, ApiError> {
    let p = entry(ctx, tenant_id, name)?;
    let history = deploy::history(ctx.engine.db.as_ref(), tenant_id, name).await.map_err(lifecycle_error)?;
    let manifest = crate::manifest::stored(&p.row.manifest_json);
    let canary = match &p.canary {
        Some(c) => Some(crate::deploy::canary::view(&ctx.engine, &p.row.version_id, c).await?),
        None => None,
    };
    let canary_version = p.canary.as_ref().map(|c| c.row.version_id.clone());
    Ok(PluginDetail {
        canary,
        plugin: PluginJson::of(&p),
        capabilities: manifest.capabilities.iter().map(|c| c.name().to_string()).collect(),
        http_allow: manifest.http.map(|h| h.allow).unwrap_or_default(),
        config: serde_json::from_str(&p.row.config_json).unwrap_or_else(|_| serde_json::json!({})),
        config_schema: manifest.config_schema,
        versions: history
            .into_iter()
            .map(|v| VersionJson {
                active: v.version_id == p.row.version_id,
                canary: canary_version.as_ref() == Some(&v.version_id),
                version: v.version,
                deployed_at: to_rfc3339(v.created_at),
                component_sha256: v.component_hash,
            })
            .collect(),
    })
}

/// One plugin: status (and why it is suspended), triggers, capabilities, versions.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// At most this many lines (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only lines after this id, oldest first (for following the log);
    /// without it, the newest lines, newest first.
    after: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LogJson {
    id: i64,
    event_id: String,
    level: String,
    message: String,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogList {
    data: Vec<LogJson>,
}

/// A plugin's log lines.
#[utoipa::path(get, path = "/v1/plugins/{name}/logs", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), LogsQuery),
    responses((status = 200, body = LogList), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn logs(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::Json<LogList>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let rows = ctx.engine.db.plugin_logs(&auth.tenant_id, &plugin.row.plugin_id, limit, q.after).await?;
    let data: Vec<LogJson> = rows
        .into_iter()
        .map(|r| LogJson { id: r.id, event_id: r.event_id, level: r.level, message: r.message, at: to_rfc3339(r.at) })
        .collect();
    Ok(axum::Json(LogList { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvocationsQuery {
    /// At most this many records (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Records older than this id (the previous page's `next_before`).
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct InvocationJson {
    id: i64,
    event_id: String,
    /// The plugin version that ran (empty when it did not run).
    version: String,
    /// `inbound`, `event`, `timer` or `delivery`.
    trigger: String,
    started_at: String,
    duration_ms: f64,
    fuel_used: i64,
    memory_peak_bytes: i64,
    /// `ok`, `error`, `trap`, `fuel_exhausted`, `timeout`,
    /// `memory_exceeded`, `not_run`...
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InvocationList {
    data: Vec<InvocationJson>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// A plugin's invocation records, newest first: trigger, duration, fuel,
/// memory peak, outcome and error. Kept for `limits.plugin_records_retention_s`.
#[utoipa::path(get, path = "/v1/plugins/{name}/invocations", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), InvocationsQuery),
    responses((status = 200, body = InvocationList), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn invocations(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
    Query(q): Query<InvocationsQuery>,
) -> Result<axum::Json<InvocationList>, ApiError> {
    let plugin = entry(&ctx, &auth.tenant_id, &name)?;
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let history = deploy::history(ctx.engine.db.as_ref(), &auth.tenant_id, &name).await.map_err(lifecycle_error)?;
    let version_of =
        |id: &str| history.iter().find(|v| v.version_id == id).map(|v| v.version.clone()).unwrap_or_default();
    let rows = ctx.engine.db.invocations(&auth.tenant_id, &plugin.row.plugin_id, limit, q.before).await?;
    let next_before = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id)).flatten();
    let data = rows
        .into_iter()
        .map(|r| InvocationJson {
            id: r.id,
            version: version_of(&r.version_id),
            event_id: r.event_id,
            trigger: r.trigger,
            started_at: to_rfc3339(r.started_at),
            duration_ms: r.duration_us as f64 / 1000.0,
            fuel_used: r.fuel_used,
            memory_peak_bytes: r.memory_peak,
            outcome: r.outcome,
            error: r.error,
        })
        .collect();
    Ok(axum::Json(InvocationList { data, next_before }))
}
