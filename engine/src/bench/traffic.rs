//! `keyword` and `send`: messages in over HTTP, out at the fake carrier.
//!
//! - `keyword`: inbound webhooks (`HOURS` from distinct numbers) → the
//!   keyword-reply plugin → its reply at the carrier.
//! - `send`: `POST /v1/messages` → the carrier.
//!
//! Each runs twice: flat out (closed loop over many connections), for
//! throughput — first request to last message at the carrier — and
//! latencies; then open loop at half that rate, for the latencies a
//! loaded-but-not-saturated engine shows.

use super::load::{self, Sample};
use super::{Env, Figure, NUMBER, Options, customer, customer_index};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keyword,
    Send,
}

impl Kind {
    fn scenario(self) -> &'static str {
        match self {
            Kind::Keyword => "keyword",
            Kind::Send => "send",
        }
    }
}

/// The request for message `i` against the engine at `base`.
pub fn request(
    kind: Kind,
    base: &str,
    key: &str,
    to_number: impl Fn(usize) -> String + Send + Sync + 'static,
) -> load::MakeRequestFn {
    let (base, key) = (base.to_string(), key.to_string());
    Arc::new(move |client: &reqwest::Client, i: usize| match kind {
        Kind::Keyword => super::signed_inbound(
            client,
            &base,
            &serde_json::json!({ "from": customer(i), "to": to_number(i), "message": "HOURS" }),
        ),
        Kind::Send => client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "to": customer(i), "message": "Your code is 123456" })),
    })
}

/// What one load phase measured.
pub struct Phase {
    pub throughput: f64,
    /// The engine's CPU time per message (µs), from first request to last arrival.
    pub cpu_per_message_us: f64,
    pub accept_ms: Vec<f64>,
    pub end_to_end_ms: Vec<f64>,
}

/// Runs `samples_of` (the load), waits for `n` messages at the carrier,
/// and measures.
pub async fn measure<F>(env: &Env, n: usize, load: F) -> anyhow::Result<Phase>
where
    F: std::future::Future<Output = anyhow::Result<Vec<Sample>>>,
{
    let started = Instant::now();
    let cpu_before = super::cpu::Snapshot::engine();
    let samples = load.await?;
    if !env.carrier.wait_for(n, Duration::from_secs(600)).await {
        anyhow::bail!("only some of the {n} messages reached the carrier");
    }
    let engine_cpu = super::cpu::Snapshot::engine().since(&cpu_before);
    let arrivals = env.carrier.take();
    let last = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(started);
    let starts: HashMap<usize, Instant> = samples.iter().map(|s| (s.index, s.start)).collect();
    let end_to_end_ms = arrivals
        .iter()
        .filter_map(|(to, at)| Some(at.duration_since(*starts.get(&customer_index(to)?)?).as_secs_f64() * 1e3))
        .collect();
    Ok(Phase {
        throughput: n as f64 / last.duration_since(started).as_secs_f64(),
        cpu_per_message_us: super::cpu::per_item_us(engine_cpu, n),
        accept_ms: samples.iter().map(|s| s.latency.as_secs_f64() * 1e3).collect(),
        end_to_end_ms,
    })
}

/// Pushes the figures of a phase; `suffix` tells the phases apart.
pub fn figures(scenario: &'static str, phase: &mut Phase, at_half_rate: bool, out: &mut Vec<Figure>) {
    let name = |flat: &'static str, half: &'static str| if at_half_rate { half } else { flat };
    if !at_half_rate {
        out.push(Figure::new(scenario, "throughput", phase.throughput, "msg/s"));
    }
    out.push(Figure::new(
        scenario,
        name("cpu_per_message", "half_rate_cpu_per_message"),
        phase.cpu_per_message_us,
        "us",
    ));
    for (q, flat, half) in [(0.5, "accept_p50", "half_rate_accept_p50"), (0.99, "accept_p99", "half_rate_accept_p99")] {
        out.push(Figure::new(scenario, name(flat, half), load::quantile(&mut phase.accept_ms, q), "ms"));
    }
    for (q, flat, half) in
        [(0.5, "end_to_end_p50", "half_rate_end_to_end_p50"), (0.99, "end_to_end_p99", "half_rate_end_to_end_p99")]
    {
        out.push(Figure::new(scenario, name(flat, half), load::quantile(&mut phase.end_to_end_ms, q), "ms"));
    }
}

pub async fn run(kind: Kind, opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let plugins: &[&str] = if kind == Kind::Keyword { &["keyword-reply"] } else { &[] };
    let env = Env::start(opts, plugins).await?;
    let make = request(kind, &env.base, &env.key, |_| NUMBER.to_string());
    let n = opts.messages;
    let mut out = Vec::new();

    // Warm up: compile caches, connections, SQLite pages.
    let warm = n.min(1000);
    measure(&env, warm, load::closed_loop(warm, opts.connections, make.clone())).await?;

    let mut flat = measure(&env, n, load::closed_loop(n, opts.connections, make.clone())).await?;
    figures(kind.scenario(), &mut flat, false, &mut out);
    let rate = flat.throughput / 2.0;
    let half_n = ((rate * 5.0) as usize).max(1000).min(n);
    let mut half = measure(&env, half_n, load::open_loop(half_n, rate, 4096, make)).await?;
    out.push(Figure::new(kind.scenario(), "half_rate", rate, "msg/s"));
    figures(kind.scenario(), &mut half, true, &mut out);
    env.stop().await;
    Ok(out)
}
