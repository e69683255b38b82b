//! The wasmtime host: compiling plugins once, instantiating them fresh for
//! every event, and exposing capabilities (one module each).
//!
//! - One [`wasmtime::Engine`] with the pooling allocator, fuel and epoch
//!   interruption.
//! - Each component is compiled once per engine build and kept on disk
//!   (`<compile cache>/<sha256>-<engine hash>.cwasm`), so restarts load
//!   instead of recompiling. Identical components deployed by many tenants
//!   share one compiled [`Component`].
//! - Each deployed version holds an `InstancePre` (imports resolved once).
//! - Each invocation gets a new `Store` and instance: nothing leaks between
//!   events or tenants.

pub mod bindings;
pub mod capabilities;
mod clock;
mod config;
mod http;
mod inspect;
pub mod invocation;
mod kv;
mod log;
mod messaging;
pub mod tape;
mod timers;
mod ungranted;
pub mod usage;

pub use crate::manifest::Capability;
pub use capabilities::Grants;
pub use http::host_allowed;

/// A component that passed [`Runtime::validate`].
#[derive(Debug, Clone)]
pub struct Validated {
    /// SHA-256 of the component, hex.
    pub hash: String,
    /// Capabilities it imports that its grants leave out: each call to
    /// one returns `access-denied`.
    pub ungranted_imports: Vec<&'static str>,
}
pub use invocation::{InvocationFailure, InvocationOutcome, Trigger};
pub use messaging::HostMessage;

