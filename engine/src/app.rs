//! Wiring: settings, the shared [`App`] every task and handler holds, and
//! the operations that change tenants and plugins (each reloads the
//! directory so the change is in force at once).

use crate::billing::{Pricing, PricingSettings};
use crate::clock::Clock;
use crate::connectors::{self, ConnectorSettings, Connectors};
use crate::deploy::{self, DeployError, LifecycleError};
use crate::manifest::Manifest;
use crate::directory::Directory;
use crate::ids;
use crate::limits::Limits;
use crate::pipeline::{self, Pipeline};
use crate::runtime::{Runtime, RuntimeError};
use crate::secrets::{self, KeyMode, Sealer, Secret};
use crate::store::{self, Database, DeployedVersion, NewApiKeyRow, NewTenant, StoreError};
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
    /// Overrides the database (default: SQLite in the data directory):
    /// `postgres://USER@HOST/DATABASE` for several nodes on one database.
    pub database_url: Option<String>,
    /// PostgreSQL connections per node (default 16; see `store::postgres`).
    pub database_max_connections: Option<u32>,
    /// Where compiled plugins are cached (default: `<data_dir>/compiled`).
    pub compile_cache_dir: Option<PathBuf>,
    /// This node's name on work leases (`SWITCHBOARD_NODE_ID`). Every
    /// node sharing a database needs its own; unset there, each start
    /// picks a fresh one.
    pub node_id: String,
    /// Run plugins, the dispatcher and timers. A node with `false` only
    /// accepts and persists (an ingest-only node; work waits for a node
    /// that processes).
    pub process_events: bool,
    pub limits: Limits,
    /// Extra connectors by name; `simulator` and `sandbox` always exist.
    pub connectors: HashMap<String, ConnectorSettings>,
    pub pricing: PricingSettings,
    /// Token for the admin API (`/admin/v1`); without one it is closed.
    /// Also read from `SWITCHBOARD_ADMIN_TOKEN`.
    pub admin_token: Option<Secret>,
    /// Base64 of the 32-byte key that encrypts stored secrets (default:
    /// generated into `<data_dir>/secret.key`). Also `SWITCHBOARD_SECRET_KEY`.
    pub secret_key: Option<Secret>,
    /// The built-in unsigned webhook `/v1/inbound/generic` takes messages
    /// for numbers on simulator connectors (the demo, local development).
    /// Numbers on carrier connectors never come in this way. `false`: the
    /// endpoint is gone.
    pub generic_webhook: bool,
    /// Allow webhooks to private, loopback and link-local addresses.
    pub webhooks_allow_private_addresses: bool,
    /// Allow plugins' `http` capability to reach private, loopback and
    /// link-local addresses (their allow-lists still apply).
    pub plugins_http_allow_private_addresses: bool,
    /// Brand names tenants may not request as sender IDs (the operator
    /// can still assign them). Default: `senders::DEFAULT_BRANDS`.
    pub sender_id_brands: Vec<String>,
    /// Outbound routes for every tenant (a tenant's own routes win).
    pub routes: Vec<crate::tenancy::Route>,
    /// The URL carriers use to reach this engine (`https://sms.example.com`):
    /// callback URLs are built from it, and carrier signatures are checked
    /// against it (behind a proxy the request's own URL differs).
    pub public_base_url: Option<String>,
    /// Where outgoing requests made for tenants resolve names (tests
    /// script it; default: the system resolver).
    #[serde(skip)]
    pub dns: Dns,
}

/// The name lookup behind tenant-facing HTTP clients.
#[derive(Clone, Default)]
pub struct Dns(pub Option<Arc<dyn crate::net::Lookup>>);

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Dns(scripted)" } else { "Dns(system)" })
    }
}

