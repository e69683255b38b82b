//! Deploying plugins: the manifest, validation, and the demo tenant.

pub mod demo;
pub mod manifest;

use crate::clock::Clock;
use crate::runtime::{Grants, Runtime, RuntimeError};
use crate::store::{Database, DeployedVersion, NewPluginVersion, StoreError};
pub use manifest::{Manifest, ManifestError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] RuntimeError),
    #[error("version {0} of this plugin is already deployed; bump the version")]
    VersionExists(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DeployError {
    fn from(e: StoreError) -> Self {
        DeployError::Store(e)
    }
}

/// Validates `wasm` against `manifest` and records it as the plugin's new
/// active version. The caller reloads the directory.
pub async fn deploy(
    db: &dyn Database,
    runtime: &Runtime,
    clock: &Clock,
    tenant_id: &str,
    manifest: &Manifest,
    wasm: &[u8],
) -> Result<DeployedVersion, DeployError> {
    manifest.validate()?;
    let grants = Grants::from_capabilities(&manifest.capabilities);
    let hash = runtime.validate(wasm, grants).await?;
    db.put_component(&hash, wasm).await?;
    let version = NewPluginVersion {
        tenant_id: tenant_id.to_string(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        component_hash: hash,
        manifest_json: manifest.to_json(),
        config_json: manifest.config_json(),
        routes: manifest.routes(),
        created_at: clock.now_ms(),
    };
    db.deploy_plugin_version(&version).await.map_err(|e| match e {
        StoreError::Conflict(_) => DeployError::VersionExists(manifest.version.clone()),
        e => DeployError::Store(e),
    })
}
