//! `switchboard bench <scenario>`: the load harness.
//!
//! Each run starts what it needs on loopback — the engine on a fresh data
//! directory (SQLite, every message durable before it is acknowledged),
//! serving its real HTTP API; a [fake carrier](carrier) the `http`
//! connector sends to; the [load generator](load) — runs a bounded load,
//! stops everything, and reports one JSON line per figure on stdout
//! (`{"scenario", "metric", "value", "unit"}`) and a summary on stderr. The
//! load generator shares the machine's cores with the engine.
//!
//! Scenarios: [`traffic`] (`keyword`, `send`), [`invoke`], [`tenants`],
//! [`timers`], [`cluster`] (node processes on PostgreSQL), and [`kannel`],
//! the peer `keyword` is compared with. Every scenario reports the engine's
//! CPU time per message ([`cpu`]).

pub mod carrier;
pub mod cluster;
pub mod cpu;
pub mod invoke;
pub mod kannel;
pub mod load;
pub mod tenants;
pub mod timers;
pub mod traffic;

use crate::app::{App, Settings};
use crate::clock::Clock;
use crate::manifest::read_plugins;
use crate::secrets::KeyMode;
use anyhow::Context;
use carrier::FakeCarrier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The number every benchmark tenant receives on (the first one's).
pub const NUMBER: &str = "+15550000000";
/// The fake carrier's webhook secret: it signs inbound webhooks as a real
/// gateway would (`X-SMS-Signature`).
pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";

/// An inbound webhook as the fake carrier delivers it: JSON, signed,
/// to the `fake` connector.
pub fn signed_inbound(client: &reqwest::Client, base: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
    let bytes = body.to_string();
    client
        .post(format!("{base}/v1/inbound/fake"))
        .header("content-type", "application/json")
        .header(
            crate::connectors::http::SIGNATURE_HEADER,
            crate::connectors::http::signature(WEBHOOK_SECRET, bytes.as_bytes()),
        )
        .body(bytes)
}

/// Quotas out of a benchmark's way (the defaults are a tenant's safe ones).
pub fn unlimited_quotas() -> crate::tenancy::Quotas {
    crate::tenancy::Quotas {
        invocations_per_minute: Some(u32::MAX),
        kv_bytes: Some(i64::MAX / 2),
        kv_keys: Some(i64::MAX / 2),
        sends_per_day: Some(i64::MAX / 2),
        timers_pending: Some(i64::MAX / 2),
        ..Default::default()
    }
}

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Figure {
    pub scenario: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
}

impl Figure {
    pub fn new(scenario: &str, metric: &str, value: f64, unit: &str) -> Self {
        Figure { scenario: scenario.into(), metric: metric.into(), value, unit: unit.into() }
    }
}

/// Knobs shared by the scenarios.
#[derive(Debug, Clone)]
pub struct Options {
    /// Messages (or events, or invocations) per run.
    pub messages: usize,
    /// Connections of the load generator.
    pub connections: usize,
    /// Where `*/plugin.toml` are (the built components next to them).
    pub plugins_dir: PathBuf,
    /// Tenants for the `tenants` scenario.
    pub tenants: usize,
    /// Whether invocations keep their recordings (`limits.record_invocations`).
    pub record_invocations: bool,
}

/// A sender number per index (distinct for up to ten million).
pub fn customer(i: usize) -> String {
    format!("+1556{:07}", i % 10_000_000)
}

/// The index a [`customer`] number was made from.
pub fn customer_index(number: &str) -> Option<usize> {
    number.strip_prefix("+1556")?.parse().ok()
}

/// An engine on a fresh data directory, serving its API on loopback, with
/// one tenant whose number sends through the fake carrier.
pub struct Env {
    pub app: Arc<App>,
    /// The runtime the engine's tasks run on, apart from the load's.
    pub engine: EngineRuntime,
    pub base: String,
    pub carrier: FakeCarrier,
    pub tenant: String,
    pub key: String,
    pub settings: Settings,
    pub clock: Clock,
    stop: tokio_util::sync::CancellationToken,
}

/// A fresh directory under the system's temporary directory.
pub fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    std::env::temp_dir().join(format!("switchboard-bench-{}-{nanos}", std::process::id()))
}

