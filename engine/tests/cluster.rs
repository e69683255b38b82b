//! Several nodes on one PostgreSQL: `switchboard serve` processes on a
//! scratch database (PostgreSQL on 127.0.0.1:5432, or the server named by
//! `SWITCHBOARD_TEST_DATABASE`), a fake carrier that honours
//! `Idempotency-Key`, tenants and plugins set up through the HTTP API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard::bench::cluster::{Cluster, ClusterOptions, keyword_plugin};
use switchboard::bench::{customer, load};

/// A guard against hangs, not a timing assertion.
const GUARD: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn options(nodes: usize) -> ClusterOptions {
    let mut o = ClusterOptions::new(nodes, PathBuf::from(env!("CARGO_BIN_EXE_switchboard")));
    o.compile_cache_dir = Some(workspace().join("target/test-compile-cache"));
    o
}

async fn start(o: &ClusterOptions) -> Cluster {
    Cluster::start(o).await.expect("the cluster starts")
}

/// Deploys keyword-reply through node 0 and waits until every node routes
/// its keyword (probe messages from numbers of their own). Returns the
/// replies the probes will get: one per node.
async fn deploy_keyword_plugin(cluster: &Cluster, nodes: usize) -> usize {
    let (manifest, wasm) = keyword_plugin(&workspace().join("plugins")).expect("keyword-reply is built");
    cluster.deploy(0, &manifest, &wasm).await.expect("deploy");
    for i in 0..nodes {
        let routed = cluster.until_routed(i, 9_000_000 + 100_000 * i);
        tokio::time::timeout(GUARD, routed).await.expect("every node routes the keyword").expect("inbound");
    }
    nodes
}

/// Recipients of the messages at the carrier, with how often each arrived.
fn arrivals_by_recipient(cluster: &Cluster) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for (to, _) in cluster.carrier.arrivals() {
        *by.entry(to).or_insert(0) += 1;
    }
    by
}

