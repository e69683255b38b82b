//! Shipping plugins: `POST /v1/plugins` (multipart: `manifest` TOML and
//! `component` WebAssembly), `POST /v1/plugins/{name}/rollback`,
//! `/disable` and `/enable`. Every change is written to the audit log.

use super::auth::LiveTenant;
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::plugins::{PluginDetail, detail, lifecycle_error};
use crate::api::Context;
use crate::deploy::DeployError;
use crate::manifest::{Manifest, ManifestError};
use crate::runtime::RuntimeError;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The multipart form of a deploy.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the form for the OpenAPI document
pub struct DeployForm {
    /// The manifest (`plugin.toml`), as text.
    manifest: String,
    /// The component (`.wasm`, built for `wasm32-wasip2`).
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// `false` stores the version beside the active one without
    /// activating it (staged: for a replay, a canary or a later switch).
    /// Default `true`.
    activate: Option<bool>,
    /// Deploy as a canary taking this percent (1–99) of the plugin's
    /// customers; the active version keeps the rest until the canary is
    /// promoted or rolled back (by itself, when it does worse).
    #[schema(minimum = 1, maximum = 99)]
    canary: Option<u8>,
    /// Promote the canary by itself this long after it starts, if it is
    /// healthy then: `30m`, `24h` (default: wait for `canary/promote`).
    canary_promote_after: Option<String>,
    /// Invocations of each version before the canary is judged (default 20).
    #[schema(minimum = 1, maximum = 100000)]
    canary_min_invocations: Option<i64>,
    /// Percentage points of failures the canary may have above the active
    /// version before it is rolled back (default 5).
    #[schema(minimum = 0, maximum = 100)]
    canary_max_failure_increase: Option<f64>,
    /// How many times the active version's mean duration the canary may
    /// take before it is rolled back (default 3; only when it is also at
    /// least 20 ms more).
    #[schema(minimum = 1, maximum = 1000)]
    canary_max_latency_ratio: Option<f64>,
}

/// What a deploy form asks for besides the manifest and component.
#[derive(Default)]
struct DeployOptions {
    stage: bool,
    canary: Option<crate::store::CanaryPlan>,
}

const OPTION_FIELDS: [&str; 6] = [
    "activate",
    "canary",
    "canary_promote_after",
    "canary_min_invocations",
    "canary_max_failure_increase",
    "canary_max_latency_ratio",
];

fn deploy_options(fields: &std::collections::HashMap<String, String>, now: i64) -> Result<DeployOptions, ApiError> {
    use crate::deploy::canary as defaults;
    let bad = |field: &str, message: &str| ApiError::bad_request("INVALID_FIELD", message).with_field(field);
    fn number<T: std::str::FromStr + PartialOrd>(
        fields: &std::collections::HashMap<String, String>,
        name: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<Option<T>, ApiError> {
        let Some(text) = fields.get(name) else { return Ok(None) };
        match text.trim().parse::<T>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::bad_request("INVALID_FIELD", format!("{name} is out of range or not a number"))
                .with_field(name)),
        }
    }
    let stage = match fields.get("activate").map(|s| s.trim()) {
        None | Some("true") => false,
        Some("false") => true,
        Some(_) => return Err(bad("activate", "activate is true or false")),
    };
    let percent = number::<u8>(fields, "canary", 1..=99)?;
    let Some(percent) = percent else {
        if let Some(name) = OPTION_FIELDS[2..].iter().find(|f| fields.contains_key(**f)) {
            return Err(bad(name, "the canary_ fields need canary"));
        }
        return Ok(DeployOptions { stage, canary: None });
    };
    if stage {
        return Err(bad("activate", "a canary is not activated anyway; leave activate out"));
    }
    let promote_after_ms = match fields.get("canary_promote_after") {
        None => None,
        Some(text) => Some(
            super::replays::duration_ms(text.trim())
                .ok_or_else(|| bad("canary_promote_after", "a number and s, m, h or d: 30m, 24h"))?,
        ),
    };
    let plan = crate::store::CanaryPlan {
        percent,
        started_at: now,
        min_invocations: number(fields, "canary_min_invocations", 1..=100_000)?
            .unwrap_or(defaults::DEFAULT_MIN_INVOCATIONS),
        max_failure_increase: number(fields, "canary_max_failure_increase", 0.0..=100.0)?
            .map_or(defaults::DEFAULT_MAX_FAILURE_INCREASE, |points| points / 100.0),
        max_latency_ratio: number(fields, "canary_max_latency_ratio", 1.0..=1000.0)?
            .unwrap_or(defaults::DEFAULT_MAX_LATENCY_RATIO),
        promote_after_ms,
    };
    Ok(DeployOptions { stage: false, canary: Some(plan) })
}

