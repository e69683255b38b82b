//! Replays: recorded invocations of a plugin run again against another
//! version, with what they saw served back from their recordings (see
//! `runtime::tape`): no message is sent, no kv key or timer written, no
//! HTTP request made. Each is compared with what it committed.
//!
//! A replay runs in the background. Its reads and progress writes happen
//! on the engine's runtime; the invocations themselves run one at a time
//! on one thread at the lowest CPU priority ([`Sandbox`]), so a replay of
//! a week of traffic takes at most one core, and only what live traffic
//! leaves.

use super::{LifecycleError, history};
use crate::runtime::tape::{RecordedEffects, RecordedKvWrite, RecordedSend, RecordedTimer, Recording, Tape};
use crate::runtime::{InvocationContext, InvocationOutcome, LoadedPlugin, Runtime};
use crate::store::{Database, RecordedInvocationRow, RecordingSelection, ReplayRow, StoreError};
use serde::Serialize;
use std::sync::Arc;

/// Recordings read per batch.
const BATCH: u32 = 200;
/// Results kept in a report in full (the totals count every one).
const REPORTED_RESULTS: usize = 1_000;
/// A running replay writes its progress at most this often.
const PROGRESS_EVERY: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("no recorded invocations match")]
    NothingRecorded,
    #[error("{count} recorded invocations match; one replay runs at most {max} (limits.replay_invocations_max)")]
    TooMany { count: i64, max: usize },
    #[error("a replay of this plugin is already running ({0})")]
    Running(String),
    #[error("the version could not be loaded: {0}")]
    Load(String),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Lifecycle(LifecycleError::Store(e))
    }
}

/// How a replayed invocation compares with its recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Succeeded both times with the same effects.
    Same,
    /// Succeeded both times; the effects differ.
    Different,
    /// Succeeded when recorded, fails on this version.
    NewFailure,
    /// Failed when recorded, succeeds on this version.
    Fixed,
    /// Failed both times.
    StillFailing,
    /// The recording is unreadable or from another format.
    NotReplayable,
}

/// One change between recorded and replayed effects.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Change<T> {
    /// `changed`, `added` (only the replay did it) or `removed` (only the recording).
    pub change: &'static str,
    pub recorded: Option<T>,
    pub replayed: Option<T>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct EffectsDiff {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sends: Vec<Change<RecordedSend>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kv_writes: Vec<Change<RecordedKvWrite>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<Change<RecordedTimer>>,
}

impl EffectsDiff {
    fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.kv_writes.is_empty() && self.timers.is_empty()
    }
}

/// Every difference between two sets of effects. Sends and timer
/// operations are compared in order, kv writes by key.
pub fn diff(recorded: &RecordedEffects, replayed: &RecordedEffects) -> EffectsDiff {
    fn in_order<T: Clone + PartialEq>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<Change<T>> {
        (0..a.len().max(b.len()))
            .filter_map(|i| match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) if same(x, y) => None,
                (Some(x), Some(y)) => {
                    Some(Change { change: "changed", recorded: Some(x.clone()), replayed: Some(y.clone()) })
                }
                (Some(x), None) => Some(Change { change: "removed", recorded: Some(x.clone()), replayed: None }),
                (None, Some(y)) => Some(Change { change: "added", recorded: None, replayed: Some(y.clone()) }),
                (None, None) => None,
            })
            .collect()
    }
    // A send's id is the host's, not the plugin's doing.
    let sends = in_order(&recorded.sends, &replayed.sends, |x, y| {
        (&x.to, &x.from, &x.body, &x.reference, x.scheduled_at)
            == (&y.to, &y.from, &y.body, &y.reference, y.scheduled_at)
    });
    let timers = in_order(&recorded.timers, &replayed.timers, |x, y| x == y);
    let mut kv_writes = Vec::new();
    for w in &recorded.kv_writes {
        match replayed.kv_writes.iter().find(|r| r.key == w.key) {
            Some(r) if r == w => {}
            Some(r) => {
                kv_writes.push(Change { change: "changed", recorded: Some(w.clone()), replayed: Some(r.clone()) })
            }
            None => kv_writes.push(Change { change: "removed", recorded: Some(w.clone()), replayed: None }),
        }
    }
    for r in &replayed.kv_writes {
        if !recorded.kv_writes.iter().any(|w| w.key == r.key) {
            kv_writes.push(Change { change: "added", recorded: None, replayed: Some(r.clone()) });
        }
    }
    EffectsDiff { sends, kv_writes, timers }
}

