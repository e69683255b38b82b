//! Plugin developers' commands: `plugin new`, `build` and `wit` on the
//! local disk; over the tenant API `plugin deploy`, `list`, `rollback`,
//! `disable`, `enable`, `logs [--follow]`, `replay`, and the read-only looks of
//! `plugin_state` (`kv`, `timers`, `events`) with `retry`.

use super::client::{Client, Server, TenantAuth, segment};
use super::plugin_state;
use crate::manifest::Manifest;
use crate::toolchain::{self, Language, Project, Tools};
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    auth: TenantAuth,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a plugin project: a keyword bot with kv, a timer, a test and a README.
    New {
        /// The plugin's name (lower-case letters, digits, dashes)
        name: String,
        #[arg(long, value_enum)]
        lang: Language,
        /// Where to write it (default: ./NAME)
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the project's component with its language's pinned toolchain.
    Build {
        /// The project folder (holding plugin.toml)
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the WIT package plugins are built against (or write it into a folder).
    Wit {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upload a component with its manifest; the new version is active at
    /// once (or, with --stage, stored beside the active one).
    Deploy {
        /// The component (default: the manifest's `component`), or the
        /// manifest itself (a `.toml` path)
        wasm: Option<PathBuf>,
        #[arg(long, default_value = "plugin.toml")]
        manifest: PathBuf,
        /// Store the version without activating it (for a replay, a canary
        /// or a later `rollback --to`)
        #[arg(long, conflicts_with = "canary")]
        stage: bool,
        /// Deploy as a canary taking this percent (1–99) of the plugin's
        /// customers; it is rolled back by itself when it does worse
        #[arg(long)]
        canary: Option<u8>,
        /// With --canary: promote it by itself this long after it starts,
        /// if healthy (30m, 24h); otherwise wait for `plugin promote`
        #[arg(long, requires = "canary")]
        promote_after: Option<String>,
    },
    /// Make a plugin's canary its active version.
    Promote { name: String },
    /// Run recorded invocations again against another version and report
    /// what would change: nothing is sent, written or fetched.
    Replay {
        name: String,
        /// The version to replay against (deployed or staged)
        #[arg(long)]
        version: String,
        /// Invocations of the last while: 90m, 24h, 7d (default 24h)
        #[arg(long, conflicts_with = "events")]
        since: Option<String>,
        /// Or the invocations of these events
        #[arg(long, num_args = 1..)]
        events: Vec<String>,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        /// Exit non-zero when any invocation comes out different or newly failing
        #[arg(long)]
        check: bool,
    },
    /// List the tenant's plugins.
    List,
    /// Switch a plugin back to an earlier version.
    Rollback {
        name: String,
        /// The version to switch to (default: the one before the active one)
        #[arg(long, conflicts_with = "canary")]
        to: Option<String>,
        /// Roll back the plugin's canary instead (the active version stays)
        #[arg(long)]
        canary: bool,
    },
    /// Stop routing events to a plugin.
    Disable { name: String },
    /// Route events to a plugin again (also lifts a suspension).
    Enable { name: String },
    /// Print a plugin's log lines (or invocation records).
    Logs {
        name: String,
        /// Keep printing new lines as they are written
        #[arg(long, short)]
        follow: bool,
        /// Print invocation records (trigger, duration, fuel, memory, outcome) instead
        #[arg(long)]
        invocations: bool,
        /// Lines to show first
        #[arg(long, default_value_t = 20)]
        tail: u32,
    },
    /// Print a plugin's kv entries (read-only).
    Kv {
        name: String,
        /// Only keys starting with this
        #[arg(long)]
        prefix: Option<String>,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        /// At most this many entries
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Print a plugin's pending timers, soonest first.
    Timers {
        name: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Print a plugin's dead-lettered events (or its pending ones).
    Events {
        name: String,
        /// Pending events instead of dead letters
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Run a dead-lettered event again (by default on the version it failed on).
    Retry {
        name: String,
        event_id: String,
        /// A deployed version to run instead, or `active`
        #[arg(long)]
        version: Option<String>,
    },
}

pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::New { name, lang, dir } => return new(&name, lang, dir),
        PluginCommand::Build { dir } => return build(&dir).await,
        PluginCommand::Wit { out } => return wit(out),
        _ => {}
    }
    let client = Client::new(&args.server, args.auth.key()?);
    match args.command {
        PluginCommand::New { .. } | PluginCommand::Build { .. } | PluginCommand::Wit { .. } => {
            unreachable!("handled above")
        }
        PluginCommand::Deploy { wasm, manifest, stage, canary, promote_after } => {
            // `deploy ./plugin.toml` names the manifest.
            let (wasm, manifest) = match wasm {
                Some(p) if p.extension().is_some_and(|e| e == "toml") => (None, p),
                wasm => (wasm, manifest),
            };
            let options = DeployOptions { stage, canary, promote_after };
            deploy(&client, wasm, &manifest, options).await
        }
        PluginCommand::Promote { name } => {
            let p = client.post(&format!("/v1/plugins/{}/canary/promote", segment(&name)), json!({})).await?;
            println!("{name} is at version {}", p["version"].as_str().unwrap_or("?"));
            Ok(())
        }
        PluginCommand::Rollback { name, canary: true, .. } => {
            let p = client.post(&format!("/v1/plugins/{}/canary/rollback", segment(&name)), json!({})).await?;
            println!(
                "{name}'s canary is rolled back; version {} takes every event",
                p["version"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        PluginCommand::Replay { name, version, since, events, json, check } => {
            let args = super::replay::ReplayArgs { name, version, since, events, json, check };
            super::replay::replay(&client, args).await
        }
        PluginCommand::List => {
            let list = client.get("/v1/plugins").await?;
            println!("{:<24} {:<12} {:<10} TRIGGERS", "NAME", "VERSION", "STATUS");
            for p in list["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<12} {:<10} {}",
                    p["name"].as_str().unwrap_or(""),
                    p["version"].as_str().unwrap_or(""),
                    p["status"].as_str().unwrap_or(""),
                    triggers(p)
                );
                if let Some(reason) = p["status_reason"].as_str() {
                    println!("  {reason}");
                }
            }
            Ok(())
        }
        PluginCommand::Rollback { name, to, canary: false } => {
            let p = client.post(&format!("/v1/plugins/{}/rollback", segment(&name)), json!({ "version": to })).await?;
            println!("{name} is at version {}", p["version"].as_str().unwrap_or("?"));
            Ok(())
        }
        PluginCommand::Disable { name } => {
            client.post(&format!("/v1/plugins/{}/disable", segment(&name)), json!({})).await?;
            println!("{name} disabled");
            Ok(())
        }
        PluginCommand::Enable { name } => {
            client.post(&format!("/v1/plugins/{}/enable", segment(&name)), json!({})).await?;
            println!("{name} enabled");
            Ok(())
        }
        PluginCommand::Logs { name, follow, invocations, tail } => {
            if invocations {
                print_invocations(&client, &name, tail).await
            } else {
                logs(&client, &name, follow, tail).await
            }
        }
        PluginCommand::Kv { name, prefix, json, max } => {
            plugin_state::kv(&client, &name, prefix.as_deref(), json, max).await
        }
        PluginCommand::Timers { name, json, max } => plugin_state::timers(&client, &name, json, max).await,
        PluginCommand::Events { name, pending, json, max } => {
            plugin_state::events(&client, &name, pending, json, max).await
        }
        PluginCommand::Retry { name, event_id, version } => {
            plugin_state::retry(&client, &name, &event_id, version.as_deref()).await
        }
    }
}

fn new(name: &str, lang: Language, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = toolchain::templates::new_project(&dir, name, lang)?;
    println!("wrote a {} plugin in {}: {}", lang.name(), dir.display(), files.join(", "));
    println!("next: cd {} && switchboard plugin build", dir.display());
    Ok(())
}

async fn build(dir: &std::path::Path) -> anyhow::Result<()> {
    let project = Project::open(dir)?;
    let tools = Tools::from_env();
    // The toolchains are separate processes; this thread only waits.
    let component = tokio::task::spawn_blocking(move || toolchain::build(&project, &tools)).await??;
    let size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
    println!("built {} ({:.1} MB)", component.display(), size as f64 / 1e6);
    Ok(())
}

fn wit(out: Option<PathBuf>) -> anyhow::Result<()> {
    match out {
        None => print!("{}", toolchain::WIT),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let file = dir.join("plugin.wit");
            std::fs::write(&file, toolchain::WIT).with_context(|| format!("cannot write {}", file.display()))?;
            println!("wrote {}", file.display());
        }
    }
    Ok(())
}

fn triggers(p: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        p[k].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
    };
    let mut parts = Vec::new();
    if !list("keywords").is_empty() {
        parts.push(format!("keywords {}", list("keywords").join(",")));
    }
    if p["catch_all"].as_bool() == Some(true) {
        parts.push("catch-all".into());
    }
    if !list("events").is_empty() {
        parts.push(format!("events {}", list("events").join(",")));
    }
    for c in list("cron") {
        parts.push(format!("cron \"{c}\""));
    }
    parts.join("; ")
}

struct DeployOptions {
    stage: bool,
    canary: Option<u8>,
    promote_after: Option<String>,
}

async fn deploy(
    client: &Client,
    wasm: Option<PathBuf>,
    manifest_path: &PathBuf,
    options: DeployOptions,
) -> anyhow::Result<()> {
    let stage = options.stage;
    let manifest_text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read manifest {}", manifest_path.display()))?;
    // Checked here too, so mistakes are reported before the upload.
    let manifest = Manifest::from_toml(&manifest_text)?;
    let wasm_path = match wasm {
        Some(p) => p,
        None => manifest
            .component_path(manifest_path)
            .ok_or_else(|| anyhow!("give the component's path, or set `component` in the manifest"))?,
    };
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("cannot read component {}", wasm_path.display()))?;
    let mut form = reqwest::multipart::Form::new().text("manifest", manifest_text).part(
        "component",
        reqwest::multipart::Part::bytes(wasm).file_name("plugin.wasm").mime_str("application/wasm")?,
    );
    if stage {
        form = form.text("activate", "false");
    }
    if let Some(percent) = options.canary {
        form = form.text("canary", percent.to_string());
    }
    if let Some(after) = &options.promote_after {
        form = form.text("canary_promote_after", after.clone());
    }
    let p = client.send(client.http().post(client.url("/v1/plugins")).multipart(form)).await?;
    let (name, version) = (p["name"].as_str().unwrap_or(""), p["version"].as_str().unwrap_or(""));
    if let Some(percent) = options.canary {
        println!(
            "{name} version {} is a canary for {percent}% of customers; version {version} takes the rest",
            manifest.version
        );
    } else if stage {
        println!("staged {name} version {}; version {version} stays active", manifest.version);
    } else if p["unchanged"] == true {
        println!("{name} version {version} is already deployed and active, byte for byte: nothing changed");
    } else {
        println!("deployed {name} version {version}");
    }
    for name in p["ungranted_imports"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        println!(
            "note: the component imports {name:?}, which the manifest does not grant: its calls return access-denied"
        );
    }
    Ok(())
}

fn print_log(line: &Value) {
    println!(
        "{} {:<5} {} [{}]",
        line["at"].as_str().unwrap_or(""),
        line["level"].as_str().unwrap_or(""),
        line["message"].as_str().unwrap_or(""),
        line["event_id"].as_str().unwrap_or("")
    );
}

async fn logs(client: &Client, name: &str, follow: bool, tail: u32) -> anyhow::Result<()> {
    let base = format!("/v1/plugins/{}/logs", segment(name));
    let recent = client.get(&format!("{base}?limit={}", tail.clamp(1, 1000))).await?;
    let mut lines: Vec<Value> = recent["data"].as_array().cloned().unwrap_or_default();
    lines.reverse();
    let mut last = lines.last().and_then(|l| l["id"].as_i64()).unwrap_or(0);
    for line in &lines {
        print_log(line);
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let new = client.get(&format!("{base}?after={last}&limit=1000")).await?;
        for line in new["data"].as_array().into_iter().flatten() {
            print_log(line);
            last = line["id"].as_i64().unwrap_or(last);
        }
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}

async fn print_invocations(client: &Client, name: &str, tail: u32) -> anyhow::Result<()> {
    let list = client.get(&format!("/v1/plugins/{}/invocations?limit={}", segment(name), tail.clamp(1, 1000))).await?;
    let mut rows: Vec<Value> = list["data"].as_array().cloned().unwrap_or_default();
    rows.reverse();
    let width = |field: &str, header: &str| {
        rows.iter().filter_map(|r| r[field].as_str()).map(str::len).chain([header.len()]).max().unwrap_or(0)
    };
    let (w_started, w_version, w_event) =
        (width("started_at", "STARTED"), width("version", "VERSION"), width("event_id", "EVENT"));
    println!(
        "{:<w_started$} {:<w_version$} {:<8} {:<w_event$} {:>10} {:>12} {:>10}  OUTCOME",
        "STARTED", "VERSION", "TRIGGER", "EVENT", "MS", "FUEL", "MEMORY"
    );
    for r in rows.iter() {
        let error = r["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
        println!(
            "{:<w_started$} {:<w_version$} {:<8} {:<w_event$} {:>10.2} {:>12} {:>10}  {}{error}",
            r["started_at"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or(""),
            r["trigger"].as_str().unwrap_or(""),
            r["event_id"].as_str().unwrap_or(""),
            r["duration_ms"].as_f64().unwrap_or(0.0),
            r["fuel_used"].as_i64().unwrap_or(0),
            r["memory_peak_bytes"].as_i64().unwrap_or(0),
            r["outcome"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
