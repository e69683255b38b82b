//! A crash under full load: one `switchboard serve` process on its embedded
//! SQLite store, driven as `switchboard bench keyword` drives it (64
//! keep-alive connections posting signed inbound `HOURS` as fast as they
//! are answered), killed with SIGKILL mid-run and started again on the
//! same data directory. The fake carrier honours `Idempotency-Key`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use switchboard::bench::cluster::{Cluster, ClusterOptions, keyword_plugin};
use switchboard::bench::{customer, load};

/// A guard against hangs, not a timing assertion.
const GUARD: Duration = Duration::from_secs(300);
/// `switchboard bench keyword`'s connections.
const CONNECTIONS: usize = 64;
/// Replies at the carrier before the kill: the run is well under way.
const REPLIES_BEFORE_KILL: usize = 4_000;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// What the load saw of each request it sent.
#[derive(Default)]
struct Outcomes {
    /// Customers whose inbound message was acknowledged (2xx).
    accepted: std::sync::Mutex<Vec<usize>>,
    /// Requests cut off by the kill, outcome unknown to the sender.
    cut_off: std::sync::Mutex<Vec<usize>>,
    /// Requests that failed before the kill (there should be none).
    failed_before_kill: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_full_keyword_load_loses_no_accepted_message_and_answers_each_once() {
    let mut o = ClusterOptions::single_sqlite(PathBuf::from(env!("CARGO_BIN_EXE_switchboard")));
    o.compile_cache_dir = Some(workspace().join("target/test-compile-cache"));
    let mut cluster = Cluster::start(&o).await.expect("the engine starts");
    let (manifest, wasm) = keyword_plugin(&workspace().join("plugins")).expect("keyword-reply is built");
    cluster.deploy(0, &manifest, &wasm).await.expect("deploy");
    let probe = cluster.inbound(0, &customer(9_000_000), "HOURS").await.expect("inbound");
    assert_eq!(probe["routed"], 1, "the keyword routes at once on one node");
    let probes = 1;

    // The load runs until the engine dies under it: each connection stops
    // at its first failed request.
    let outcomes = Arc::new(Outcomes::default());
    let killed = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let client = load::client(CONNECTIONS);
    let make = cluster.keyword_load(&[0], 0);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, make, next) = (client.clone(), make.clone(), next.clone());
            let (outcomes, killed) = (outcomes.clone(), killed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let answer = make(&client, i).send().await;
                    match answer {
                        Ok(r) if r.status().is_success() => outcomes.accepted.lock().unwrap().push(i),
                        Ok(r) if !killed.load(Ordering::SeqCst) => {
                            eprintln!("request {i} answered {} before the kill", r.status());
                            outcomes.failed_before_kill.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        _ => {
                            if !killed.load(Ordering::SeqCst) {
                                outcomes.failed_before_kill.fetch_add(1, Ordering::SeqCst);
                            }
                            outcomes.cut_off.lock().unwrap().push(i);
                            return;
                        }
                    }
                }
            })
        })
        .collect();

    assert!(
        cluster.carrier.wait_for(probes + REPLIES_BEFORE_KILL, GUARD).await,
        "replies reach the carrier under load; {}",
        cluster.work_report().await
    );
    killed.store(true, Ordering::SeqCst);
    cluster.kill(0).await.expect("SIGKILL");
    for w in workers {
        w.await.expect("load worker");
    }
    let accepted = outcomes.accepted.lock().unwrap().clone();
    let cut_off = outcomes.cut_off.lock().unwrap().clone();
    assert_eq!(outcomes.failed_before_kill.load(Ordering::SeqCst), 0, "no request failed before the kill");
    assert_eq!(cut_off.len(), CONNECTIONS, "every connection had a request in flight at the kill");
    let at_kill = cluster.carrier.arrivals().len() - probes;
    eprintln!("at the kill: {} accepted, {at_kill} answered at the carrier", accepted.len());
    assert!(accepted.len() > at_kill, "accepted messages were still waiting for their reply at the kill");

    cluster.restart(0).await.expect("the engine starts again on its data");
    if let Err(e) = cluster.settled(GUARD).await {
        panic!("{e}; {}", cluster.work_report().await);
    }

    let mut by: HashMap<String, usize> = HashMap::new();
    for (to, _) in cluster.carrier.arrivals() {
        *by.entry(to).or_insert(0) += 1;
    }
    let missing: Vec<&usize> = accepted.iter().filter(|i| !by.contains_key(&customer(**i))).collect();
    assert!(
        missing.is_empty(),
        "{} accepted messages got no reply, e.g. {:?}",
        missing.len(),
        &missing[..5.min(missing.len())]
    );
    let twice: Vec<_> = by.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} customers got more than one reply, e.g. {:?}",
        twice.len(),
        &twice[..5.min(twice.len())]
    );
    // Besides the accepted ones, only requests cut off by the kill (which
    // may have been committed before their answer was lost) got a reply.
    let extra = by.len() - probes - accepted.len();
    let cut_off_answered = cut_off.iter().filter(|i| by.contains_key(&customer(**i))).count();
    assert_eq!(extra, cut_off_answered, "no reply to a message nobody sent");
    eprintln!(
        "after the restart: {} accepted each answered once; {cut_off_answered} of {} cut-off requests were committed and answered; \
         {} sends repeated to the carrier with the same Idempotency-Key",
        accepted.len(),
        cut_off.len(),
        cluster.carrier.repeats()
    );
    cluster.stop().await;
}