/// One replayed invocation that did not come out the same.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplayResult {
    pub invocation_id: i64,
    pub event_id: String,
    pub started_at: i64,
    /// The version that ran it when it was recorded.
    pub recorded_version_id: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<EffectsDiff>,
    /// Why the replay failed (or why the recording could not be replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the version asked for that the recording did not hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub replayed: u64,
    pub same: u64,
    pub different: u64,
    pub new_failures: u64,
    pub fixed: u64,
    pub still_failing: u64,
    pub not_replayable: u64,
}

/// A measurement, recorded against replayed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Compared {
    pub recorded: f64,
    pub replayed: f64,
    /// (replayed − recorded) ÷ recorded, in percent; 0 when nothing was recorded.
    pub change_percent: f64,
}

impl Compared {
    fn of(recorded: f64, replayed: f64) -> Self {
        let change_percent = if recorded > 0.0 { (replayed - recorded) / recorded * 100.0 } else { 0.0 };
        Compared { recorded, replayed, change_percent: (change_percent * 10.0).round() / 10.0 }
    }
}

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub totals: Totals,
    /// Mean fuel per invocation, over those that succeeded both times.
    pub fuel_mean: Compared,
    /// Largest memory peak, in bytes.
    pub memory_peak_max: Compared,
    /// Every invocation that did not come out the same (the first
    /// thousand; `results_omitted` counts the rest).
    pub results: Vec<ReplayResult>,
    pub results_omitted: u64,
}

#[derive(Default)]
struct Tally {
    report: Report,
    fuel: (u128, u128, u64),
    memory: (i64, i64),
}

impl Tally {
    fn add(&mut self, result: ReplayResult, fuel: Option<(i64, u64)>, memory: (i64, usize)) {
        let t = &mut self.report.totals;
        t.replayed += 1;
        match result.verdict {
            Verdict::Same => t.same += 1,
            Verdict::Different => t.different += 1,
            Verdict::NewFailure => t.new_failures += 1,
            Verdict::Fixed => t.fixed += 1,
            Verdict::StillFailing => t.still_failing += 1,
            Verdict::NotReplayable => t.not_replayable += 1,
        }
        if let Some((recorded, replayed)) = fuel {
            self.fuel.0 += recorded.max(0) as u128;
            self.fuel.1 += replayed as u128;
            self.fuel.2 += 1;
        }
        self.memory = (self.memory.0.max(memory.0), self.memory.1.max(memory.1 as i64));
        if result.verdict != Verdict::Same {
            if self.report.results.len() < REPORTED_RESULTS {
                self.report.results.push(result);
            } else {
                self.report.results_omitted += 1;
            }
        }
    }

    fn finish(mut self) -> Report {
        let n = self.fuel.2.max(1) as f64;
        self.report.fuel_mean = Compared::of(self.fuel.0 as f64 / n, self.fuel.1 as f64 / n);
        self.report.memory_peak_max = Compared::of(self.memory.0 as f64, self.memory.1 as f64);
        self.report
    }
}

/// Runs `recorded` against `plugin`, and judges the outcome.
async fn replay_one(
    runtime: &Arc<Runtime>,
    sandbox: &Sandbox,
    plugin: &Arc<LoadedPlugin>,
    tenant: &Arc<crate::directory::TenantProfile>,
    recorded: RecordedInvocationRow,
) -> (ReplayResult, Option<(i64, u64)>, (i64, usize)) {
    let mut result = ReplayResult {
        invocation_id: recorded.id,
        event_id: recorded.event_id.clone(),
        started_at: recorded.started_at,
        recorded_version_id: recorded.version_id.clone(),
        verdict: Verdict::NotReplayable,
        diff: None,
        error: None,
        notes: vec![],
    };
    let recording = match Recording::parse(&recorded.recording) {
        Ok(r) => r,
        Err(e) => {
            result.error = Some(e);
            return (result, None, (recorded.memory_peak, 0));
        }
    };
    let (outcome, notes) = sandbox.invoke(runtime, plugin, tenant, &recorded.event_id, recording.clone()).await;
    result.notes = notes;
    let recorded_ok = recorded.outcome == "ok";
    let mut fuel = None;
    result.verdict = match (&recording.effects, &outcome.result) {
        (Some(was), Ok(effects)) if recorded_ok => {
            fuel = Some((recorded.fuel_used, outcome.fuel_used));
            let d = diff(was, &RecordedEffects::of(effects));
            if d.is_empty() {
                Verdict::Same
            } else {
                result.diff = Some(d);
                Verdict::Different
            }
        }
        (_, Ok(effects)) => {
            result.diff = Some(diff(&RecordedEffects::default(), &RecordedEffects::of(effects)));
            Verdict::Fixed
        }
        (_, Err(failure)) => {
            result.error = Some(failure.to_string());
            if recorded_ok { Verdict::NewFailure } else { Verdict::StillFailing }
        }
    };
    (result, fuel, (recorded.memory_peak, outcome.memory_peak))
}

