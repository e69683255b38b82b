//! `invoke`: one plugin invocation alone — a fresh instance of the
//! keyword-reply component and its `on-inbound`, host calls included
//! (config, the reply's validation) — against the same logic as a native
//! Rust function. Then the visit bot of `examples/` (kv, a timer, a reply)
//! written in Rust, JavaScript and Python, each invoked the same way.

use super::load::quantile;
use super::{Env, Figure, NUMBER, Options, customer};
use crate::runtime::bindings::InboundMessage;
use crate::runtime::{InvocationContext, Trigger};
use crate::sms::encoding::{self, EncodingChoice};
use std::collections::HashMap;
use std::time::Instant;

#[derive(serde::Deserialize)]
struct Config {
    #[serde(default)]
    replies: HashMap<String, String>,
    #[serde(default)]
    default_reply: Option<String>,
}

/// What the keyword-reply plugin and the host do for one message, natively:
/// read the configuration, pick the reply, validate and measure it.
fn native_keyword_reply(config_json: &str, message: &InboundMessage) -> Option<(String, String, usize)> {
    let config: Config = serde_json::from_str(config_json).ok()?;
    let word = crate::sms::keyword_of(&message.body);
    let reply = config
        .replies
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&word))
        .map(|(_, r)| r.clone())
        .or(config.default_reply)?;
    let to = crate::phone::normalize(&message.from, None).ok()?;
    let segments = encoding::analyze(&reply, EncodingChoice::Auto).ok()?.segments;
    Some((to, reply, segments))
}

fn message(i: usize) -> InboundMessage {
    InboundMessage {
        id: format!("msg_{i}"),
        from: customer(i),
        to: NUMBER.to_string(),
        body: "HOURS".to_string(),
        received_at: 0,
    }
}

/// The keyword-reply plugin loaded in an engine, ready to invoke.
pub struct Bench {
    env: Env,
    plugin: std::sync::Arc<crate::runtime::LoadedPlugin>,
    tenant: std::sync::Arc<crate::directory::TenantProfile>,
    config_json: String,
}

impl Bench {
    pub async fn start(opts: &Options) -> anyhow::Result<Bench> {
        let env = Env::start(opts, &["keyword-reply"]).await?;
        let snapshot = env.app.engine.directory.snapshot();
        let entry = snapshot
            .plugins
            .values()
            .find(|p| p.row.name == "keyword-reply")
            .ok_or_else(|| anyhow::anyhow!("keyword-reply is not deployed"))?
            .clone();
        let tenant = snapshot.tenants[&env.tenant].clone();
        let plugin = env.app.engine.runtime.load(&entry.row).await?;
        Ok(Bench { env, plugin, tenant, config_json: entry.row.config_json.clone() })
    }

    /// One invocation (fresh instance, `on-inbound`) for message `i`.
    pub async fn invoke_once(&self, i: usize) -> anyhow::Result<()> {
        let trigger = Trigger::Inbound(message(i));
        let ctx = InvocationContext {
            tenant: self.tenant.clone(),
            event_id: format!("evt_{i}"),
            reply_to: None,
            mode: crate::secrets::KeyMode::Live,
            tape: crate::runtime::tape::Tape::live(&self.env.app.engine.limits, &trigger, "live"),
        };
        let outcome = self.env.app.engine.runtime.invoke(&self.plugin, ctx, trigger).await;
        let effects = outcome.result.map_err(|e| anyhow::anyhow!("invocation failed: {e}"))?;
        anyhow::ensure!(effects.sends.len() == 1, "the plugin did not reply");
        Ok(())
    }

