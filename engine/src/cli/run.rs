//! `switchboard run`: one event through a component in the real sandbox,
//! with no server. The component is deployed (so validated exactly as a
//! deploy would) into a throwaway engine on a temporary SQLite store, the
//! kv is seeded, and the trigger is invoked once. What it would commit
//! (sends, kv writes, timers), its log lines, fuel and peak memory are
//! printed, and nothing is committed or sent. Usable from any language's
//! tests with `--json`.

use crate::app::{App, Settings};
use crate::clock::Clock;
use crate::manifest::{Capability, Manifest};
use crate::runtime::bindings::InboundMessage;
use crate::runtime::{InvocationContext, InvocationOutcome, Trigger};
use crate::store::TimerOp;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("trigger").required(true).args(["inbound", "event", "timer"])))]
pub struct RunArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// Its manifest (default: plugin.toml beside it or in this folder, else
    /// every capability but http, and no configuration)
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// An inbound SMS, as SENDER:TEXT (`+15551234567:VISIT`)
    #[arg(long)]
    inbound: Option<String>,
    /// A business event: NAME, with --payload
    #[arg(long)]
    event: Option<String>,
    /// The event's JSON payload
    #[arg(long, default_value = "{}", requires = "event")]
    payload: String,
    /// A due timer, with this payload
    #[arg(long)]
    timer: Option<String>,
    /// kv before the run: KEY=VALUE (repeatable), or a JSON file of
    /// {"key": "value"}
    #[arg(long)]
    kv: Vec<String>,
    /// The configuration (a JSON file), instead of the manifest's [config]
    #[arg(long)]
    config: Option<PathBuf>,
    /// The instant the plugin sees (RFC 3339; default: now)
    #[arg(long)]
    at: Option<String>,
    /// The tenant's number the SMS arrived on
    #[arg(long, default_value = "+15550000000")]
    to: String,
    /// Print one JSON document
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&args.component)
        .with_context(|| format!("cannot read component {}", args.component.display()))?;
    let mut manifest = manifest(&args)?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let config: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        manifest.config = Some(config);
    }
    let now = match &args.at {
        Some(at) => chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|e| anyhow!("--at {at:?} is not an RFC 3339 instant: {e}"))?
            .timestamp_millis(),
        None => Clock::system().now_ms(),
    };
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        // Nothing runs on its own: the one invocation is made here.
        process_events: false,
        // Compiled once per component, across runs.
        compile_cache_dir: Some(crate::toolchain::Tools::from_env().dir.join("compiled")),
        ..Default::default()
    };
    let app = App::start(settings, Clock::frozen(now)).await?;
    let outcome = invoke(&app, &args, &manifest, &wasm, now).await;
    app.shutdown().await;
    let (outcome, tenant_number) = outcome?;
    let report = report(&outcome, now, &tenant_number);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    match &outcome.result {
        Ok(_) => Ok(()),
        Err(failure) => Err(anyhow!("{} failed: {failure}", manifest.name)),
    }
}

/// The manifest given, found, or the permissive default.
fn manifest(args: &RunArgs) -> anyhow::Result<Manifest> {
    let beside = args.component.parent().map(|p| p.join("plugin.toml"));
    let path = args
        .manifest
        .clone()
        .or_else(|| [beside, Some(PathBuf::from("plugin.toml"))].into_iter().flatten().find(|p| p.is_file()));
    match path {
        Some(path) => Manifest::from_file(&path).map_err(|e| anyhow!("{}: {e}", path.display())),
        None => {
            let mut manifest = Manifest::from_toml("name = \"plugin\"\nversion = \"0.0.0\"")?;
            manifest.capabilities = vec![Capability::Messaging, Capability::Kv, Capability::Timers, Capability::Config];
            Ok(manifest)
        }
    }
}

async fn invoke(
    app: &App,
    args: &RunArgs,
    manifest: &Manifest,
    wasm: &[u8],
    now: i64,
) -> anyhow::Result<(InvocationOutcome, String)> {
    let tenant = app.control.create_tenant("run").await?;
    let number = app.control.add_number(&tenant, &args.to, "sandbox", true).await?;
    app.control.credit(&tenant, 1_000_000_000, "switchboard run").await?;
    let deployed = app.control.deploy_plugin(&tenant, manifest, wasm).await?;
    for (key, value) in kv_seed(&args.kv)? {
        app.engine.db.kv_put(&tenant, &deployed.plugin_id, &key, value.as_bytes(), now).await?;
    }
    let snapshot = app.engine.directory.snapshot();
    let entry = snapshot.plugins.get(&deployed.plugin_id).ok_or_else(|| anyhow!("the plugin did not deploy"))?;
    let profile = snapshot.tenants.get(&tenant).ok_or_else(|| anyhow!("no tenant"))?.clone();
    let plugin = app.engine.runtime.load(&entry.row).await?;
    let (trigger, reply_to) = trigger(args, &number, now)?;
    let ctx = InvocationContext {
        tenant: profile,
        event_id: "evt_run".into(),
        reply_to,
        mode: crate::secrets::KeyMode::Live,
        tape: crate::runtime::tape::Tape::off(),
    };
    Ok((app.engine.runtime.invoke(&plugin, ctx, trigger).await, number))
}

