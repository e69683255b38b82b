//! Wiring: settings, the shared [`App`] every task and handler holds, and
//! the operations that change tenants and plugins (each reloads the
//! directory so the change is in force at once).

use crate::clock::Clock;
use crate::connectors::{self, ConnectorSettings, Connectors};
use crate::deploy::{self, DeployError, Manifest};
use crate::directory::Directory;
use crate::limits::Limits;
use crate::pipeline::{self, Pipeline};
use crate::runtime::{Runtime, RuntimeError};
use crate::secrets::{self, KeyMode};
use crate::store::{self, Database, DeployedVersion, NewApiKeyRow, NewNumber, NewTenant, StoreError};
use crate::{ids, phone};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Engine settings: defaults, overridden by the settings file
/// (`--config`), then by command-line flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Where the SQLite database, compiled plugins and the demo key live.
    pub data_dir: PathBuf,
    /// Overrides the database (default: SQLite in the data directory).
    pub database_url: Option<String>,
    /// Where compiled plugins are cached (default: `<data_dir>/compiled`).
    pub compile_cache_dir: Option<PathBuf>,
    /// This node's name on work leases.
    pub node_id: String,
    /// Run plugins, the dispatcher and timers. A node with `false` only
    /// accepts and persists (an ingest-only node; work waits for a node
    /// that processes).
    pub process_events: bool,
    pub limits: Limits,
    /// Extra connectors by name; `simulator` always exists.
    pub connectors: HashMap<String, ConnectorSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("switchboard-data"),
            database_url: None,
            compile_cache_dir: None,
            node_id: "local".into(),
            process_events: true,
            limits: Limits::default(),
            connectors: HashMap::new(),
        }
    }
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| StartError::Settings(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| StartError::Settings(format!("{}: {}", path.display(), e.message())))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| store::default_url(&self.data_dir))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("settings: {0}")]
    Settings(String),
    #[error("data directory {path}: {error}")]
    DataDir { path: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Connector(#[from] connectors::ConnectorSetupError),
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AdminError::Conflict(what),
            e => AdminError::Store(e),
        }
    }
}

pub struct App {
    pub settings: Settings,
    pub db: Arc<dyn Database>,
    pub directory: Directory,
    pub runtime: Runtime,
    pub clock: Clock,
    pub connectors: Connectors,
    pub pipeline: Pipeline,
}

impl App {
    /// Opens the store, loads the directory, reclaims this node's old work
    /// and starts the pipeline's tasks.
    pub async fn start(settings: Settings, clock: Clock) -> Result<Arc<App>, StartError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| StartError::DataDir { path: settings.data_dir.display().to_string(), error: e.to_string() })?;
        let db = store::open(&settings.database_url()).await?;
        let cache_dir = settings.compile_cache_dir.clone().unwrap_or_else(|| settings.data_dir.join("compiled"));
        let runtime = Runtime::new(settings.limits.clone(), cache_dir, db.clone(), clock.clone())?;
        let directory = Directory::default();
        directory.reload(db.as_ref()).await?;
        // Whatever this node held before a restart is free again.
        db.release_leases(&settings.node_id).await?;
        let (pipeline, receivers) = Pipeline::new(db.clone(), settings.node_id.clone(), settings.process_events);
        let connectors = connectors::build(&settings.connectors, pipeline.deliveries.clone(), &clock)?;
        let app = Arc::new(App { settings, db, directory, runtime, clock, connectors, pipeline });
        pipeline::spawn(app.clone(), receivers);
        Ok(app)
    }

    /// Stops this engine's tasks, letting running work finish (see
    /// [`Pipeline::shutdown`]).
    pub async fn shutdown(&self) {
        self.pipeline.shutdown(std::time::Duration::from_secs(10)).await;
    }

    async fn reload(&self) -> Result<(), StoreError> {
        self.directory.reload(self.db.as_ref()).await
    }

    pub async fn create_tenant(&self, name: &str) -> Result<String, AdminError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(AdminError::Invalid { field: "name", message: "1 to 100 characters".into() });
        }
        let id = ids::new_id("tnt");
        self.db
            .create_tenant(&NewTenant { id: id.clone(), name: name.to_string(), created_at: self.clock.now_ms() })
            .await?;
        self.reload().await?;
        Ok(id)
    }

    pub async fn add_number(
        &self,
        tenant_id: &str,
        number: &str,
        connector: &str,
        is_default: bool,
    ) -> Result<String, AdminError> {
        let number = phone::normalize(number, None)
            .map_err(|e| AdminError::Invalid { field: "number", message: e.to_string() })?;
        if self.connectors.get(connector).is_none() {
            return Err(AdminError::Invalid {
                field: "connector",
                message: format!("no connector named {connector:?}"),
            });
        }
        self.db
            .add_number(&NewNumber {
                number: number.clone(),
                tenant_id: tenant_id.to_string(),
                connector: connector.to_string(),
                is_default,
                created_at: self.clock.now_ms(),
            })
            .await?;
        self.reload().await?;
        Ok(number)
    }

    /// Creates an API key and returns its secret (shown once, stored hashed).
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        mode: KeyMode,
        label: Option<&str>,
    ) -> Result<String, AdminError> {
        let key = secrets::generate_api_key(mode);
        self.db
            .create_api_key(&NewApiKeyRow {
                id: ids::new_id("key"),
                tenant_id: tenant_id.to_string(),
                hash: key.hash,
                prefix: key.prefix,
                mode: mode.as_str().to_string(),
                label: label.map(str::to_string),
                created_at: self.clock.now_ms(),
            })
            .await?;
        self.reload().await?;
        Ok(key.secret)
    }

    pub async fn deploy_plugin(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
    ) -> Result<DeployedVersion, DeployError> {
        let deployed = deploy::deploy(self.db.as_ref(), &self.runtime, &self.clock, tenant_id, manifest, wasm).await?;
        self.reload().await?;
        Ok(deployed)
    }
}