impl Dns {
    pub fn resolver(&self, allow_private: bool) -> crate::net::VettedResolver {
        match &self.0 {
            Some(lookup) => crate::net::VettedResolver::new(lookup.clone(), allow_private),
            None => crate::net::VettedResolver::system(allow_private),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("switchboard-data"),
            database_url: None,
            database_max_connections: None,
            compile_cache_dir: None,
            node_id: DEFAULT_NODE_ID.into(),
            process_events: true,
            limits: Limits::default(),
            connectors: HashMap::new(),
            pricing: PricingSettings::default(),
            admin_token: None,
            secret_key: None,
            generic_webhook: true,
            webhooks_allow_private_addresses: false,
            plugins_http_allow_private_addresses: false,
            sender_id_brands: crate::senders::DEFAULT_BRANDS.iter().map(|b| b.to_string()).collect(),
            routes: Vec::new(),
            public_base_url: None,
            dns: Dns::default(),
        }
    }
}

/// The node name of a single node; nodes sharing a database get
/// [`unique_node_id`] unless named.
pub const DEFAULT_NODE_ID: &str = "local";

/// `HOST-RANDOM`: unique per process, so a restarted node's old leases are
/// never mistaken for its own (they lapse and any node takes them over).
fn unique_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{:08x}", rand::random::<u32>())
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
    #[error("pricing: {0}")]
    Pricing(#[from] crate::billing::InvalidAmount),
    #[error("secret key: {0}")]
    SecretKey(String),
    #[error(transparent)]
    Locked(#[from] store::lock::LockError),
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Refused by policy (`code` is the API's).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AdminError::Conflict(what),
            StoreError::NotFound(_) => AdminError::NotFound("tenant"),
            e => AdminError::Store(e),
        }
    }
}

pub struct App {
    pub settings: Settings,
    pub rate_limits: crate::api::RateLimits,
    pub pricing: Arc<Pricing>,
    pub sealer: Sealer,
    pub db: Arc<dyn Database>,
    pub directory: Directory,
    pub runtime: Runtime,
    pub clock: Clock,
    pub connectors: Connectors,
    pub pipeline: Pipeline,
    /// This engine's hold on its SQLite database (released at shutdown).
    database_lock: std::sync::Mutex<Option<store::lock::DatabaseLock>>,
}