/// The one thread replays' invocations run on, at the lowest CPU priority.
#[derive(Clone)]
pub struct Sandbox {
    handle: tokio::runtime::Handle,
}

impl Sandbox {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Sandbox> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new().name("switchboard-replay".into()).spawn(move || {
            lowest_priority();
            runtime.block_on(std::future::pending::<()>());
        })?;
        Ok(Sandbox { handle })
    }

    /// Runs one recorded invocation against `plugin` on the replay thread.
    async fn invoke(
        &self,
        runtime: &Arc<Runtime>,
        plugin: &Arc<LoadedPlugin>,
        tenant: &Arc<crate::directory::TenantProfile>,
        event_id: &str,
        recording: Recording,
    ) -> (InvocationOutcome, Vec<String>) {
        let reply_to = match &recording.trigger {
            crate::runtime::tape::RecordedTrigger::Inbound { id, from, .. } => Some((id.clone(), from.clone())),
            _ => None,
        };
        let mode = if recording.mode == "test" { crate::secrets::KeyMode::Test } else { crate::secrets::KeyMode::Live };
        let trigger = recording.trigger.trigger();
        let tape = Tape::replay(recording);
        let ctx = InvocationContext {
            tenant: tenant.clone(),
            event_id: event_id.to_string(),
            reply_to,
            mode,
            tape: tape.clone(),
        };
        let (runtime, plugin) = (runtime.clone(), plugin.clone());
        let outcome = self
            .handle
            .spawn(async move { runtime.invoke(&plugin, ctx, trigger).await })
            .await
            .expect("a replayed invocation does not panic");
        (outcome, tape.notes())
    }
}

/// Lowers the calling thread's CPU priority as far as it goes (Linux
/// threads each have their own nice value).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id; no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// What a replay is asked to run.
pub struct ReplayRequest<'a> {
    pub tenant_id: &'a str,
    pub plugin: &'a str,
    pub version: &'a str,
    pub selection: RecordingSelection,
}

