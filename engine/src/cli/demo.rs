//! The demo tenant, created on a fresh data directory: number
//! `+15550000000` on the simulator, the plugins found under `plugins/`
//! deployed with their example configuration, and an API key saved to
//! `<data-dir>/demo-api-key`.

use crate::deploy::DeployError;
use crate::manifest::{Manifest, ManifestError};
use crate::app::{AdminError, App};
use crate::secrets::KeyMode;
use std::path::{Path, PathBuf};

pub const DEMO_NUMBER: &str = "+15550000000";
pub const DEMO_KEY_FILE: &str = "demo-api-key";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("no plugin manifests (*/plugin.toml) under {0}")]
    NoPlugins(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{manifest}: component {component} is missing; build the plugins first (make plugins)")]
    MissingComponent { manifest: String, component: String },
    #[error("plugin {name}: {error}")]
    Deploy { name: String, error: DeployError },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("cannot write {path}: {error}")]
    KeyFile { path: String, error: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub struct DemoTenant {
    pub tenant_id: String,
    pub api_key: String,
    pub key_file: PathBuf,
    pub plugins: Vec<String>,
}

/// Seeds the demo tenant if the database has no tenant yet.
pub async fn seed_if_empty(app: &App, plugins_dir: &Path) -> Result<Option<DemoTenant>, DemoError> {
    if app.db.count_tenants().await? > 0 {
        return Ok(None);
    }
    // Read everything first, so a missing build creates nothing half-way.
    let plugins = read_plugins(plugins_dir)?;
    let tenant_id = app.create_tenant("Demo").await?;
    seed(app, tenant_id, plugins).await.map(Some)
}

/// Every `*/plugin.toml` under `plugins_dir` with its component, in name order.
pub fn read_plugins(plugins_dir: &Path) -> Result<Vec<(Manifest, Vec<u8>)>, DemoError> {
    let mut plugins = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(plugins_dir)
        .map_err(|_| DemoError::NoPlugins(plugins_dir.display().to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("plugin.toml")))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    for manifest_path in dirs {
        let manifest = Manifest::from_file(&manifest_path)?;
        let component = manifest.component_path(&manifest_path).ok_or_else(|| DemoError::MissingComponent {
            manifest: manifest_path.display().to_string(),
            component: "(no `component` field)".into(),
        })?;
        let wasm = std::fs::read(&component).map_err(|_| DemoError::MissingComponent {
            manifest: manifest_path.display().to_string(),
            component: component.display().to_string(),
        })?;
        plugins.push((manifest, wasm));
    }
    if plugins.is_empty() {
        return Err(DemoError::NoPlugins(plugins_dir.display().to_string()));
    }
    Ok(plugins)
}

/// Continues [`seed_if_empty`] once the plugins are read.
async fn seed(app: &App, tenant_id: String, plugins: Vec<(Manifest, Vec<u8>)>) -> Result<DemoTenant, DemoError> {
    app.add_number(&tenant_id, DEMO_NUMBER, "simulator", true).await?;
    let mut names = Vec::new();
    for (manifest, wasm) in &plugins {
        app.deploy_plugin(&tenant_id, manifest, wasm)
            .await
            .map_err(|error| DemoError::Deploy { name: manifest.name.clone(), error })?;
        names.push(manifest.name.clone());
    }
    let api_key = app.create_api_key(&tenant_id, KeyMode::Live, Some("demo")).await?;
    let key_file = app.settings.data_dir.join(DEMO_KEY_FILE);
    crate::secrets::write_private(&key_file, &api_key)
        .map_err(|e| DemoError::KeyFile { path: key_file.display().to_string(), error: e.to_string() })?;
    Ok(DemoTenant { tenant_id, api_key, key_file, plugins: names })
}
