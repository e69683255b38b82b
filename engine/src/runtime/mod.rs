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
pub mod invocation;
mod kv;
mod log;
mod messaging;
mod timers;

pub use capabilities::{Capability, Grants};
pub use http::host_allowed;
pub use invocation::{InvocationFailure, InvocationOutcome, Trigger};

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
    #[error("{0}")]
    WrongWitVersion(String),
    #[error("component imports capability {capability:?}, which its manifest does not grant")]
    CapabilityNotGranted { capability: String },
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
    pub in_reply_to: Option<String>,
}

pub struct Runtime {
    engine: Engine,
    engine_hash: String,
    cache_dir: PathBuf,
    /// Compiled components by content hash.
    components: Mutex<HashMap<String, Component>>,
    /// Loaded versions by version id.
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    linkers: Mutex<HashMap<Grants, Arc<wasmtime::component::Linker<InvocationState>>>>,
    limits: Limits,
    db: Arc<dyn Database>,
    clock: Clock,
    pricing: Arc<crate::billing::Pricing>,
    stop_ticker: Arc<std::sync::atomic::AtomicBool>,
    stats: RuntimeStats,
    /// Tenants' balances, as plugins' sends check them.
    pub balances: Arc<messaging::BalanceCache>,
    /// Whether `http` may reach private and loopback addresses.
    http_allow_private: bool,
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
            loaded: Mutex::default(),
            linkers: Mutex::default(),
            limits,
            db,
            clock,
            pricing,
            stop_ticker,
            stats: RuntimeStats::default(),
            balances: Arc::default(),
            http_allow_private,
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

    /// Compiles (or loads from the disk cache) the component with `hash`.
    /// `wasm` supplies the bytes if they are needed.
    async fn component(&self, hash: &str, wasm: Option<&[u8]>) -> Result<Component, RuntimeError> {
        if let Some(c) = self.components.lock().expect("components lock").get(hash) {
            return Ok(c.clone());
        }
        let path = self.cache_dir.join(format!("{hash}-{}.cwasm", self.engine_hash));
        if path.exists() {
            let (engine, p) = (self.engine.clone(), path.clone());
            // SAFETY: the cache directory holds only artifacts this engine
            // configuration serialized (the file name carries its hash).
            let loaded = tokio::task::spawn_blocking(move || unsafe { Component::deserialize_file(&engine, &p) }).await;
            match loaded {
                Ok(Ok(c)) => {
                    self.stats.loaded_from_cache.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.components.lock().expect("components lock").insert(hash.to_string(), c.clone());
                    return Ok(c);
                }
                _ => tracing::warn!(path = %path.display(), "unusable compile cache entry; recompiling"),
            }
        }
        let bytes = match wasm {
            Some(b) => b.to_vec(),
            None => {
                self.db.get_component(hash).await?.ok_or_else(|| RuntimeError::MissingComponent(hash.to_string()))?
            }
        };
        if !wasmparser::Parser::is_component(&bytes) {
            return Err(RuntimeError::NotAComponent(if wasmparser::Parser::is_core_wasm(&bytes) {
                " (this is a core module; build with --target wasm32-wasip2)"
            } else {
                ""
            }));
        }
        let engine = self.engine.clone();
        let (component, serialized) = tokio::task::spawn_blocking(move || -> wasmtime::Result<(Component, Vec<u8>)> {
            let c = Component::new(&engine, &bytes)?;
            let serialized = c.serialize()?;
            Ok((c, serialized))
        })
        .await
        .map_err(|e| RuntimeError::Compile(e.to_string()))?
        .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        self.stats.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &serialized).and_then(|()| std::fs::rename(&tmp, &path)).is_err() {
            tracing::warn!(path = %path.display(), "could not write the compile cache");
        }
        self.components.lock().expect("components lock").insert(hash.to_string(), component.clone());
        Ok(component)
    }

    /// Checks a component for deployment: it compiles, targets our WIT
    /// world, and imports only what `grants` links. Returns its hash.
    pub async fn validate(&self, wasm: &[u8], grants: Grants) -> Result<String, RuntimeError> {
        let hash = component_hash(wasm);
        let component = self.component(&hash, Some(wasm)).await?;
        self.check_imports(&component, grants)?;
        self.prepare(&component, grants)?;
        Ok(hash)
    }

    fn check_imports(&self, component: &Component, grants: Grants) -> Result<(), RuntimeError> {
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            if name.starts_with("wasi:") {
                continue; // resolved (or refused) by the linker below
            }
            let Some(rest) = name.strip_prefix(WIT_PACKAGE).and_then(|r| r.strip_prefix('/')) else {
                return Err(RuntimeError::UnknownImport(name.to_string()));
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if version != WIT_VERSION {
                return Err(RuntimeError::WrongWitVersion(format!(
                    "component targets {WIT_PACKAGE}@{}; this engine provides {WIT_PACKAGE}@{WIT_VERSION}",
                    if version.is_empty() { "(unversioned)" } else { version }
                )));
            }
            if interface == "types" {
                continue;
            }
            match Capability::from_interface(interface) {
                Some(cap) if grants.contains(cap) => {}
                Some(cap) => return Err(RuntimeError::CapabilityNotGranted { capability: cap.name().into() }),
                None => return Err(RuntimeError::UnknownImport(name.to_string())),
            }
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
        let manifest = crate::deploy::manifest::stored(&row.manifest_json);
        let grants = Grants::from_capabilities(&manifest.capabilities);
        let component = self.component(&row.component_hash, None).await?;
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
        let quotas = &ctx.tenant.settings.quotas;
        let limits = plugin.limits.capped(quotas);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let state = InvocationState {
            wasi: WasiCtxBuilder::new().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: limits.memory_bytes, peak: 0 },
            stderr,
            messaging: messaging::MessagingState {
                tenant: ctx.tenant.clone(),
                plugin_id: plugin.plugin_id.clone(),
                event_id: ctx.event_id.clone(),
                in_reply_to: ctx.in_reply_to,
                clock: self.clock.clone(),
                max_sends: self.limits.sends_per_invocation,
                max_chars: self.limits.message_chars,
                sends: Vec::new(),
                pricing: self.pricing.clone(),
                db: self.db.clone(),
                balance: None,
                balances: self.balances.clone(),
                sends_per_day: quotas.sends_per_day,
                sent_today: None,
            },
            kv: kv::KvState {
                db: self.db.clone(),
                tenant_id: ctx.tenant.id.clone(),
                plugin_id: plugin.plugin_id.clone(),
                key_bytes: self.limits.kv_key_bytes,
                value_bytes: self.limits.kv_value_bytes,
                list_max: self.limits.kv_list_max,
                reads: HashMap::new(),
                writes: Default::default(),
                quota: kv::KvQuota::new(quotas.kv_keys, quotas.kv_bytes),
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
                max_pending: quotas.timers_pending,
                pending: None,
            },
            config: config::ConfigState { json: plugin.config.clone() },
            http: http::HttpState {
                allow: plugin.http_allow.clone(),
                allow_private: self.http_allow_private,
                timeout: Duration::from_millis(self.limits.http_fetch_timeout_ms),
                max_body: self.limits.http_fetch_bytes,
                max_calls: self.limits.http_fetches_per_invocation,
                calls: 0,
            },
            log: log::LogState {
                clock: self.clock.clone(),
                max_lines: self.limits.log_lines_per_invocation,
                max_bytes: self.limits.log_line_bytes,
                lines: Vec::new(),
                dropped: 0,
            },
            clock: clock::ClockState { clock: self.clock.clone() },
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
        let data = store.data_mut();
        InvocationOutcome {
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
