//! The load generator: many keep-alive connections issuing requests as
//! fast as answers come (closed loop), or at a fixed rate (open loop), and
//! the latency of each.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One request: when it started and how long its answer took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub index: usize,
    pub start: Instant,
    pub latency: Duration,
}

pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .http1_only()
        .build()
        .expect("HTTP client")
}

pub type MakeRequestFn = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

async fn one(client: &reqwest::Client, make: &MakeRequestFn, index: usize) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let response = make(client, index).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("request {index} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(Sample { index, start, latency: start.elapsed() })
}

/// `n` requests over `connections` connections, each sent when the
/// connection's previous one was answered.
pub async fn closed_loop(n: usize, connections: usize, make: MakeRequestFn) -> anyhow::Result<Vec<Sample>> {
    let client = client(connections);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, make, next) = (client.clone(), make.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(samples);
                }
                samples.push(one(&client, &make, i).await?);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    Ok(all)
}

/// `n` requests started at `rate` per second whatever the answers do
/// (at most `max_in_flight` outstanding).
pub async fn open_loop(n: usize, rate: f64, max_in_flight: usize, make: MakeRequestFn) -> anyhow::Result<Vec<Sample>> {
    let client = client(max_in_flight);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let t0 = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
        let permit = permits.clone().acquire_owned().await?;
        let (client, make) = (client.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let sample = one(&client, &make, i).await;
            drop(permit);
            sample
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.push(t.await??);
    }
    Ok(all)
}

/// The `q` quantile (0..=1) of `values`, which it sorts.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}
