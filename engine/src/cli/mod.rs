//! The `switchboard` command line.

mod admin;
mod bench;
mod client;
pub mod demo;
mod dev;
mod plugin;
mod plugin_state;
mod replay;
mod run;
mod serve;
mod simulate;

use clap::{Parser, Subcommand};

/// `switchboard --version`: the release and the git revision it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SWITCHBOARD_GIT_REVISION"), ")");

#[derive(Parser)]
#[command(name = "switchboard", version = VERSION, about = "WebAssembly-scriptable SMS automation engine")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API, plugin workers, dispatcher, scheduler.
    Serve(serve::ServeArgs),
    /// Send an inbound SMS to a running engine and print the replies.
    Simulate(simulate::SimulateArgs),
    /// Start, build, deploy and manage plugins.
    Plugin(plugin::PluginArgs),
    /// A local engine that builds and redeploys the plugin in this folder on
    /// every save, streams its logs and replies, and texts it from a prompt.
    Dev(dev::DevArgs),
    /// Run one event through a component in the sandbox, with no server,
    /// and print what it would commit.
    Run(run::RunArgs),
    /// Manage tenants (admin token).
    Tenant(admin::TenantArgs),
    /// Issue and revoke tenants' API keys (admin token).
    Key(admin::KeyArgs),
    /// Assign numbers to tenants (admin token).
    Number(admin::NumberArgs),
    /// Assign, approve and reject tenants' sender IDs (admin token).
    SenderId(admin::SenderIdArgs),
    /// Run a benchmark scenario on loopback; prints JSON lines per figure.
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs it; errors come back as one line.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Bench(_)) {
        // `serve` and `bench` set logging up once they know where traces go.
        init_logging(None);
    }
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Plugin(args) => plugin::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Tenant(args) => admin::tenant(args).await,
        Command::Key(args) => admin::key(args).await,
        Command::Number(args) => admin::number(args).await,
        Command::SenderId(args) => admin::sender_id(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}

pub fn init_logging(traces: Option<&crate::telemetry::TraceExport>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn"));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    // The engine's own spans, whatever SWITCHBOARD_LOG prints.
    let spans = traces.map(|t| t.layer());
    tracing_subscriber::registry().with(log).with(spans).init();
}