    pub async fn stop(self) {
        self.env.stop().await;
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let bench = Bench::start(opts).await?;
    let n = opts.messages;
    let mut wasm_us = Vec::with_capacity(n);
    let mut cpu_before = None;
    for i in 0..n + 1000 {
        if i == 1000 {
            cpu_before = super::cpu::process(std::process::id());
        }
        let started = Instant::now();
        bench.invoke_once(i).await?;
        if i >= 1000 {
            wasm_us.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    // The whole process: here it only invokes (no load generator runs).
    let invocations_cpu = super::cpu::process(std::process::id())
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .unwrap_or_default();
    let mut native_us = Vec::with_capacity(n);
    for i in 0..n + 1000 {
        let m = message(i);
        let started = Instant::now();
        let reply = std::hint::black_box(native_keyword_reply(&bench.config_json, std::hint::black_box(&m)));
        let took = started.elapsed();
        anyhow::ensure!(reply.is_some(), "no native reply");
        if i >= 1000 {
            native_us.push(took.as_secs_f64() * 1e6);
        }
    }
    let languages = visit_bots(&bench, opts).await;
    bench.stop().await;

    let wasm_median = quantile(&mut wasm_us, 0.5);
    let native_median = quantile(&mut native_us, 0.5);
    let mut figures = vec![
        Figure::new("invoke", "wasm_p50", wasm_median, "us"),
        Figure::new("invoke", "wasm_p99", quantile(&mut wasm_us, 0.99), "us"),
        Figure::new("invoke", "native_p50", native_median, "us"),
        Figure::new("invoke", "wasm_to_native", wasm_median / native_median, "ratio"),
        Figure::new("invoke", "cpu_per_invocation", super::cpu::per_item_us(invocations_cpu, n), "us"),
    ];
    figures.extend(languages?);
    Ok(figures)
}

/// The visit bot per language: (figure label, folder under `examples/`).
const VISIT_BOTS: [(&str, &str); 3] = [("rust", "visit-bot-rs"), ("js", "visit-bot-js"), ("python", "visit-bot-py")];

/// Each visit bot deployed for a tenant of its own (they claim the same
/// keyword) and invoked with `VISIT`: kv increment, a reply, a timer.
/// A bot whose component is not built is left out, with a note.
async fn visit_bots(bench: &Bench, opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let app = &bench.env.app;
    let examples = opts.plugins_dir.join("../examples");
    let mut figures = Vec::new();
    for (i, (language, folder)) in VISIT_BOTS.iter().enumerate() {
        let path = examples.join(folder).join("plugin.toml");
        let manifest = crate::manifest::Manifest::from_file(&path)?;
        let component = manifest.component_path(&path).unwrap_or_default();
        let Ok(wasm) = std::fs::read(&component) else {
            eprintln!("invoke: {} is not built (make plugins guests); {language} left out", component.display());
            continue;
        };
        let tenant = app.control.create_tenant(&format!("Visit bot ({language})")).await?;
        let number = format!("+1555001{i:04}");
        app.control.add_number(&tenant, &number, "fake", true).await?;
        app.control.credit(&tenant, i64::MAX / 4, "benchmark").await?;
        let deployed = app.control.deploy_plugin(&tenant, &manifest, &wasm).await?;
        let snapshot = app.engine.directory.snapshot();
        let row = &snapshot.plugins[&deployed.plugin_id].row;
        let plugin = app.engine.runtime.load(row).await?;
        let profile = snapshot.tenants[&tenant].clone();
        // Interpreted guests take milliseconds: fewer of them.
        let (warm, count) = if *language == "rust" { (1000, opts.messages) } else { (20, opts.messages.min(500)) };
        let mut took_us = Vec::with_capacity(count);
        let (mut fuel, mut memory) = (0, 0);
        let mut cpu_before = None;
        for k in 0..warm + count {
            if k == warm {
                cpu_before = super::cpu::process(std::process::id());
            }
            let message = InboundMessage {
                id: format!("msg_{k}"),
                from: customer(k),
                to: number.clone(),
                body: "VISIT".into(),
                received_at: 0,
            };
            let ctx = InvocationContext {
                tenant: profile.clone(),
                event_id: format!("evt_{k}"),
                reply_to: Some((message.id.clone(), message.from.clone())),
                mode: crate::secrets::KeyMode::Live,
                tape: crate::runtime::tape::Tape::live(&app.engine.limits, &Trigger::Inbound(message.clone()), "live"),
            };
            let started = Instant::now();
            let outcome = app.engine.runtime.invoke(&plugin, ctx, Trigger::Inbound(message)).await;
            let elapsed = started.elapsed();
            let effects = outcome.result.map_err(|e| anyhow::anyhow!("{folder}: invocation failed: {e}"))?;
            anyhow::ensure!(effects.sends.len() == 1 && effects.timer_ops.len() == 1, "{folder} did not answer");
            if k >= warm {
                took_us.push(elapsed.as_secs_f64() * 1e6);
                (fuel, memory) = (outcome.fuel_used, outcome.memory_peak);
            }
        }
        let cpu = super::cpu::process(std::process::id())
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before))
            .unwrap_or_default();
        figures.extend([
            Figure::new("invoke", &format!("visit_{language}_p50"), quantile(&mut took_us, 0.5), "us"),
            Figure::new("invoke", &format!("visit_{language}_p99"), quantile(&mut took_us, 0.99), "us"),
            Figure::new("invoke", &format!("visit_{language}_cpu"), super::cpu::per_item_us(cpu, count), "us"),
            Figure::new("invoke", &format!("visit_{language}_fuel"), fuel as f64, "fuel"),
            Figure::new("invoke", &format!("visit_{language}_memory"), memory as f64 / 1048576.0, "MiB"),
            Figure::new("invoke", &format!("visit_{language}_component"), wasm.len() as f64 / 1e6, "MB"),
        ]);
    }
    Ok(figures)
}
