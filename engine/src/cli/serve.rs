use crate::app::{App, Settings};
use crate::cli::demo::{self, DEMO_NUMBER};
use crate::clock::Clock;
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (SQLite database, compiled plugins) [default: ./switchboard-data]
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (default: SQLite in the data directory)
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    database_url: Option<String>,
    /// This node's name on claimed work; each node sharing a database needs
    /// its own [default: HOST-RANDOM on a shared database, else "local"]
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    node_id: Option<String>,
    /// Also serve `/metrics` on this address (see `[metrics]` in the README)
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Export traces to this OpenTelemetry collector (OTLP/HTTP)
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Settings file (TOML; see README)
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Where the demo tenant's plugins are found (`*/plugin.toml`)
    #[arg(long, default_value = "plugins")]
    plugins_dir: PathBuf,
    /// Do not create the demo tenant on a fresh data directory
    #[arg(long)]
    no_demo: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // The file, then SWITCHBOARD_* variables, then the flags below.
    let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
    if let Some(l) = args.listen {
        settings.listen = l;
    }
    if let Some(d) = args.data_dir {
        settings.data_dir = d;
    }
    if let Some(u) = args.database_url {
        settings.database_url = Some(u);
    }
    if let Some(n) = args.node_id {
        settings.node_id = n;
    }
    if let Some(m) = args.metrics_listen {
        settings.metrics.listen = Some(m);
    }
    if let Some(e) = args.otlp_endpoint {
        settings.otlp_endpoint = Some(e);
    }
    let traces = match &settings.otlp_endpoint {
        Some(endpoint) => Some(crate::telemetry::TraceExport::start(endpoint, settings.trace_sample_ratio)?),
        None => None,
    };
    super::init_logging(traces.as_ref());
    // Secrets (SWITCHBOARD_ADMIN_TOKEN, SWITCHBOARD_SECRET_KEY) come from
    // the environment or the file, never from the command line.
    let listen = settings.listen;
    let metrics_listen = settings.metrics.listen;
    let app = App::start(settings, Clock::system()).await?;
    if !args.no_demo
        && let Some(demo) = demo::seed_if_empty(&app, &args.plugins_dir).await?
    {
        if demo.plugins.is_empty() {
            println!(
                "Created the demo tenant: number {DEMO_NUMBER}, no plugins (none under {}; deploy yours with \
                 `switchboard plugin deploy`).",
                args.plugins_dir.display()
            );
        } else {
            println!("Created the demo tenant: number {DEMO_NUMBER}, plugins {}.", demo.plugins.join(", "));
        }
        println!("Its API key (shown once; saved to {}):", demo.key_file.display());
        println!("  {}", demo.api_key);
    }
    let listener = crate::net::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
    println!("Switchboard is listening on http://{}", listener.local_addr()?);
    if let Some(address) = metrics_listen {
        let metrics =
            crate::net::listen(address).with_context(|| format!("cannot listen for /metrics on {address}"))?;
        println!("Metrics are served on http://{}/metrics", metrics.local_addr()?);
        let router = crate::api::metrics_router(app.api.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    crate::api::run(app.api.clone(), listener, shutdown_signal()).await?;
    app.shutdown().await;
    if let Some(traces) = traces {
        tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