/// Checks a replay request and records it as running; the caller runs it
/// with [`run`].
pub async fn start(
    db: &dyn Database,
    limits: &crate::limits::Limits,
    now: i64,
    request: ReplayRequest<'_>,
) -> Result<ReplayRow, ReplayError> {
    let versions = history(db, request.tenant_id, request.plugin).await?;
    let version = versions.iter().find(|v| v.version == request.version).ok_or_else(|| {
        LifecycleError::NoSuchVersion { plugin: request.plugin.to_string(), version: request.version.to_string() }
    })?;
    let running = db.replays(request.tenant_id, &version.plugin_id, 20).await?;
    if let Some(r) = running.iter().find(|r| r.status == "running" && now - r.updated_at < STALE_MS) {
        return Err(ReplayError::Running(r.id.clone()));
    }
    let count = db.count_recorded(request.tenant_id, &version.plugin_id, &request.selection).await?;
    if count == 0 {
        return Err(ReplayError::NothingRecorded);
    }
    if count > limits.replay_invocations_max as i64 {
        return Err(ReplayError::TooMany { count, max: limits.replay_invocations_max });
    }
    let row = ReplayRow {
        id: crate::ids::new_id("rpl"),
        tenant_id: request.tenant_id.to_string(),
        plugin_id: version.plugin_id.clone(),
        version_id: version.version_id.clone(),
        version: version.version.clone(),
        status: "running".into(),
        selection: serde_json::to_string(&request.selection).expect("a selection serializes"),
        total: count,
        done: 0,
        report: None,
        error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    db.create_replay(&row).await?;
    Ok(row)
}

/// A running replay whose progress is older than this was cut short (its
/// node stopped): it shows as `interrupted`.
pub const STALE_MS: i64 = 120_000;

/// Runs a replay [`start`] recorded, writing its progress and its report.
pub async fn run(
    db: Arc<dyn Database>,
    runtime: Arc<Runtime>,
    sandbox: Sandbox,
    tenant: Arc<crate::directory::TenantProfile>,
    clock: crate::clock::Clock,
    mut row: ReplayRow,
) {
    let outcome = replay_all(db.as_ref(), &runtime, &sandbox, &tenant, &clock, &mut row).await;
    row.updated_at = clock.now_ms();
    row.finished_at = Some(row.updated_at);
    match outcome {
        Ok(report) => {
            row.status = "done".into();
            row.report = Some(serde_json::to_string(&report).expect("a report serializes"));
        }
        Err(e) => {
            row.status = "failed".into();
            row.error = Some(e.to_string());
        }
    }
    if let Err(e) = db.update_replay(&row).await {
        tracing::error!(replay = %row.id, error = %e, "could not store a replay's report");
    }
}

async fn replay_all(
    db: &dyn Database,
    runtime: &Arc<Runtime>,
    sandbox: &Sandbox,
    tenant: &Arc<crate::directory::TenantProfile>,
    clock: &crate::clock::Clock,
    row: &mut ReplayRow,
) -> Result<Report, ReplayError> {
    let version = db
        .plugin_version(&row.plugin_id, &row.version_id)
        .await?
        .ok_or_else(|| ReplayError::Load("the version no longer exists".into()))?;
    let plugin = runtime.load(&version).await.map_err(|e| ReplayError::Load(e.to_string()))?;
    let selection: RecordingSelection = serde_json::from_str(&row.selection).unwrap_or_default();
    let mut tally = Tally::default();
    let mut after = 0;
    let mut since_progress = 0;
    while (row.done as usize) < row.total as usize {
        let batch = db.recorded_invocations(&row.tenant_id, &row.plugin_id, &selection, after, BATCH).await?;
        if batch.is_empty() {
            break; // pruned meanwhile
        }
        for recorded in batch {
            after = recorded.id;
            let (result, fuel, memory) = replay_one(runtime, sandbox, &plugin, tenant, recorded).await;
            tally.add(result, fuel, memory);
            row.done += 1;
            since_progress += 1;
            if since_progress >= PROGRESS_EVERY {
                since_progress = 0;
                row.updated_at = clock.now_ms();
                db.update_replay(row).await?;
            }
            if row.done >= row.total {
                break;
            }
        }
    }
    Ok(tally.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tape::Blob;

    fn send(body: &str) -> RecordedSend {
        RecordedSend {
            id: "msg_1".into(),
            to: "+15550001111".into(),
            from: "+15550000000".into(),
            body: body.into(),
            reference: None,
            scheduled_at: None,
        }
    }

    #[test]
    fn the_diff_names_what_changed_and_nothing_else() {
        let kv = |k: &str, v: &str| RecordedKvWrite { key: k.into(), value: Some(Blob(v.as_bytes().to_vec())) };
        let recorded = RecordedEffects {
            sends: vec![send("a"), send("b")],
            kv_writes: vec![kv("x", "1"), kv("y", "2")],
            timers: vec![],
        };
        let mut same = recorded.clone();
        same.sends[0].id = "msg_other".into();
        assert!(diff(&recorded, &same).is_empty(), "ids are the host's");
        let replayed = RecordedEffects {
            sends: vec![send("a"), send("B")],
            kv_writes: vec![kv("y", "3"), kv("z", "4")],
            timers: vec![],
        };
        let d = diff(&recorded, &replayed);
        assert_eq!(d.sends.len(), 1);
        assert_eq!(d.sends[0].change, "changed");
        assert_eq!(d.sends[0].replayed.as_ref().unwrap().body, "B");
        let kv: Vec<(&str, &str)> = d
            .kv_writes
            .iter()
            .map(|c| (c.change, c.recorded.as_ref().or(c.replayed.as_ref()).unwrap().key.as_str()))
            .collect();
        assert_eq!(kv, [("removed", "x"), ("changed", "y"), ("added", "z")]);
    }
}