/// The engine settings of a benchmark run: the fake carrier as connector
/// `fake`, rate limits out of the way.
pub fn settings(dir: &Path, carrier_url: &str) -> anyhow::Result<Settings> {
    let mut settings = Settings { data_dir: dir.to_path_buf(), ..Default::default() };
    let fake: crate::connectors::ConnectorSettings = toml::from_str(&format!(
        "kind = \"http\"\nurl = \"{carrier_url}\"\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n[gate]\nmax_concurrency = 256\n"
    ))?;
    settings.connectors.insert("fake".into(), fake);
    settings.webhooks_allow_private_addresses = true;
    Ok(settings)
}

impl Env {
    /// Starts the engine with `plugins` (names from the plugins directory)
    /// deployed for its tenant.
    pub async fn start(opts: &Options, plugins: &[&str]) -> anyhow::Result<Env> {
        let carrier = FakeCarrier::start().await?;
        let dir = scratch_dir();
        let mut settings = settings(&dir, &carrier.url)?;
        settings.limits.record_invocations = opts.record_invocations;
        let clock = Clock::system();
        let engine = EngineRuntime::new()?;
        let app = engine.start_app(&settings, &clock).await?;
        let tenant = app.control.create_tenant("Bench").await?;
        app.control.add_number(&tenant, NUMBER, "fake", true).await?;
        let key = app.control.create_api_key(&tenant, KeyMode::Live, Some("bench")).await?;
        let profile = app.engine.directory.snapshot().tenants[&tenant].settings.clone();
        let unlimited = crate::tenancy::TenantSettings {
            requests_per_second: Some(10_000_000),
            requests_per_day: Some(u64::MAX / 2),
            quotas: unlimited_quotas(),
            ..profile
        };
        app.control.update_tenant_settings(&tenant, &unlimited).await?;
        app.control.credit(&tenant, i64::MAX / 4, "benchmark").await?;
        for (manifest, wasm) in read_plugins(&opts.plugins_dir)? {
            if plugins.contains(&manifest.name.as_str()) {
                app.control
                    .deploy_plugin(&tenant, &manifest, &wasm)
                    .await
                    .with_context(|| format!("deploy {}", manifest.name))?;
            }
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let base = engine.serve(app.clone(), stop.clone()).await?;
        Ok(Env { app, engine, base, carrier, tenant, key, settings, clock, stop })
    }

    /// Stops the engine and removes its data directory.
    pub async fn stop(self) {
        self.stop.cancel();
        self.app.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.settings.data_dir);
    }
}

/// A multi-threaded runtime for the engine alone, its threads named
/// [`cpu::ENGINE_THREADS`], so the engine's CPU time can be told from the
/// load generator's and the fake carrier's.
pub struct EngineRuntime(Option<tokio::runtime::Runtime>);

impl EngineRuntime {
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(cpu::ENGINE_THREADS)
            // No thread ends during a run, taking its CPU time with it.
            .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
            .enable_all()
            .build()?;
        Ok(EngineRuntime(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the engine runtime runs until dropped").handle()
    }

    /// Starts an engine whose tasks run on this runtime.
    pub async fn start_app(&self, settings: &Settings, clock: &Clock) -> anyhow::Result<Arc<App>> {
        Ok(self.handle().spawn(App::start(settings.clone(), clock.clone())).await??)
    }

    /// Serves `app`'s API from this runtime; returns its base URL.
    pub async fn serve(&self, app: Arc<App>, stop: tokio_util::sync::CancellationToken) -> anyhow::Result<String> {
        self.handle().spawn(serve(app, stop)).await?
    }
}

impl Drop for EngineRuntime {
    fn drop(&mut self) {
        // Dropped from async code: a runtime may not block there.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves the API on a loopback port until `stop`; returns its base URL.
pub async fn serve(app: Arc<App>, stop: tokio_util::sync::CancellationToken) -> anyhow::Result<String> {
    let listener = crate::net::listen_loopback()?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = crate::api::run(app.api.clone(), listener, async move { stop.cancelled().await }).await;
    });
    Ok(base)
}

/// This process's resident memory, in bytes (Linux).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Medians of each metric over several runs, in first-seen order.
pub fn medians(runs: &[Vec<Figure>]) -> Vec<Figure> {
    let mut out: Vec<Figure> = Vec::new();
    for f in runs.iter().flatten() {
        if out.iter().any(|o| o.metric == f.metric && o.scenario == f.scenario) {
            continue;
        }
        let mut values: Vec<f64> = runs
            .iter()
            .flatten()
            .filter(|g| g.metric == f.metric && g.scenario == f.scenario)
            .map(|g| g.value)
            .collect();
        let median = load::quantile(&mut values, 0.5);
        out.push(Figure { value: median, ..f.clone() });
    }
    out
}
