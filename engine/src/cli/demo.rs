//! The demo tenant, created on a fresh data directory: number
//! `+15550000000` on the simulator, the plugins found under `plugins/`
//! deployed with their example configuration, and an API key saved to
//! `<data-dir>/demo-api-key`.

use crate::app::App;
use crate::control::AdminError;
use crate::deploy::DeployError;
use crate::manifest::{Manifest, PluginFolderError, read_plugins};
use crate::secrets::KeyMode;
use std::path::{Path, PathBuf};

pub const DEMO_NUMBER: &str = "+15550000000";
pub const DEMO_KEY_FILE: &str = "demo-api-key";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Plugins(#[from] PluginFolderError),
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
    if app.engine.db.count_tenants().await? > 0 {
        return Ok(None);
    }
    // Read everything first, so a missing build creates nothing half-way.
    // Run elsewhere than a checkout, there are no plugins to seed: the
    // tenant, its number and key still make a working engine to deploy to.
    let plugins = match read_plugins(plugins_dir) {
        Err(PluginFolderError::NoPlugins(_)) => Vec::new(),
        read => read?,
    };
    let tenant_id = app.control.create_tenant("Demo").await?;
    seed(app, tenant_id, plugins).await.map(Some)
}

/// Continues [`seed_if_empty`] once the plugins are read.
async fn seed(app: &App, tenant_id: String, plugins: Vec<(Manifest, Vec<u8>)>) -> Result<DemoTenant, DemoError> {
    app.control.add_number(&tenant_id, DEMO_NUMBER, "simulator", true).await?;
    let mut names = Vec::new();
    for (manifest, wasm) in &plugins {
        app.control
            .deploy_plugin(&tenant_id, manifest, wasm)
            .await
            .map_err(|error| DemoError::Deploy { name: manifest.name.clone(), error })?;
        names.push(manifest.name.clone());
    }
    let api_key = app.control.create_api_key(&tenant_id, KeyMode::Live, Some("demo")).await?;
    let key_file = app.settings.data_dir.join(DEMO_KEY_FILE);
    crate::secrets::write_private(&key_file, &api_key)
        .map_err(|e| DemoError::KeyFile { path: key_file.display().to_string(), error: e.to_string() })?;
    Ok(DemoTenant { tenant_id, api_key, key_file, plugins: names })
}