fn deploy_error(e: DeployError) -> ApiError {
    let bad = |code, message: String, field: &str| ApiError::bad_request(code, message).with_field(field);
    match e {
        DeployError::Manifest(ManifestError::Field { field, message }) => {
            bad("INVALID_MANIFEST", format!("{field}: {message}"), &format!("manifest.{field}"))
        }
        DeployError::Manifest(e) => bad("INVALID_MANIFEST", e.to_string(), "manifest"),
        DeployError::Component(e) => {
            let message = e.to_string();
            match e {
                RuntimeError::NotAComponent(_) => bad("NOT_A_COMPONENT", message, "component"),
                RuntimeError::Compile(_) | RuntimeError::Invalid(_) => bad("INVALID_COMPONENT", message, "component"),
                RuntimeError::TooComplex(_) => bad("COMPONENT_TOO_COMPLEX", message, "component"),
                RuntimeError::CompileTimeout(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "COMPILE_TIMEOUT", message).with_field("component")
                }
                RuntimeError::WrongWitVersion(_) => bad("WRONG_WIT_VERSION", message, "component"),
                RuntimeError::WrongExports(_) => bad("WRONG_EXPORTS", message, "component"),
                RuntimeError::UnknownImport(_) => bad("UNKNOWN_IMPORT", message, "component"),
                RuntimeError::MissingComponent(_) | RuntimeError::Setup(_) | RuntimeError::Store(_) => {
                    ApiError::internal(message)
                }
            }
        }
        DeployError::VersionExists { .. } => {
            ApiError::conflict("VERSION_EXISTS", e.to_string()).with_field("manifest.version")
        }
        DeployError::NothingToStageBeside => ApiError::conflict("NOTHING_TO_STAGE_BESIDE", e.to_string()),
        DeployError::Store(e) => ApiError::internal(e),
    }
}

