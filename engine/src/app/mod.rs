//! Wiring, the top layer: the settings, and [`App::start`], which builds
//! every part from them and hands each what it uses (the pipeline's
//! context, the scheduler's, the control operations, the API's).

mod environment;

pub use environment::SETTING_KEYS;

use crate::api;
use crate::billing::{Pricing, PricingSettings};
use crate::clock::Clock;
use crate::connectors::{self, ConnectorSettings};
use crate::control::Control;
use crate::directory::Directory;
use crate::limits::Limits;
use crate::pipeline::{self, Pipeline};
use crate::runtime::{Runtime, RuntimeError};
use crate::scheduler;
use crate::secrets::{Sealer, Secret};
use crate::store::{self, StoreError};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Engine settings: defaults, overridden by the settings file
/// (`--config`), then by `SWITCHBOARD_*` environment variables (see
/// `environment`), then by command-line flags.
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
    /// `GET /metrics`: where it is served and who may read it.
    pub metrics: MetricsSettings,
    /// Export traces (one per message) to this OpenTelemetry collector
    /// over OTLP/HTTP: its base URL (`http://collector:4318`, to which
    /// `/v1/traces` is added) or the full URL of its traces path. Unset:
    /// no traces.
    pub otlp_endpoint: Option<String>,
    /// The share of traces begun here that are kept (0 to 1; default 1).
    /// A trace begun by a caller's `traceparent` keeps the caller's choice.
    pub trace_sample_ratio: f64,
    /// Where outgoing requests made for tenants resolve names (tests
    /// script it; default: the system resolver).
    #[serde(skip)]
    pub dns: crate::net::Dns,
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
            metrics: MetricsSettings::default(),
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            dns: Default::default(),
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

/// Prometheus metrics (`GET /metrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Also serve `/metrics` on this address (for a scraper on a private
    /// network); it is always on the main listener too.
    pub listen: Option<SocketAddr>,
    /// Serve `/metrics` without the admin token (default: the admin token
    /// is required; without one configured, `/metrics` is closed).
    pub open: bool,
    /// Label message counters with the tenant id (one series per tenant:
    /// only for a bounded number of tenants).
    pub tenant_labels: bool,
}

impl Settings {
    /// The settings file (if any) with `vars`' `SWITCHBOARD_*` settings
    /// laid over it (`std::env::vars()` in the binary).
    pub fn load(path: Option<&Path>, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, StartError> {
        let text = match path {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| StartError::Settings(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        environment::load(path.zip(text.as_deref()), vars)
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

/// The engine, wired: every part built from the settings and handed what
/// it uses. Nothing below this module sees it.
pub struct App {
    pub settings: Settings,
    /// What the pipeline's tasks use (the store, directory, runtime,
    /// connectors, queues).
    pub engine: Arc<pipeline::Context>,
    /// The operations that change tenants, keys, plugins and numbers.
    pub control: Arc<Control>,
    /// What the HTTP API's handlers use.
    pub api: Arc<api::Context>,
    /// This engine's hold on its SQLite database (released at shutdown).
    database_lock: std::sync::Mutex<Option<store::lock::DatabaseLock>>,
}

impl App {
    /// Opens the store, loads the directory, reclaims this node's old work
    /// and starts the pipeline's and the scheduler's tasks.
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
        let metrics = Arc::new(crate::metrics::Metrics::new(settings.metrics.tenant_labels));
        let (pipeline, receivers) = Pipeline::new(
            db.clone(),
            metrics.clone(),
            settings.node_id.clone(),
            settings.process_events,
            settings.limits.work_lease_ms,
        );
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(settings.limits.connector_timeout_ms))
            .connect_timeout(std::time::Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            // A carrier's answer is its answer: a redirect is not followed
            // (it would carry the message, and maybe credentials, elsewhere).
            .redirect(reqwest::redirect::Policy::none())
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
        let pipeline = Arc::new(pipeline);
        let directory = Arc::new(directory);
        let engine = Arc::new(pipeline::Context {
            db: db.clone(),
            directory: directory.clone(),
            runtime: Arc::new(runtime),
            connectors: Arc::new(connectors),
            clock: clock.clone(),
            limits: settings.limits.clone(),
            pricing,
            sealer: Arc::new(sealer),
            pipeline: pipeline.clone(),
            routes: settings.routes.clone(),
            process_events: settings.process_events,
            dns: settings.dns.clone(),
            webhooks_allow_private_addresses: settings.webhooks_allow_private_addresses,
            apps_http: Default::default(),
            metrics,
        });
        let control = Arc::new(Control {
            engine: engine.clone(),
            sender_id_brands: settings.sender_id_brands.clone(),
            replay_sandbox: Default::default(),
        });
        let api = Arc::new(api::Context {
            engine: engine.clone(),
            control: control.clone(),
            rate_limits: Default::default(),
            admin_token: settings.admin_token.clone(),
            public_base_url: settings.public_base_url.clone(),
            connector_kinds: settings.connectors.iter().map(|(name, c)| (name.clone(), c.kind())).collect(),
            metrics_open: settings.metrics.open,
            closing: Default::default(),
        });
        pipeline::spawn(engine.clone(), receivers);
        if settings.process_events {
            pipeline.spawn_intake(scheduler::run(scheduler::Context {
                db: db.clone(),
                clock,
                directory: directory.clone(),
                cron_grace_ms: settings.limits.cron_grace_s as i64 * 1000,
                pipeline: pipeline.clone(),
            }));
            pipeline.spawn_intake(crate::deploy::canary::watch(engine.clone()));
        }
        if let Some(mut changes) = directory_changes {
            let (directory, db) = (directory.clone(), db.clone());
            pipeline.spawn_recorder(async move {
                while changes.recv().await.is_some() {
                    if let Err(e) = directory.reload(db.as_ref()).await {
                        tracing::error!(error = %e, "could not reload the directory");
                    }
                }
            });
        }
        Ok(Arc::new(App { settings, engine, control, api, database_lock: std::sync::Mutex::new(database_lock) }))
    }

    /// Stops this engine's tasks, letting running work finish (see
    /// [`Pipeline::shutdown`]).
    pub async fn shutdown(&self) {
        self.engine.pipeline.shutdown(std::time::Duration::from_secs(10)).await;
        self.engine.connectors.close_all().await;
        // Another engine may open the database now.
        self.database_lock.lock().expect("lock slot").take();
    }
}
