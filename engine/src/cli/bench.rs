//! `switchboard bench <scenario>`: see [`crate::bench`].

use crate::bench::{self, Figure, Options, traffic::Kind};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// Inbound webhooks → keyword plugin → replies at a fake carrier
    Keyword,
    /// POST /v1/messages → a fake carrier
    Send,
    /// One plugin invocation in a fresh instance, against native code
    Invoke,
    /// 1,000 tenants × 3 plugins: memory, startup, spread traffic
    Tenants,
    /// 100,000 reminders due at one instant
    Timers,
    /// Keyword throughput with 1, 2 and 3 nodes on one PostgreSQL
    Cluster,
    /// Kannel's keyword auto-reply on this machine (apt-get install kannel), for comparison
    Kannel,
}

#[derive(Args)]
pub struct BenchArgs {
    scenario: Scenario,
    /// Messages (events, invocations) per run [default: 20,000; timers 100,000]
    #[arg(long)]
    messages: Option<usize>,
    /// Load generator connections
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Tenants for the `tenants` scenario
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Runs, each in a fresh process; the figures reported are the medians
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Where the plugins' manifests are (built components next to them)
    #[arg(long, default_value = "plugins")]
    plugins_dir: PathBuf,
    /// For `cluster`: a PostgreSQL server whose user may create databases
    /// [default: postgres://postgres@127.0.0.1:5432/test]
    #[arg(long)]
    database_url: Option<String>,
    /// Export traces at this sampling ratio (0 to 1) to an OTLP/HTTP
    /// collector inside the bench process, which takes and drops them:
    /// what tracing costs
    #[arg(long)]
    trace_sample_ratio: Option<f64>,
    /// Run with `limits.record_invocations` off: what recording costs
    #[arg(long)]
    no_recording: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.runs > 1 {
        super::init_logging(None);
        return in_separate_processes(&args);
    }
    let traces = match args.trace_sample_ratio {
        Some(ratio) => Some(start_traces(ratio).await?),
        None => None,
    };
    super::init_logging(traces.as_ref().map(|(export, _)| export));
    let default_messages = match args.scenario {
        Scenario::Timers => 100_000,
        _ => 20_000,
    };
    let opts = Options {
        messages: args.messages.unwrap_or(default_messages).max(1),
        connections: args.connections.max(1),
        plugins_dir: args.plugins_dir,
        tenants: args.tenants.max(1),
        record_invocations: !args.no_recording,
    };
    let figures = match args.scenario {
        Scenario::Keyword => bench::traffic::run(Kind::Keyword, &opts).await?,
        Scenario::Send => bench::traffic::run(Kind::Send, &opts).await?,
        Scenario::Invoke => bench::invoke::run(&opts).await?,
        Scenario::Tenants => bench::tenants::run(&opts).await?,
        Scenario::Timers => bench::timers::run(&opts).await?,
        Scenario::Cluster => bench::cluster::run(&opts, args.database_url).await?,
        Scenario::Kannel => bench::kannel::run(&opts).await?,
    };
    let mut figures = figures;
    if let Some((export, received)) = traces {
        tokio::task::spawn_blocking(move || export.shutdown()).await?;
        let scenario = figures.first().map_or_else(String::new, |f| f.scenario.clone());
        let bytes = received.load(std::sync::atomic::Ordering::Relaxed) as f64;
        figures.push(Figure::new(&scenario, "otlp_export_bytes", bytes, "bytes"));
    }
    summary("run", &figures);
    for f in &figures {
        println!("{}", serde_json::to_string(f)?);
    }
    Ok(())
}

/// Each run in a fresh process, so that one run's memory and threads do
/// not weigh on the next (resident memory is one of the figures).
fn in_separate_processes(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let mut command = std::process::Command::new(&exe);
        command
            .arg("bench")
            .arg(args.scenario.to_possible_value().expect("scenario name").get_name())
            .args(["--connections", &args.connections.to_string(), "--tenants", &args.tenants.to_string()])
            .arg("--plugins-dir")
            .arg(&args.plugins_dir)
            .stderr(std::process::Stdio::inherit());
        if let Some(n) = args.messages {
            command.args(["--messages", &n.to_string()]);
        }
        if let Some(url) = &args.database_url {
            command.args(["--database-url", url]);
        }
        if let Some(ratio) = args.trace_sample_ratio {
            command.args(["--trace-sample-ratio", &ratio.to_string()]);
        }
        if args.no_recording {
            command.arg("--no-recording");
        }
        let out = command.output()?;
        anyhow::ensure!(out.status.success(), "run {run} failed");
        let figures = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(serde_json::from_str::<Figure>)
            .collect::<Result<Vec<_>, _>>()?;
        runs.push(figures);
    }
    let medians = bench::medians(&runs);
    for f in &medians {
        println!("{}", serde_json::to_string(f)?);
    }
    summary(&format!("median of {} runs", runs.len()), &medians);
    Ok(())
}

/// A trace exporter at `ratio`, and an OTLP/HTTP collector on loopback
/// that takes its batches (counting their bytes) and drops them.
async fn start_traces(
    ratio: f64,
) -> anyhow::Result<(crate::telemetry::TraceExport, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            counted.fetch_add(body.len() as u64, Ordering::Relaxed);
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, collector).await });
    Ok((crate::telemetry::TraceExport::start(&endpoint, ratio)?, received))
}

fn summary(title: &str, figures: &[Figure]) {
    eprintln!("{title}:");
    for f in figures {
        eprintln!("  {:<10} {:<32} {:>12.2} {}", f.scenario, f.metric, f.value, f.unit);
    }
}