/// Reads the `manifest` and `component` parts; the manifest is refused
/// once it passes `limits.manifest_bytes`, before it is parsed.
async fn read_form(
    mut form: Multipart,
    manifest_limit: usize,
    now: i64,
) -> Result<(Manifest, Vec<u8>, DeployOptions), ApiError> {
    let mut manifest = None;
    let mut component = None;
    let mut options = std::collections::HashMap::new();
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the upload is too large")
        } else {
            ApiError::bad_request("INVALID_BODY", e.body_text())
        }
    };
    while let Some(field) = form.next_field().await.map_err(too_large)? {
        match field.name() {
            Some("manifest") => {
                let mut field = field;
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(too_large)? {
                    if bytes.len() + chunk.len() > manifest_limit {
                        return Err(ApiError::bad_request(
                            "INVALID_MANIFEST",
                            format!("the manifest is over {manifest_limit} bytes (limits.manifest_bytes)"),
                        )
                        .with_field("manifest"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request("INVALID_MANIFEST", "the manifest is not UTF-8").with_field("manifest")
                })?;
                manifest = Some(Manifest::from_toml(&text).map_err(|e| deploy_error(DeployError::Manifest(e)))?);
            }
            Some("component") => component = Some(field.bytes().await.map_err(too_large)?.to_vec()),
            Some(name) if OPTION_FIELDS.contains(&name) => {
                let name = name.to_string();
                let mut field = field;
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(too_large)? {
                    if bytes.len() + chunk.len() > 64 {
                        return Err(
                            ApiError::bad_request("INVALID_FIELD", format!("{name} is too long")).with_field(name)
                        );
                    }
                    bytes.extend_from_slice(&chunk);
                }
                options.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
            Some(other) => {
                return Err(ApiError::bad_request("INVALID_FIELD", format!("unexpected form field {other:?}"))
                    .with_field(other.to_string()));
            }
            None => return Err(ApiError::bad_request("INVALID_BODY", "a form field has no name")),
        }
    }
    let manifest = manifest.ok_or_else(|| {
        ApiError::bad_request("INVALID_FIELD", "the manifest part is required").with_field("manifest")
    })?;
    let component = component.ok_or_else(|| {
        ApiError::bad_request("INVALID_FIELD", "the component part is required").with_field("component")
    })?;
    Ok((manifest, component, deploy_options(&options, now)?))
}

/// The answer to a deploy: the plugin, and what its manifest leaves out.
#[derive(Serialize, ToSchema)]
pub struct Deployed {
    #[serde(flatten)]
    plugin: PluginDetail,
    /// Capabilities the component imports that the manifest does not grant
    /// (toolchains for JavaScript and Python import the whole world). The
    /// plugin runs; each call to one of them returns `access-denied`.
    ungranted_imports: Vec<String>,
    /// True when this exact version (component, manifest and config) was
    /// already the active one: nothing changed (answered 200, not 201).
    unchanged: bool,
}

/// Deploy a plugin version: validated (a component of our WIT world,
/// within the limits), compiled once, stored, and made active at once
/// (or, with `activate=false`, only stored: staged). Deploying again the
/// active version, byte for byte, changes nothing.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", request_body(content = DeployForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Deployed), (status = 200, description = "Already deployed and active: nothing changed", body = Deployed),
        (status = 400, body = ErrorBody), (status = 409, description = "VERSION_EXISTS, NOTHING_TO_STAGE_BESIDE", body = ErrorBody),
        (status = 413, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn deploy(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    form: Multipart,
) -> Result<(StatusCode, axum::Json<Deployed>), ApiError> {
    let now = ctx.engine.clock.now_ms();
    let (manifest, wasm, options) = read_form(form, ctx.engine.limits.manifest_bytes, now).await?;
    let deployed = match (&options.canary, options.stage) {
        (Some(plan), _) => ctx.control.deploy_canary(&auth.tenant_id, &manifest, &wasm, plan).await,
        (None, true) => ctx.control.stage_plugin(&auth.tenant_id, &manifest, &wasm).await,
        (None, false) => ctx.control.deploy_plugin(&auth.tenant_id, &manifest, &wasm).await,
    }
    .map_err(deploy_error)?;
    let action = match (&options.canary, options.stage) {
        (Some(_), _) => "plugin.canary",
        (None, true) => "plugin.stage",
        (None, false) => "plugin.deploy",
    };
    let ungranted_imports = deployed.ungranted_imports.iter().map(|s| s.to_string()).collect();
    if deployed.unchanged && options.canary.is_none() {
        let plugin = detail(&ctx, &auth.tenant_id, &manifest.name).await?;
        return Ok((StatusCode::OK, axum::Json(Deployed { plugin, ungranted_imports, unchanged: true })));
    }
    ctx.control
        .audit(
            &auth.actor(),
            action,
            &manifest.name,
            serde_json::json!({ "version": manifest.version, "version_id": deployed.version_id,
            "component_sha256": crate::runtime::component_hash(&wasm), "canary": options.canary }),
        )
        .await;
    let plugin = detail(&ctx, &auth.tenant_id, &manifest.name).await?;
    Ok((StatusCode::CREATED, axum::Json(Deployed { plugin, ungranted_imports, unchanged: false })))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to switch to (default: the one before the active one).
    #[schema(min_length = 1, max_length = 32)]
    version: Option<String>,
}

/// Switch back to an earlier version; the next event runs it.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins", request_body = Rollback,
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn rollback(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
    body: bytes::Bytes,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    // The body is optional: none rolls back one version.
    let body: Rollback =
        if body.iter().all(u8::is_ascii_whitespace) { Rollback::default() } else { super::json::parse(&body)? };
    let row =
        ctx.control.rollback_plugin(&auth.tenant_id, &name, body.version.as_deref()).await.map_err(lifecycle_error)?;
    ctx.control.audit(&auth.actor(), "plugin.rollback", &name, serde_json::json!({ "version": row.version })).await;
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// The new config, checked against the manifest's `config_schema`.
    #[schema(value_type = Object)]
    config: serde_json::Value,
    /// The new version's name (default: the active version's, with
    /// `+config.N` in place of any earlier such suffix).
    #[schema(min_length = 1, max_length = 32)]
    version: Option<String>,
}

/// The version a config change is deployed as: `base+config.N`, the first
/// N not taken.
fn config_version(active: &str, taken: &[String]) -> String {
    let base = active.split_once("+config.").map_or(active, |(base, _)| base);
    (1..).map(|n| format!("{base}+config.{n}")).find(|v| !taken.contains(v)).expect("some N is free")
}

/// Change a plugin's config: a new version with the active version's
/// component and manifest and this config, made active at once (roll back
/// to return to the previous config). The config must satisfy the
/// manifest's `config_schema`.
#[utoipa::path(put, path = "/v1/plugins/{name}/config", tag = "plugins", request_body = ConfigChange,
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 201, body = Deployed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put_config(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
    Json(body): Json<ConfigChange>,
) -> Result<(StatusCode, axum::Json<Deployed>), ApiError> {
    let active = super::plugins::entry(&ctx, &auth.tenant_id, &name)?;
    let mut manifest = crate::manifest::stored(&active.row.manifest_json);
    let taken: Vec<String> = crate::deploy::history(ctx.engine.db.as_ref(), &auth.tenant_id, &name)
        .await
        .map_err(lifecycle_error)?
        .into_iter()
        .map(|v| v.version)
        .collect();
    manifest.version = body.version.unwrap_or_else(|| config_version(&active.row.version, &taken));
    manifest.config = Some(body.config);
    let wasm = ctx
        .engine
        .db
        .get_component(&active.row.component_hash)
        .await?
        .ok_or_else(|| ApiError::internal("the active version's component is missing"))?;
    let deployed = ctx.control.deploy_plugin(&auth.tenant_id, &manifest, &wasm).await.map_err(|e| {
        let mut error = deploy_error(e);
        // The manifest is the stored one: only the config and version came from the caller.
        if let Some(field) = error.field.take() {
            error.field = Some(if field == "manifest.version" { "version" } else { "config" }.to_string());
        }
        error
    })?;
    if !deployed.unchanged {
        ctx.control
            .audit(
                &auth.actor(),
                "plugin.config",
                &name,
                serde_json::json!({ "version": manifest.version, "version_id": deployed.version_id }),
            )
            .await;
    }
    let ungranted_imports = deployed.ungranted_imports.iter().map(|s| s.to_string()).collect();
    let plugin = detail(&ctx, &auth.tenant_id, &name).await?;
    let status = if deployed.unchanged { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, axum::Json(Deployed { plugin, ungranted_imports, unchanged: deployed.unchanged })))
}

/// Make the plugin's canary its active version (the canary ends).
#[utoipa::path(post, path = "/v1/plugins/{name}/canary/promote", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody),
        (status = 409, description = "NO_CANARY", body = ErrorBody)), security(("api_key" = [])))]