fn trigger(args: &RunArgs, number: &str, now: i64) -> anyhow::Result<(Trigger, Option<(String, String)>)> {
    if let Some(inbound) = &args.inbound {
        let (from, body) = inbound
            .split_once(':')
            .ok_or_else(|| anyhow!("--inbound {inbound:?}: give SENDER:TEXT, like +15551234567:VISIT"))?;
        let from = crate::phone::normalize(from, None).map_err(|e| anyhow!("--inbound sender {from:?}: {e}"))?;
        let message = InboundMessage {
            id: "msg_run".into(),
            from: from.clone(),
            to: number.to_string(),
            body: body.to_string(),
            received_at: now,
        };
        return Ok((Trigger::Inbound(message), Some(("msg_run".into(), from))));
    }
    if let Some(name) = &args.event {
        serde_json::from_str::<Value>(&args.payload).map_err(|e| anyhow!("--payload is not JSON: {e}"))?;
        return Ok((Trigger::Event { name: name.clone(), payload: args.payload.clone() }, None));
    }
    match &args.timer {
        Some(payload) => Ok((Trigger::Timer { payload: payload.clone() }, None)),
        None => bail!("give --inbound, --event or --timer"),
    }
}

/// `KEY=VALUE` pairs, or JSON files of string values.
fn kv_seed(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut seed = Vec::new();
    for item in items {
        if let Some((key, value)) = item.split_once('=') {
            seed.push((key.to_string(), value.to_string()));
            continue;
        }
        let path = Path::new(item);
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("--kv {item:?} is neither KEY=VALUE nor a readable JSON file: {e}"))?;
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(&text).with_context(|| format!("{item}: give a JSON object of keys to values"))?;
        for (key, value) in object {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            seed.push((key, value));
        }
    }
    Ok(seed)
}

fn report(outcome: &InvocationOutcome, now: i64, number: &str) -> Value {
    let at = crate::clock::to_rfc3339;
    let (status, error) = match &outcome.result {
        Ok(_) => ("ok", None),
        Err(failure) => (failure.outcome(), Some(failure.to_string())),
    };
    let effects = outcome.result.as_ref().ok();
    let sends: Vec<Value> = effects
        .map(|e| {
            e.sends
                .iter()
                .map(|m| {
                    json!({ "to": m.to, "from": m.from, "body": m.body, "segments": m.segments,
                        "reference": m.reference, "schedule_at": m.scheduled_at.map(at) })
                })
                .collect()
        })
        .unwrap_or_default();
    let kv_writes: Vec<Value> = effects
        .map(|e| {
            let mut writes: Vec<Value> = e
                .kv_writes
                .iter()
                .map(|(key, value)| match value {
                    Some(v) => json!({ "key": key, "value": String::from_utf8_lossy(v) }),
                    None => json!({ "key": key, "deleted": true }),
                })
                .collect();
            writes.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
            writes
        })
        .unwrap_or_default();
    let timers: Vec<Value> = effects
        .map(|e| {
            e.timer_ops
                .iter()
                .map(|op| match op {
                    TimerOp::Schedule { key, due_at, payload, .. } => {
                        json!({ "key": key, "at": at(*due_at), "in_ms": due_at - now, "payload": payload })
                    }
                    TimerOp::Cancel { key } => json!({ "key": key, "cancelled": true }),
                })
                .collect()
        })
        .unwrap_or_default();
    let logs: Vec<Value> = outcome.logs.iter().map(|l| json!({ "level": l.level, "message": l.message })).collect();
    json!({
        "outcome": status,
        "error": error,
        "number": number,
        "sends": sends,
        "kv_writes": kv_writes,
        "timers": timers,
        "logs": logs,
        "fuel_used": outcome.fuel_used,
        "memory_peak_bytes": outcome.memory_peak,
        "duration_ms": outcome.duration.as_secs_f64() * 1e3,
    })
}

fn print_text(report: &Value) {
    let list = |k: &str| report[k].as_array().cloned().unwrap_or_default();
    println!("outcome: {}", report["outcome"].as_str().unwrap_or(""));
    if let Some(error) = report["error"].as_str() {
        println!("error: {error}");
    }
    for s in list("sends") {
        println!(
            "send {} -> {}: {}",
            s["from"].as_str().unwrap_or(""),
            s["to"].as_str().unwrap_or(""),
            s["body"].as_str().unwrap_or("")
        );
    }
    for w in list("kv_writes") {
        match w["value"].as_str() {
            Some(v) => println!("kv set {} = {v}", w["key"].as_str().unwrap_or("")),
            None => println!("kv delete {}", w["key"].as_str().unwrap_or("")),
        }
    }
    for t in list("timers") {
        match t["at"].as_str() {
            Some(at) => {
                println!("timer {} at {at}: {}", t["key"].as_str().unwrap_or(""), t["payload"].as_str().unwrap_or(""))
            }
            None => println!("timer {} cancelled", t["key"].as_str().unwrap_or("")),
        }
    }
    for l in list("logs") {
        println!("log {:<5} {}", l["level"].as_str().unwrap_or(""), l["message"].as_str().unwrap_or(""));
    }
    println!(
        "fuel {} · peak memory {} bytes · {:.2} ms",
        report["fuel_used"],
        report["memory_peak_bytes"],
        report["duration_ms"].as_f64().unwrap_or(0.0)
    );
}