/// Checks that customers `0..n` each got exactly one reply.
fn exactly_one_reply_each(by: &HashMap<String, usize>, n: usize) {
    let missing: Vec<usize> = (0..n).filter(|i| !by.contains_key(&customer(*i))).collect();
    let twice: Vec<(&String, &usize)> = by.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "{} customers got no reply, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "{} customers got more than one reply, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_inbound_messages_over_three_nodes_get_exactly_ten_thousand_replies() {
    let cluster = start(&options(3)).await;
    let probes = deploy_keyword_plugin(&cluster, 3).await;
    let n = 10_000;
    load::closed_loop(n, 48, cluster.keyword_load(&[0, 1, 2], 0)).await.expect("every inbound accepted");
    assert!(cluster.carrier.wait_for(n + probes, GUARD).await, "the replies reached the carrier");
    cluster.settled(GUARD).await.expect("no work left");

    let by = arrivals_by_recipient(&cluster);
    exactly_one_reply_each(&by, n);
    assert_eq!(cluster.carrier.arrivals().len(), n + probes, "nothing but the replies and probe replies");
    assert_eq!(cluster.carrier.repeats(), 0, "no message was handed to the carrier twice");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_loses_nothing_and_sends_nothing_twice() {
    let mut o = options(3);
    // A dead node's work is taken over once its lease lapses.
    o.work_lease_ms = 2_000;
    let mut cluster = start(&o).await;
    let probes = deploy_keyword_plugin(&cluster, 3).await;
    let (n, before_kill) = (10_000, 4_000);
    // Every request is answered before the kill: what node 2 accepted is
    // committed, and much of it is still being worked on when it dies.
    load::closed_loop(before_kill, 48, cluster.keyword_load(&[0, 1, 2], 0)).await.expect("accepted");
    cluster.kill(2).await.expect("SIGKILL");
    let after: Vec<(String, Instant)> = cluster.carrier.arrivals();
    eprintln!("at the kill, {} of {before_kill} replies had reached the carrier", after.len().saturating_sub(probes));
    load::closed_loop(n - before_kill, 48, cluster.keyword_load(&[0, 1], before_kill)).await.expect("accepted");

    assert!(cluster.carrier.wait_for(n + probes, GUARD).await, "every reply reached the carrier");
    cluster.settled(GUARD).await.expect("no work left");
    let by = arrivals_by_recipient(&cluster);
    exactly_one_reply_each(&by, n);
    assert_eq!(cluster.carrier.arrivals().len(), n + probes);
    eprintln!("sends repeated after the kill (same Idempotency-Key, not sent again): {}", cluster.carrier.repeats());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_trigger_fires_once_per_fire_with_three_nodes_up() {
    let cluster = start(&options(3)).await;
    let path = workspace().join("examples/chaos-plugin/plugin.toml");
    let manifest = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[triggers]\n", "[triggers]\ncron = [\"* * * * * *\"]\ntimezone = \"UTC\"\n");
    let component = switchboard::manifest::Manifest::from_file(&path).unwrap().component_path(&path).unwrap();
    let wasm = std::fs::read(component).expect("the chaos plugin is built");
    cluster.deploy(1, &manifest, &wasm).await.expect("deploy");

    // The plugin logs every fire with its instant and a kv counter.
    let fires = 8;
    let http = reqwest::Client::new();
    let read_log = || async {
        let logs: serde_json::Value = http
            .get(format!("{}/v1/plugins/chaos/logs?limit=1000", cluster.base(2)))
            .bearer_auth(&cluster.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Until node 2 has heard of the deploy, it knows no such plugin.
        let Some(data) = logs["data"].as_array() else { return Vec::new() };
        let mut lines: Vec<String> = data
            .iter()
            .filter_map(|l| l["message"].as_str())
            .filter(|m| m.starts_with("cron "))
            .map(str::to_string)
            .collect();
        lines.reverse();
        lines
    };
    let lines = tokio::time::timeout(GUARD, async {
        loop {
            let lines = read_log().await;
            if lines.len() >= fires {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the cron trigger fired");
    // "cron * * * * * * fired for INSTANT (fire N)": every instant once,
    // and the counter counts each fire once.
    let instants: Vec<&str> = lines.iter().map(|l| l.split(" fired for ").nth(1).unwrap()).collect();
    let mut distinct = instants.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), instants.len(), "a fire ran twice: {lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.ends_with(&format!("(fire {})", i + 1)), "{lines:#?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_limited_to_100_per_second_sends_at_most_105_per_second_with_three_nodes() {
    let mut o = options(3);
    o.rate_per_second = Some(100);
    let cluster = start(&o).await;
    let n = 600;
    // API sends spread over the three nodes, all accepted at once.
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let (http, base, key) = (cluster.http.clone(), cluster.base(i % 3).to_string(), cluster.key.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/v1/messages"))
                    .bearer_auth(key)
                    .json(&serde_json::json!({ "to": customer(i), "message": "rate" }))
                    .send()
                    .await
                    .expect("send")
                    .status()
            })
        })
        .collect();
    for s in sends {
        assert!(s.await.unwrap().is_success());
    }
    assert!(cluster.carrier.wait_for(n, GUARD).await, "every message was sent");
    let arrivals = cluster.carrier.arrivals();
    let first = arrivals.iter().map(|(_, at)| *at).min().unwrap();
    let last = arrivals.iter().map(|(_, at)| *at).max().unwrap();
    let rate = (n - 1) as f64 / last.duration_since(first).as_secs_f64();
    eprintln!("{n} messages through three nodes at {rate:.1} msg/s (limit 100)");
    assert!(rate <= 105.0, "the cluster sent at {rate:.1} msg/s against a limit of 100");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_rate_limit_holds_across_nodes() {
    let cluster = start(&options(3)).await;
    let limits = serde_json::json!({ "requests_per_second": 5, "requests_per_day": 1_000_000 });
    cluster
        .http
        .put(format!("{}/admin/v1/tenants/{}/limits", cluster.base(0), cluster.tenant))
        .bearer_auth(switchboard::bench::cluster::ADMIN_TOKEN)
        .json(&limits)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    // Every node learns of the new limit through the database's notices;
    // then the bucket is let fill (the probes take tokens from it).
    cluster.wait_for_limits(5).await.expect("every node applies the limit");
    cluster.wait_for_full_bucket(5).await.expect("the bucket fills");
    // 30 requests, ten to each node, as fast as they go.
    let started = Instant::now();
    let mut allowed = 0;
    for i in 0..30 {
        let status = cluster
            .http
            .get(format!("{}/v1/messages", cluster.base(i % 3)))
            .bearer_auth(&cluster.key)
            .send()
            .await
            .unwrap()
            .status();
        allowed += usize::from(status.is_success());
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A bucket of at most 5, refilled at 5 per second, across all three
    // nodes (per node it would be three times that).
    let most = 5 + (elapsed * 5.0).ceil() as usize;
    assert!(allowed <= most, "{allowed} of 30 requests passed in {elapsed:.2} s against 5 per second");
    assert!(allowed >= 4, "the bucket was full before the last probe took a token");
    cluster.stop().await;
}

/// Node B hears of a deploy on node A through the directory notice alone: it
/// has no timer that reloads the directory, so if the notice were lost this
/// test would wait out its guard and fail. How long the notice takes is a
/// speed figure, measured by `switchboard bench cluster`
/// (`deploy_seen_ms_*`), not asserted here: with six cluster tests sharing
/// two cores it is whatever the scheduler makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_deployed_on_node_a_answers_on_node_b_without_a_restart() {
    let cluster = start(&options(2)).await;
    let (manifest, wasm) = keyword_plugin(&workspace().join("plugins")).expect("keyword-reply is built");
    // Before the deploy node B routes the keyword nowhere.
    assert_eq!(cluster.inbound(1, &customer(0), "HOURS").await.unwrap()["routed"], 0);
    cluster.deploy(0, &manifest, &wasm).await.expect("deploy on node A");
    let deployed = Instant::now();
    // Inbound to node B until one is routed to the new plugin.
    let (from, sent) = tokio::time::timeout(GUARD, cluster.until_routed(1, 1))
        .await
        .expect("node B routed the keyword")
        .expect("inbound");
    let routed_after = sent.duration_since(deployed);
    eprintln!("node B routed the new plugin's keyword {} ms after the deploy on node A", routed_after.as_millis());
    // And the reply to that message went out.
    let replied = async {
        while !arrivals_by_recipient(&cluster).contains_key(&from) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(GUARD, replied).await.expect("node B's message was answered");
    cluster.stop().await;
}

/// kv increments of one plugin on three nodes at once each count once: a
/// completion's read versions are checked under locks on its keys, so two
/// nodes never both commit an increment of the same version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_increments_on_three_nodes_at_once_each_count_once() {
    let cluster = start(&options(3)).await;
    let path = workspace().join("examples/chaos-plugin/plugin.toml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let component = switchboard::manifest::Manifest::from_file(&path).unwrap().component_path(&path).unwrap();
    let wasm = std::fs::read(component).expect("the chaos plugin is built");
    cluster.deploy(0, &manifest, &wasm).await.expect("deploy");
    // The chaos plugin adds one to its kv key `count` for every `count` event.
    let count_event = |i: usize| {
        let request = cluster
            .http
            .post(format!("{}/v1/events/chaos", cluster.base(i)))
            .bearer_auth(&cluster.key)
            .json(&serde_json::json!({ "name": "count" }));
        async move { request.send().await.expect("event").status() }
    };
    // Every node takes the plugin's events once it has heard of the deploy
    // (404 before).
    let mut posted = 0;
    for i in 0..3 {
        let heard = async {
            while count_event(i).await == reqwest::StatusCode::NOT_FOUND {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(GUARD, heard).await.expect("every node knows the plugin");
        posted += 1;
    }
    // Then 90 at once, 30 to each node.
    let statuses = futures::future::join_all((0..90).map(|i| count_event(i % 3))).await;
    assert!(statuses.iter().all(|s| *s == reqwest::StatusCode::ACCEPTED), "{statuses:?}");
    posted += statuses.len();
    cluster.settled(GUARD).await.expect("every event done");
    let count: serde_json::Value = cluster
        .http
        .get(format!("{}/v1/plugins/chaos/kv/count", cluster.base(1)))
        .bearer_auth(&cluster.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["value"], posted.to_string(), "{count}");
    cluster.stop().await;
}