pub async fn promote_canary(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    ctx.control.end_canary(&auth.tenant_id, &name, true, &auth.actor()).await.map_err(lifecycle_error)?;
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

/// Roll the plugin's canary back: every event runs the active version
/// again (those bound to the canary included).
#[utoipa::path(post, path = "/v1/plugins/{name}/canary/rollback", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody),
        (status = 409, description = "NO_CANARY", body = ErrorBody)), security(("api_key" = [])))]
pub async fn rollback_canary(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    ctx.control.end_canary(&auth.tenant_id, &name, false, &auth.actor()).await.map_err(lifecycle_error)?;
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

/// Stop routing events to a plugin (pending ones are dead-lettered).
#[utoipa::path(post, path = "/v1/plugins/{name}/disable", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn disable(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    ctx.control.set_plugin_enabled(&auth.tenant_id, &name, false).await.map_err(lifecycle_error)?;
    ctx.control.audit(&auth.actor(), "plugin.disable", &name, serde_json::json!({})).await;
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

/// Route events to a plugin again (also lifts a suspension).
#[utoipa::path(post, path = "/v1/plugins/{name}/enable", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn enable(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<PluginDetail>, ApiError> {
    ctx.control.set_plugin_enabled(&auth.tenant_id, &name, true).await.map_err(lifecycle_error)?;
    ctx.control.audit(&auth.actor(), "plugin.enable", &name, serde_json::json!({})).await;
    Ok(axum::Json(detail(&ctx, &auth.tenant_id, &name).await?))
}

#[cfg(test)]
mod tests {
    use super::config_version;

    #[test]
    fn a_config_change_is_named_after_the_version_it_changes() {
        assert_eq!(config_version("0.1.0", &[]), "0.1.0+config.1");
        assert_eq!(config_version("0.1.0+config.1", &["0.1.0+config.1".into()]), "0.1.0+config.2");
        let taken = ["0.1.0+config.1".to_string(), "0.1.0+config.2".to_string()];
        assert_eq!(config_version("0.1.0+config.1", &taken), "0.1.0+config.3");
    }
}