impl App {
    /// Opens the store, loads the directory, reclaims this node's old work
    /// and starts the pipeline's tasks.
    pub async fn start(mut settings: Settings, clock: Clock) -> Result<Arc<App>, StartError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| StartError::DataDir { path: settings.data_dir.display().to_string(), error: e.to_string() })?;
        let pricing = Arc::new(Pricing::from_settings(&settings.pricing)?);
        // Before the database is opened (and migrated): one engine per file.
        let database_lock = match store::lock::sqlite_file(&settings.database_url()) {
            Some(file) => Some(store::lock::lock(&file, &settings.node_id)?),
            None => None,
        };
        let db = store::open(&settings.database_url(), settings.database_max_connections).await?;
        if db.shared() {
            // A key generated into one node's data directory would leave the
            // secrets it seals unreadable to every other node.
            if settings.secret_key.is_none() {
                return Err(StartError::SecretKey(
                    "nodes sharing a database must share one secret key: set SWITCHBOARD_SECRET_KEY \
                     (base64 of 32 random bytes) on every node"
                        .into(),
                ));
            }
            // Two nodes under one name would take each other's work for their own.
            if settings.node_id == DEFAULT_NODE_ID {
                settings.node_id = unique_node_id();
            }
        }
        let sealer =
            Sealer::load(settings.secret_key.as_ref().map(Secret::expose), &settings.data_dir.join("secret.key"))
                .map_err(StartError::SecretKey)?;
        let cache_dir = settings.compile_cache_dir.clone().unwrap_or_else(|| settings.data_dir.join("compiled"));
        let runtime = Runtime::new(
            settings.limits.clone(),
            cache_dir,
            db.clone(),
            clock.clone(),
            pricing.clone(),
            settings.dns.resolver(settings.plugins_http_allow_private_addresses),
            settings.plugins_http_allow_private_addresses,
        )?;
        // Listening before the first load: no change can fall in between.
        let directory_changes = db.directory_changes().await?;
        let directory = Directory::default();
        directory.reload(db.as_ref()).await?;
        // Whatever this node held before a restart is free again.
        db.release_leases(&settings.node_id).await?;
        let (pipeline, receivers) =
            Pipeline::new(db.clone(), settings.node_id.clone(), settings.process_events, settings.limits.work_lease_ms);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(settings.limits.connector_timeout_ms))
            .connect_timeout(std::time::Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| StartError::Settings(format!("HTTP client: {e}")))?;
        let ctx = connectors::Context {
            http,
            clock: clock.clone(),
            sinks: pipeline.sinks.clone(),
            public_base_url: settings.public_base_url.clone(),
            cluster: db.shared().then(|| db.clone()),
        };
        let connectors = connectors::build(&settings.connectors, &ctx, settings.generic_webhook)?;
        let app = Arc::new(App {
            settings,
            rate_limits: Default::default(),
            pricing,
            sealer,
            db,
            directory,
            runtime,
            clock,
            connectors,
            pipeline,
            database_lock: std::sync::Mutex::new(database_lock),
        });
        pipeline::spawn(app.clone(), receivers);
        if let Some(mut changes) = directory_changes {
            let node = app.clone();
            pipeline::spawn_until(&app.pipeline.recorders, async move {
                while changes.recv().await.is_some() {
                    if let Err(e) = node.directory.reload(node.db.as_ref()).await {
                        tracing::error!(error = %e, "could not reload the directory");
                    }
                }
            });
        }
        Ok(app)
    }

    /// Stops this engine's tasks, letting running work finish (see
    /// [`Pipeline::shutdown`]).
    pub async fn shutdown(&self) {
        self.pipeline.shutdown(std::time::Duration::from_secs(10)).await;
        self.connectors.close_all().await;
        // Another engine may open the database now.
        self.database_lock.lock().expect("lock slot").take();
    }

    /// Reloads the directory after a change, and tells the other nodes
    /// sharing the database to reload theirs.
    pub(crate) async fn reload(&self) -> Result<(), StoreError> {
        self.directory.reload(self.db.as_ref()).await?;
        self.db.announce_directory_change().await
    }

    pub async fn create_tenant(&self, name: &str) -> Result<String, AdminError> {
        if name.chars().count() > 100 {
            return Err(AdminError::Invalid { field: "name", message: "1 to 100 characters".into() });
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(AdminError::Invalid { field: "name", message: "1 to 100 characters".into() });
        }
        let id = ids::new_id("tnt");
        self.db
            .create_tenant(&NewTenant { id: id.clone(), name: name.to_string(), created_at: self.clock.now_ms() })
            .await?;
        // Every tenant can verify webhooks from the start; the secret is
        // shown when the tenant rotates it (POST /v1/account/webhook/secret).
        self.rotate_webhook_secret(&id).await?;
        self.reload().await?;
        Ok(id)
    }

    /// A new webhook signing secret for the tenant (stored encrypted); the
    /// secret is returned once.
    pub async fn rotate_webhook_secret(&self, tenant_id: &str) -> Result<String, AdminError> {
        let secret = secrets::generate_webhook_secret();
        let account = self.db.account(tenant_id).await?.ok_or(AdminError::NotFound("tenant"))?;
        self.db
            .set_webhook(tenant_id, account.webhook_url.as_deref(), Some(&self.sealer.seal(secret.as_bytes())))
            .await?;
        Ok(secret)
    }

    /// Credits (or, negative, debits) a tenant's balance with a ledger row.
    pub async fn credit(&self, tenant_id: &str, amount: crate::billing::Micros, note: &str) -> Result<i64, AdminError> {
        Ok(self.db.credit(tenant_id, amount, note, self.clock.now_ms()).await?)
    }

    pub async fn update_tenant_settings(
        &self,
        tenant_id: &str,
        settings: &crate::directory::TenantSettings,
    ) -> Result<(), AdminError> {
        let json = serde_json::to_string(settings).expect("settings serialize");
        self.db.set_tenant_settings(tenant_id, &json).await?;
        self.reload().await?;
        Ok(())
    }

    pub async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool, AdminError> {
        let revoked = self.db.revoke_key(tenant_id, key_id, self.clock.now_ms()).await?;
        self.reload().await?;
        Ok(revoked)
    }

    /// Creates an API key and returns its secret (shown once, stored hashed).
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        mode: KeyMode,
        label: Option<&str>,
    ) -> Result<String, AdminError> {
        Ok(self.issue_api_key(tenant_id, mode, label).await?.1)
    }

    /// Creates an API key; returns its id and secret (shown once).
    pub async fn issue_api_key(
        &self,
        tenant_id: &str,
        mode: KeyMode,
        label: Option<&str>,
    ) -> Result<(String, String), AdminError> {
        let key = secrets::generate_api_key(mode);
        let id = ids::new_id("key");
        self.db
            .create_api_key(&NewApiKeyRow {
                id: id.clone(),
                tenant_id: tenant_id.to_string(),
                hash: key.hash,
                prefix: key.prefix,
                mode: mode.as_str().to_string(),
                label: label.map(str::to_string),
                created_at: self.clock.now_ms(),
            })
            .await?;
        self.reload().await?;
        Ok((id, key.secret))
    }

    pub async fn deploy_plugin(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
    ) -> Result<DeployedVersion, DeployError> {
        let deployed = deploy::deploy(self.db.as_ref(), &self.runtime, &self.clock, tenant_id, manifest, wasm).await?;
        self.reload().await?;
        // New cron schedules take effect now.
        self.pipeline.scheduler.now();
        Ok(deployed)
    }

    /// Switches a plugin back to an earlier version (see [`deploy::rollback`]).
    pub async fn rollback_plugin(
        &self,
        tenant_id: &str,
        name: &str,
        to: Option<&str>,
    ) -> Result<crate::store::PluginVersionRow, LifecycleError> {
        let snapshot = self.directory.snapshot();
        let active = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), name.to_string()))
            .and_then(|id| snapshot.plugins.get(id))
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        let row = deploy::rollback(self.db.as_ref(), tenant_id, name, &active.row.version_id, to).await?;
        self.reload().await?;
        self.pipeline.scheduler.now();
        Ok(row)
    }

    /// Enables (`active`) or disables a plugin. Re-enabling also clears a
    /// suspension and its failure count.
    pub async fn set_plugin_enabled(&self, tenant_id: &str, name: &str, enabled: bool) -> Result<(), LifecycleError> {
        let snapshot = self.directory.snapshot();
        let plugin_id = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), name.to_string()))
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        let (status, reason) = if enabled { ("active", None) } else { ("disabled", Some("disabled by the tenant")) };
        self.db.set_plugin_status(plugin_id, status, reason).await?;
        self.reload().await?;
        self.pipeline.scheduler.now();
        Ok(())
    }

    /// Enables or disables a tenant: a disabled tenant's keys are refused
    /// and its plugins do not run.
    pub async fn set_tenant_active(&self, tenant_id: &str, active: bool) -> Result<(), AdminError> {
        let status = if active { "active" } else { "disabled" };
        if !self.db.set_tenant_status(tenant_id, status).await? {
            return Err(AdminError::NotFound("tenant"));
        }
        self.reload().await?;
        Ok(())
    }

    /// Records who did what to which tenant or plugin. Failing to write the
    /// audit log fails the request that would have gone unrecorded only if
    /// the caller checks; callers log and carry on after the change itself
    /// is committed.
    pub async fn audit(&self, actor: &str, action: &str, target: &str, detail: serde_json::Value) {
        let entry = crate::store::AuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
            at: self.clock.now_ms(),
        };
        if let Err(e) = self.db.audit(&entry).await {
            tracing::error!(action, target, error = %e, "could not write the audit log");
        }
    }
}
