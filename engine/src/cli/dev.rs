//! `switchboard dev`: a plugin author's loop in one command. A local engine
//! (a temporary SQLite store, the simulator, a dev tenant with number
//! `+15550000000`) serves its API; the project in the folder is built and
//! deployed, and on every saved change built and deployed again as a dev
//! version (`<version>+dev.N`; an identical build is not a new version).
//! The plugin's log lines, invocations (outcome, fuel, memory, the error
//! of a failure with its event id) and the replies it sends are printed as
//! they happen. Each line typed at the prompt is texted to the bot.

use crate::app::{App, Settings};
use crate::cli::demo::DEMO_NUMBER;
use crate::clock::Clock;
use crate::pipeline::Notification;
use crate::secrets::KeyMode;
use crate::toolchain::{self, Project, Tools};
use anyhow::Context;
use clap::Args;
use notify::Watcher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[derive(Args)]
pub struct DevArgs {
    /// The project folder (holding plugin.toml)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address of the local engine's API
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The number the prompt's texts come from
    #[arg(long, default_value = "+15551234567")]
    from: String,
}

/// Folders a build writes or a package manager fills: changes there are not edits.
const IGNORED: [&str; 6] = ["target", "build", "node_modules", "__pycache__", ".git", ".venv"];

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir).context("cannot resolve the project folder")?;
    Project::open(&dir)?;
    let tools = Tools::from_env();
    let data = tempfile::tempdir().context("cannot create a temporary folder")?;
    let settings = Settings {
        data_dir: data.path().to_path_buf(),
        compile_cache_dir: Some(tools.dir.join("compiled")),
        ..Default::default()
    };
    let app = App::start(settings, Clock::system()).await?;
    let tenant = app.control.create_tenant("Dev").await?;
    app.control.add_number(&tenant, DEMO_NUMBER, "simulator", true).await?;
    let key = app.control.create_api_key(&tenant, KeyMode::Live, Some("dev")).await?;
    let listener = crate::net::listen(args.listen)
        .with_context(|| format!("cannot listen on {} (choose another with --listen)", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(crate::api::run(app.api.clone(), listener, stop.clone().cancelled_owned()));
    println!("Switchboard dev engine on {url}; number {DEMO_NUMBER} on the simulator; API key {key}");

    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| is_edit(&e)) {
            let _ = changed_tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::Recursive)?;

    let mut dev = Dev { app: app.clone(), tenant: tenant.clone(), dir, tools, deployed: None, count: 0 };
    dev.rebuild().await;
    tokio::spawn(stream(app.clone(), tenant.clone()));
    println!("Type a message to text it from {} (Ctrl-D to stop).", args.from);

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let http = reqwest::Client::new();
    let mut reading = true;
    loop {
        tokio::select! {
            Some(()) = changed.recv() => {
                // A save is often several writes: wait for the quiet, then build once.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while changed.try_recv().is_ok() {}
                dev.rebuild().await;
            }
            line = stdin.next_line(), if reading => match line {
                Ok(Some(text)) if !text.trim().is_empty() => {
                    let body = serde_json::json!({ "from": args.from, "to": DEMO_NUMBER, "message": text.trim() });
                    match http.post(format!("{url}/v1/inbound/generic")).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => println!("the engine refused the text: {}", r.text().await.unwrap_or_default()),
                        Err(e) => println!("the engine did not answer: {e}"),
                    }
                }
                Ok(Some(_)) => {}
                // Input closed (Ctrl-D, or none attached): keep watching and serving.
                _ => reading = false,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(watcher);
    stop.cancel();
    let _ = serving.await;
    app.shutdown().await;
    Ok(())
}

/// Whether a file event is an edit of the project's sources.
fn is_edit(event: &notify::Event) -> bool {
    use notify::EventKind;
    matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
        && event.paths.iter().any(|p| !p.components().any(|c| IGNORED.iter().any(|i| c.as_os_str() == *i)))
}

struct Dev {
    app: Arc<App>,
    tenant: String,
    dir: PathBuf,
    tools: Tools,
    /// The hashes of what is deployed: its sources, and its component with
    /// its manifest (a build is not always byte-for-byte reproducible, and
    /// a change to a comment builds the same component).
    deployed: Option<(String, String)>,
    count: u32,
}

impl Dev {
    /// Builds and, when the build differs from what runs, deploys it as
    /// the next dev version. Failures are printed; the last good version
    /// keeps running.
    async fn rebuild(&mut self) {
        if let Err(e) = self.try_rebuild().await {
            println!("build failed: {e:#}");
        }
    }

    async fn try_rebuild(&mut self) -> anyhow::Result<()> {
        let project = Project::open(&self.dir)?;
        let (name, version) = (project.manifest.name.clone(), project.manifest.version.clone());
        let sources = sources_hash(&self.dir)?;
        if self.deployed.as_ref().is_some_and(|(s, _)| *s == sources) {
            println!("{name}: unchanged, still running the last build");
            return Ok(());
        }
        let tools = self.tools.clone();
        let mut manifest = project.manifest.clone();
        let component = tokio::task::spawn_blocking(move || toolchain::build(&project, &tools)).await??;
        let wasm = std::fs::read(&component).with_context(|| format!("cannot read {}", component.display()))?;
        let hash = crate::runtime::component_hash(&[wasm.as_slice(), manifest.to_json().as_bytes()].concat());
        if self.deployed.as_ref().is_some_and(|(_, h)| *h == hash) {
            self.deployed = Some((sources, hash));
            println!("{name}: unchanged, still running the last build");
            return Ok(());
        }
        self.count += 1;
        manifest.version = dev_version(&version, self.count);
        self.app.control.deploy_plugin(&self.tenant, &manifest, &wasm).await?;
        self.deployed = Some((sources, hash));
        println!("deployed {name} version {}", manifest.version);
        Ok(())
    }
}

/// A hash of the project's files (names and contents), build outputs and
/// installed packages left out.
fn sources_hash(dir: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest;
    fn walk(dir: &std::path::Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if IGNORED.iter().any(|i| entry.file_name() == *i) {
                continue;
            }
            if entry.file_type()?.is_dir() { walk(&path, files)? } else { files.push(path) }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files).with_context(|| format!("cannot read {}", dir.display()))?;
    files.sort();
    let mut hasher = sha2::Sha256::new();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        hasher.update(file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// `0.1.0` → `0.1.0+dev.3`, within the 32 characters a version may have.
fn dev_version(version: &str, n: u32) -> String {
    let suffix = format!("+dev.{n}");
    let keep = 32usize.saturating_sub(suffix.len());
    format!("{}{suffix}", &version[..version.len().min(keep)])
}

/// Prints the dev tenant's invocations, log lines and replies as they come.
async fn stream(app: Arc<App>, tenant: String) {
    let mut notifications = app.engine.pipeline.notifications.subscribe();
    let mut seen_invocation = 0i64;
    let mut seen_log = 0i64;
    loop {
        // Woken by any settled event or message status; a missed wake-up
        // is made good by the next one.
        let message = match tokio::time::timeout(Duration::from_millis(500), notifications.recv()).await {
            Ok(Ok(Notification::MessageStatus { message_id, status, .. })) if status == "sent" => Some(message_id),
            _ => None,
        };
        let snapshot = app.engine.directory.snapshot();
        let plugins: Vec<(String, String)> = snapshot
            .plugins
            .values()
            .filter(|p| p.row.tenant_id == tenant)
            .map(|p| (p.row.plugin_id.clone(), p.row.name.clone()))
            .collect();
        for (plugin_id, name) in &plugins {
            print_new(&app, &tenant, plugin_id, name, &mut seen_invocation, &mut seen_log).await;
        }
        if let Some(id) = message
            && let Ok(Some(m)) = app.engine.db.get_message(&tenant, &id).await
            && m.direction == "outbound"
        {
            let plugin = m.plugin.as_deref().unwrap_or("api");
            println!("[{plugin}] {} -> {}: {}", m.from, m.to, m.body);
        }
    }
}

async fn print_new(
    app: &App,
    tenant: &str,
    plugin_id: &str,
    name: &str,
    seen_invocation: &mut i64,
    seen_log: &mut i64,
) {
    let db = &app.engine.db;
    if let Ok(lines) = db.plugin_logs(tenant, plugin_id, 1000, Some(*seen_log)).await {
        for l in lines {
            println!("[{name}] log {:<5} {} (event {})", l.level, l.message, l.event_id);
            *seen_log = (*seen_log).max(l.id);
        }
    }
    if let Ok(mut rows) = db.invocations(tenant, plugin_id, 100, None).await {
        rows.retain(|r| r.id > *seen_invocation);
        rows.reverse();
        for r in rows {
            let error = r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            println!(
                "[{name}] {} {} in {:.2} ms, fuel {}, memory {} KiB (event {}){error}",
                r.trigger,
                r.outcome,
                r.duration_us as f64 / 1000.0,
                r.fuel_used,
                r.memory_peak / 1024,
                r.event_id
            );
            *seen_invocation = (*seen_invocation).max(r.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_versions_fit_the_version_limit() {
        assert_eq!(dev_version("0.1.0", 3), "0.1.0+dev.3");
        let long = "1".repeat(32);
        assert_eq!(dev_version(&long, 12).len(), 32);
    }

    #[test]
    fn build_outputs_are_not_edits() {
        let event = |path: &str| {
            notify::Event::new(notify::EventKind::Modify(notify::event::ModifyKind::Any)).add_path(path.into())
        };
        assert!(is_edit(&event("/p/plugin.js")));
        assert!(!is_edit(&event("/p/build/p.wasm")));
        assert!(!is_edit(&event("/p/node_modules/x/index.js")));
    }
}
