//! Deploying plugins: validation against the manifest, versions and
//! rollback, and changing them safely: replays of recorded invocations
//! against another version (`replay`), and canaries judged against the
//! active version (`canary`).

pub mod canary;
pub mod replay;

use crate::clock::Clock;
use crate::manifest::{Manifest, ManifestError};
use crate::runtime::{Grants, Runtime, RuntimeError};
use crate::store::{Database, DeployedVersion, NewPluginVersion, PluginVersionRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] RuntimeError),
    #[error("version {version} of this plugin is already deployed {how}")]
    VersionExists { version: String, how: &'static str },
    #[error("a version can be staged only beside an active one; deploy the first version")]
    NothingToStageBeside,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DeployError {
    fn from(e: StoreError) -> Self {
        DeployError::Store(e)
    }
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub plugin_id: String,
    pub version_id: String,
    /// The same version with the same component, manifest and config was
    /// already the active one: nothing changed.
    pub unchanged: bool,
    /// Capabilities the component imports that the manifest does not grant.
    pub ungranted_imports: Vec<&'static str>,
}

const DIFFERENT: &str = "with a different component, manifest or config; bump the version";
const INACTIVE: &str = "but is not the active version; roll back to it or bump the version";

/// Validates `wasm` against `manifest` and records it as the plugin's new
/// active version (`active_version_id`: the plugin's active version now, if
/// any), or, with `activate` false, only stores it (staged: for a replay
/// or a canary). Deploying again exactly what is active (or staging again
/// what is stored) changes nothing. The caller reloads the directory.
pub async fn deploy(
    db: &dyn Database,
    runtime: &Runtime,
    clock: &Clock,
    tenant_id: &str,
    manifest: &Manifest,
    wasm: &[u8],
    active_version_id: Option<&str>,
    activate: bool,
) -> Result<Deployment, DeployError> {
    manifest.validate()?;
    if !activate && active_version_id.is_none() {
        return Err(DeployError::NothingToStageBeside);
    }
    // Stored manifests are read again at every directory reload: bounded.
    let limit = runtime.limits().manifest_bytes;
    let size = manifest.to_json().len();
    if size > limit {
        return Err(DeployError::Manifest(ManifestError::Field {
            field: "config",
            message: format!("the manifest and its config are {size} bytes; the limit is {limit}"),
        }));
    }
    let grants = Grants::from_capabilities(&manifest.capabilities);
    let validated = runtime.validate(wasm, grants).await?;
    let version = NewPluginVersion {
        tenant_id: tenant_id.to_string(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        component_hash: validated.hash,
        manifest_json: manifest.to_json(),
        config_json: manifest.config_json(),
        routes: manifest.routes(),
        created_at: clock.now_ms(),
        activate,
    };
    let exists = |how| DeployError::VersionExists { version: manifest.version.clone(), how };
    let existing = db.plugin_versions(tenant_id, &manifest.name).await?;
    if let Some(same) = existing.iter().find(|v| v.version == manifest.version) {
        let identical = same.component_hash == version.component_hash
            && same.manifest_json == version.manifest_json
            && same.config_json == version.config_json;
        if !identical {
            return Err(exists(DIFFERENT));
        }
        if activate && (active_version_id != Some(same.version_id.as_str()) || same.status != "active") {
            return Err(exists(INACTIVE));
        }
        return Ok(Deployment {
            plugin_id: same.plugin_id.clone(),
            version_id: same.version_id.clone(),
            unchanged: true,
            ungranted_imports: validated.ungranted_imports,
        });
    }
    db.put_component(&version.component_hash, wasm).await?;
    let DeployedVersion { plugin_id, version_id } = db.deploy_plugin_version(&version).await.map_err(|e| match e {
        StoreError::Conflict(_) => exists(DIFFERENT),
        e => DeployError::Store(e),
    })?;
    Ok(Deployment { plugin_id, version_id, unchanged: false, ungranted_imports: validated.ungranted_imports })
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    #[error("plugin {plugin:?} has no version {version:?}")]
    NoSuchVersion { plugin: String, version: String },
    #[error("plugin {0:?} has no earlier version to roll back to")]
    NothingToRollBack(String),
    #[error("plugin {0:?} has no canary")]
    NoCanary(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every version of a tenant's plugin, oldest first (error if none).
async fn versions(db: &dyn Database, tenant_id: &str, name: &str) -> Result<Vec<PluginVersionRow>, LifecycleError> {
    let versions = db.plugin_versions(tenant_id, name).await?;
    if versions.is_empty() {
        return Err(LifecycleError::NoSuchPlugin(name.to_string()));
    }
    Ok(versions)
}

/// Makes `to` (a version string) the active version, or, without `to`, the
/// version deployed before the active one. The component is already
/// validated and cached, so the switch is instant. Returns the version now
/// active.
pub async fn rollback(
    db: &dyn Database,
    tenant_id: &str,
    name: &str,
    active_version_id: &str,
    to: Option<&str>,
) -> Result<PluginVersionRow, LifecycleError> {
    let versions = versions(db, tenant_id, name).await?;
    let target = match to {
        Some(v) => versions
            .iter()
            .find(|r| r.version == v)
            .ok_or_else(|| LifecycleError::NoSuchVersion { plugin: name.to_string(), version: v.to_string() })?,
        None => {
            let active = versions.iter().position(|r| r.version_id == active_version_id).unwrap_or(versions.len());
            active
                .checked_sub(1)
                .and_then(|i| versions.get(i))
                .ok_or_else(|| LifecycleError::NothingToRollBack(name.to_string()))?
        }
    };
    let routes = crate::manifest::routes_from_json(&target.manifest_json);
    db.activate_version(&target.plugin_id, &target.version_id, &routes).await?;
    Ok(target.clone())
}

/// Every version of a plugin, oldest first.
pub async fn history(db: &dyn Database, tenant_id: &str, name: &str) -> Result<Vec<PluginVersionRow>, LifecycleError> {
    versions(db, tenant_id, name).await
}