use crate::clock::Clock;
use crate::directory::TenantProfile;
use crate::limits::{InvocationLimits, Limits};
use crate::store::Database;
use bindings::{PluginPre, WIT_PACKAGE, WIT_VERSION};
use invocation::{InvocationState, MemoryLimiter};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How often the epoch advances: the granularity of time limits and of
/// yielding a long-running plugin back to the scheduler.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of a plugin's stderr kept (panic messages land there).
const STDERR_CAPTURE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("not a WebAssembly component{0}")]
    NotAComponent(&'static str),
    #[error("component does not compile: {0}")]
    Compile(String),
    #[error("component is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error("component is too complex to compile: {0}")]
    TooComplex(String),
    #[error("component did not compile within {0:?}")]
    CompileTimeout(Duration),
    #[error("{0}")]
    WrongWitVersion(String),
    #[error("component imports {0:?}, which this engine does not provide")]
    UnknownImport(String),
    #[error("component does not implement the {WIT_PACKAGE}/plugin@{WIT_VERSION} world: {0}")]
    WrongExports(String),
    #[error("component {0} is not stored")]
    MissingComponent(String),
    #[error("engine setup failed: {0}")]
    Setup(String),
    #[error("store error: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A plugin version ready to be instantiated.
pub struct LoadedPlugin {
    pub version_id: String,
    pub plugin_id: String,
    pre: PluginPre<InvocationState>,
    config: Arc<str>,
    limits: InvocationLimits,
    /// Hosts the `http` capability may call.
    http_allow: Arc<[String]>,
}

/// Who an invocation runs for, and what it answers.
pub struct InvocationContext {
    pub tenant: Arc<TenantProfile>,
    pub event_id: String,
    /// The inbound message being handled and its sender (sends to that
    /// sender are replies).
    pub reply_to: Option<(String, String)>,
    /// Test mode: the event came from a test key; sends go to the sandbox.
    pub mode: crate::secrets::KeyMode,
    /// Records what the invocation sees, serves a recording back, or
    /// (off) neither.
    pub tape: tape::Tape,
}

pub struct Runtime {
    engine: Engine,
    engine_hash: String,
    cache_dir: PathBuf,
    /// Compiled components by content hash (only ones that deployed).
    components: Mutex<HashMap<String, Component>>,
    /// Compilations running at once (`limits.concurrent_compiles`); a
    /// permit is held until the compiler thread ends, even after a deploy
    /// gave up waiting for it.
    compiles: Arc<tokio::sync::Semaphore>,
    /// Loaded versions by version id.
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    linkers: Mutex<HashMap<Grants, Arc<wasmtime::component::Linker<InvocationState>>>>,
    limits: Limits,
    db: Arc<dyn Database>,
    clock: Clock,
    pricing: Arc<crate::billing::Pricing>,
    stop_ticker: Arc<std::sync::atomic::AtomicBool>,
    stats: RuntimeStats,
    /// Tenants' recent usage (balance, sends today, kv, timers), as
    /// plugins' quota checks read it.
    pub usage: Arc<usage::Usage>,
    /// Whether `http` may reach private and loopback addresses.
    http_allow_private: bool,
    /// The client behind every plugin's `http` capability.
    http_client: reqwest::Client,
}

/// Counters of how components were obtained.
#[derive(Default, Debug)]
pub struct RuntimeStats {
    /// Compiled from WebAssembly (slow; once per component and engine build).
    pub compiled: std::sync::atomic::AtomicU64,
    /// Loaded from the on-disk compile cache.
    pub loaded_from_cache: std::sync::atomic::AtomicU64,
}

pub fn component_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl Runtime {
    pub fn new(
        limits: Limits,
        cache_dir: PathBuf,
        db: Arc<dyn Database>,
        clock: Clock,
        pricing: Arc<crate::billing::Pricing>,
        http_resolver: crate::net::VettedResolver,
        http_allow_private: bool,
    ) -> Result<Self, RuntimeError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = (limits.concurrent_invocations as u32) * 2 + 16;
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(limits.memory_bytes)
            // Reset only the pages an instance dirtied (PAGEMAP_SCAN, Linux
            // 6.7+) and keep them mapped: a fresh instance then starts
            // without page faults on memory the last one touched.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(32);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_reservation(limits.memory_bytes as u64 + (1 << 20))
            .memory_guard_size(64 << 10)
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Setup(e.to_string()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| RuntimeError::Setup(format!("compile cache {}: {e}", cache_dir.display())))?;

        let stop_ticker = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("switchboard-epoch".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Setup(e.to_string()))?;

        Ok(Runtime {
            engine,
            engine_hash,
            cache_dir,
            components: Mutex::default(),
            compiles: Arc::new(tokio::sync::Semaphore::new(limits.concurrent_compiles.max(1))),
            loaded: Mutex::default(),
            linkers: Mutex::default(),
            limits,
            db,
            clock,
            pricing,
            stop_ticker,
            stats: RuntimeStats::default(),
            usage: Arc::default(),
            http_allow_private,
            http_client: http::client(http_resolver),
        })
    }

    pub fn stats(&self) -> &RuntimeStats {
        &self.stats
    }

    fn linker(&self, grants: Grants) -> Result<Arc<wasmtime::component::Linker<InvocationState>>, RuntimeError> {
        let mut linkers = self.linkers.lock().expect("linkers lock");
        if let Some(l) = linkers.get(&grants) {
            return Ok(l.clone());
        }
        let linker = Arc::new(grants.linker(&self.engine).map_err(|e| RuntimeError::Setup(e.to_string()))?);
        linkers.insert(grants, linker.clone());
        Ok(linker)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn cache_path(&self, hash: &str) -> PathBuf {
        self.cache_dir.join(format!("{hash}-{}.cwasm", self.engine_hash))
    }

    /// The compiled component with `hash`, from memory or the disk cache.
    async fn cached(&self, hash: &str) -> Option<Component> {
        if let Some(c) = self.components.lock().expect("components lock").get(hash) {
            return Some(c.clone());
        }
        let path = self.cache_path(hash);
        if !path.exists() {
            return None;
        }
        let (engine, p) = (self.engine.clone(), path.clone());
        // SAFETY: the cache directory holds only artifacts this engine
        // configuration serialized (the file name carries its hash).
        let loaded = tokio::task::spawn_blocking(move || unsafe { Component::deserialize_file(&engine, &p) }).await;
        match loaded {
            Ok(Ok(c)) => {
                self.stats.loaded_from_cache.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.components.lock().expect("components lock").insert(hash.to_string(), c.clone());
                Some(c)
            }
            _ => {
                tracing::warn!(path = %path.display(), "unusable compile cache entry; removed, recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Compiles `wasm`, at most `limits.concurrent_compiles` at once and
    /// within `limits.compile_timeout_ms`. Nothing is cached here.
    async fn compile(&self, wasm: &[u8]) -> Result<Component, RuntimeError> {
        let timeout = Duration::from_millis(self.limits.compile_timeout_ms);
        let started = Instant::now();
        let permit = tokio::time::timeout(timeout, self.compiles.clone().acquire_owned())
            .await
            .map_err(|_| RuntimeError::CompileTimeout(timeout))?
            .expect("the semaphore is never closed");
        let (engine, bytes) = (self.engine.clone(), wasm.to_vec());
        let compiling = tokio::task::spawn_blocking(move || {
            let compiled = Component::new(&engine, &bytes);
            drop(permit); // the compiler thread is done, whoever still waits
            compiled
        });
        let left = timeout.saturating_sub(started.elapsed());
        let component = tokio::time::timeout(left, compiling)
            .await
            .map_err(|_| RuntimeError::CompileTimeout(timeout))?
            .map_err(|e| RuntimeError::Compile(e.to_string()))?
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        self.stats.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(component)
    }

    /// Keeps a component that deployed: in memory and in the disk cache.
    async fn remember(&self, hash: &str, component: &Component, write_to_disk: bool) {
        if write_to_disk {
            let path = self.cache_path(hash);
            let c = component.clone();
            let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let serialized = c.serialize().map_err(std::io::Error::other)?;
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, &serialized)?;
                std::fs::rename(&tmp, &path)
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!(hash, "could not write the compile cache");
            }
        }
        self.components.lock().expect("components lock").insert(hash.to_string(), component.clone());
    }

    /// The compiled component of a deployed version: cached, or compiled
    /// again from the stored bytes (another node deployed it, or the cache
    /// was cleared).
    async fn component(&self, hash: &str) -> Result<Component, RuntimeError> {
        if let Some(c) = self.cached(hash).await {
            return Ok(c);
        }
        let bytes =
            self.db.get_component(hash).await?.ok_or_else(|| RuntimeError::MissingComponent(hash.to_string()))?;
        let component = self.compile(&bytes).await?;
        self.remember(hash, &component, true).await;
        Ok(component)
    }

    /// Checks a component for deployment: its shape is read and limited
    /// before anything compiles it; it must target our WIT world and import
    /// only what this engine provides. Kept (compiled, in memory and on disk)
    /// only when it passes. Returns its hash.
    pub async fn validate(&self, wasm: &[u8], grants: Grants) -> Result<Validated, RuntimeError> {
        if wasm.len() > self.limits.plugin_upload_bytes {
            return Err(RuntimeError::TooComplex(format!(
                "{} bytes; the limit is {}",
                wasm.len(),
                self.limits.plugin_upload_bytes
            )));
        }
        let shape = inspect::check(wasm, &self.limits)?;
        let hash = component_hash(wasm);
        let (component, fresh) = match self.cached(&hash).await {
            Some(c) => (c, false),
            None => (self.compile(wasm).await?, true),
        };
        self.check_imports(&component)?;
        self.prepare(&component, grants)?;
        self.remember(&hash, &component, fresh).await;
        Ok(Validated { hash, ungranted_imports: inspect::ungranted_imports(&shape, grants) })
    }

    fn check_imports(&self, component: &Component) -> Result<(), RuntimeError> {
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            inspect::check_import(name)?;
        }
        Ok(())
    }

    fn prepare(&self, component: &Component, grants: Grants) -> Result<PluginPre<InvocationState>, RuntimeError> {
        let linker = self.linker(grants)?;
        let pre = linker.instantiate_pre(component).map_err(|e| RuntimeError::UnknownImport(format!("{e:#}")))?;
        PluginPre::new(pre).map_err(|e| RuntimeError::WrongExports(format!("{e:#}")))
    }

    /// The ready-to-run form of a deployed version (cached).
    pub async fn load(&self, row: &crate::store::PluginVersionRow) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        if let Some(p) = self.loaded.lock().expect("loaded lock").get(&row.version_id) {
            return Ok(p.clone());
        }
        let manifest = crate::manifest::stored(&row.manifest_json);
        let grants = Grants::from_capabilities(&manifest.capabilities);
        let component = self.component(&row.component_hash).await?;
        let pre = self.prepare(&component, grants)?;
        let plugin = Arc::new(LoadedPlugin {
            version_id: row.version_id.clone(),
            plugin_id: row.plugin_id.clone(),
            pre,
            config: Arc::from(row.config_json.as_str()),
            limits: InvocationLimits::resolve(&self.limits, &manifest.limits),
            http_allow: manifest.http.map(|h| h.allow).unwrap_or_default().into(),
        });
        self.loaded.lock().expect("loaded lock").insert(row.version_id.clone(), plugin.clone());
        Ok(plugin)
    }

    /// Runs one trigger in a fresh instance.
    pub async fn invoke(&self, plugin: &LoadedPlugin, ctx: InvocationContext, trigger: Trigger) -> InvocationOutcome {
        let started = Instant::now();
        let quotas = ctx.tenant.settings.quotas.resolve(&self.limits);
        let limits = plugin.limits.capped(&quotas);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let tape = ctx.tape.clone();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        if let Some(seed) = tape.seed() {
            tape::seeded_wasi(&mut wasi, seed);
            wasi.wall_clock(tape::TapeWallClock { tape: tape.clone(), clock: self.clock.clone() });
        }
        let state = InvocationState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: limits.memory_bytes, peak: 0 },
            stderr,
            messaging: self.messaging_state(&ctx, plugin.plugin_id.clone(), quotas.sends_per_day),
            kv: kv::KvState {
                db: self.db.clone(),
                tenant_id: ctx.tenant.id.clone(),
                plugin_id: plugin.plugin_id.clone(),
                key_bytes: self.limits.kv_key_bytes,
                value_bytes: self.limits.kv_value_bytes,
                list_max: self.limits.kv_list_max,
                reads: HashMap::new(),
                writes: Default::default(),
                pending_bytes: 0,
                max_writes: self.limits.kv_writes_per_invocation,
                max_pending_bytes: self.limits.kv_write_bytes_per_invocation,
                quota: kv::KvQuota::new(quotas.kv_keys, quotas.kv_bytes, self.usage.clone()),
                tape: tape.clone(),
            },
            timers: timers::TimersState {
                db: self.db.clone(),
                tenant_id: ctx.tenant.id.clone(),
                plugin_id: plugin.plugin_id.clone(),
                clock: self.clock.clone(),
                max_ops: self.limits.timers_per_invocation,
                payload_bytes: self.limits.timer_payload_bytes,
                key_bytes: self.limits.kv_key_bytes,
                ops: Vec::new(),
                mode: ctx.mode.as_str(),
                max_pending: quotas.timers_pending,
                usage: self.usage.clone(),
                tape: tape.clone(),
            },
            config: config::ConfigState { json: plugin.config.clone() },
            http: http::HttpState {
                allow: plugin.http_allow.clone(),
                allow_private: self.http_allow_private,
                client: self.http_client.clone(),
                timeout: Duration::from_millis(self.limits.http_fetch_timeout_ms),
                max_body: self.limits.http_fetch_bytes,
                max_calls: self.limits.http_fetches_per_invocation,
                calls: 0,
                tape: tape.clone(),
            },
            log: log::LogState {
                clock: self.clock.clone(),
                max_lines: self.limits.log_lines_per_invocation,
                max_bytes: self.limits.log_line_bytes,
                max_total_bytes: self.limits.log_bytes_per_invocation,
                total_bytes: 0,
                lines: Vec::new(),
                dropped: 0,
            },
            clock: clock::ClockState { clock: self.clock.clone(), tape: tape.clone() },
            ungranted: ungranted::Ungranted,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let fuel_set = store.set_fuel(limits.fuel).is_ok();
        let deadline = started + limits.timeout;
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                // tokio's own yield puts the plugin at the back of the run
                // queue and lets the I/O driver run: a plain wake-up would
                // put it straight back in front, starving the sockets
                // (PostgreSQL, carriers) the other tasks wait on.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store.set_epoch_deadline(1);

        // Host calls are not interrupted by epochs; bound the whole call too.
        let call =
            tokio::time::timeout(limits.timeout + Duration::from_secs(1), run(&plugin.pre, &mut store, trigger)).await;
        let result = match call {
            Err(_) => Err(InvocationFailure::Timeout(limits.timeout)),
            Ok(Ok(Ok(()))) => Ok(store.data_mut().take_effects()),
            Ok(Ok(Err(message))) => Err(InvocationFailure::Plugin(message)),
            Ok(Err(err)) => Err(classify(err, &limits, &store.data().stderr)),
        };
        let fuel_used = if fuel_set { limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)) } else { 0 };
        let recording = tape.finish(result.as_ref().ok(), self.limits.recording_bytes_per_invocation);
        let data = store.data_mut();
        InvocationOutcome {
            recording,
            result,
            logs: data.log.take(),
            fuel_used,
            memory_peak: data.limiter.peak,
            duration: started.elapsed(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn run(
    pre: &PluginPre<InvocationState>,
    store: &mut Store<InvocationState>,
    trigger: Trigger,
) -> wasmtime::Result<Result<(), String>> {
    let plugin = pre.instantiate_async(&mut *store).await?;
    match trigger {
        Trigger::Inbound(m) => plugin.call_on_inbound(&mut *store, &m).await,
        Trigger::Event { name, payload } => plugin.call_on_event(&mut *store, &name, &payload).await,
        Trigger::Timer { payload } => plugin.call_on_timer(&mut *store, &payload).await,
        Trigger::Delivery(r) => plugin.call_on_delivery(&mut *store, &r).await,
    }
}

fn classify(err: wasmtime::Error, limits: &InvocationLimits, stderr: &MemoryOutputPipe) -> InvocationFailure {
    if let Some(m) = err.downcast_ref::<invocation::MemoryLimitExceeded>() {
        return InvocationFailure::MemoryLimit(m.to_string());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvocationFailure::OutOfFuel(limits.fuel),
        Some(Trap::Interrupt) => InvocationFailure::Timeout(limits.timeout),
        _ => {
            let output = String::from_utf8_lossy(&stderr.contents()).trim().to_string();
            let root = err.root_cause().to_string();
            if output.is_empty() {
                InvocationFailure::Trap(root)
            } else {
                InvocationFailure::Trap(format!("{root}; stderr: {output}"))
            }
        }
    }
}
