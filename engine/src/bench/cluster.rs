//! `cluster`: keyword throughput with 1, 2 and 3 nodes on one PostgreSQL;
//! and the multi-node rig the cluster tests drive.
//!
//! A [`Cluster`] is real: `switchboard serve` processes (this binary) on a
//! scratch PostgreSQL database, each with its own data directory and port,
//! sending through the `http` connector to one [fake carrier](super::carrier).
//! The tenant is set up through the admin API and plugins are uploaded
//! through `POST /v1/plugins`, as an operator would.

use super::carrier::FakeCarrier;
use super::load::{self, MakeRequestFn};
use super::{Figure, NUMBER, Options, WEBHOOK_SECRET, customer, scratch_dir};
use crate::store::postgres::scratch::ScratchDatabase;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The PostgreSQL server used when none is named.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const ADMIN_TOKEN: &str = "cluster-admin-token";
/// The secret key every node shares (32 bytes, base64).
const SECRET_KEY: &str = "Y2x1c3Rlci1zZWNyZXQta2V5LWZvci1zd2l0Y2hib2E=";
/// The API limit the benchmark tenant gets: high enough never to refuse.
const API_REQUESTS_PER_SECOND: u64 = 10_000_000;

/// How a cluster is made.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// A PostgreSQL server whose user may create databases.
    pub server_url: String,
    /// One node on SQLite in its data directory instead (`server_url` unused).
    pub sqlite: bool,
    /// The `switchboard` binary the nodes run.
    pub binary: PathBuf,
    /// `[connectors.fake.gate] rate_per_second`, cluster-wide.
    pub rate_per_second: Option<u32>,
    /// `[limits] work_lease_ms`: how soon a dead node's work is taken over.
    pub work_lease_ms: u64,
    /// Compiled plugins shared by the nodes (default: each its own).
    pub compile_cache_dir: Option<PathBuf>,
}

impl ClusterOptions {
    pub fn new(nodes: usize, binary: PathBuf) -> Self {
        ClusterOptions {
            nodes,
            server_url: std::env::var("SWITCHBOARD_TEST_DATABASE")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_SERVER.into()),
            sqlite: false,
            binary,
            rate_per_second: None,
            work_lease_ms: 60_000,
            compile_cache_dir: None,
        }
    }

    /// One node on the embedded SQLite store, as `switchboard serve` runs
    /// by default: the rig for crashing and restarting a single engine.
    pub fn single_sqlite(binary: PathBuf) -> Self {
        ClusterOptions { sqlite: true, ..ClusterOptions::new(1, binary) }
    }
}

pub struct Node {
    pub base: String,
    child: tokio::process::Child,
}

pub struct Cluster {
    pub carrier: FakeCarrier,
    /// `None` once killed.
    pub nodes: Vec<Option<Node>>,
    pub tenant: String,
    pub key: String,
    pub http: reqwest::Client,
    /// The scratch PostgreSQL database (`None` on SQLite).
    pub database: Option<ScratchDatabase>,
    dir: PathBuf,
    binary: PathBuf,
    config_path: PathBuf,
}

impl Cluster {
    /// User + system time the live node processes have used.
    pub fn nodes_cpu(&self) -> Duration {
        self.nodes.iter().flatten().filter_map(|n| n.child.id()).filter_map(super::cpu::process).sum()
    }

    /// Starts the nodes (all at once, on a fresh database they migrate
    /// together) and sets up one tenant on the fake carrier.
    pub async fn start(o: &ClusterOptions) -> anyhow::Result<Cluster> {
        if o.sqlite && o.nodes != 1 {
            bail!("SQLite serves one node");
        }
        let database = match o.sqlite {
            true => None,
            false => Some(ScratchDatabase::create(&o.server_url).await.context("create a scratch database")?),
        };
        let carrier = FakeCarrier::start().await?;
        let dir = scratch_dir();
        std::fs::create_dir_all(&dir)?;
        let rate = o.rate_per_second.map(|r| format!("rate_per_second = {r}\n")).unwrap_or_default();
        let cache = match &o.compile_cache_dir {
            Some(d) => format!("compile_cache_dir = {:?}\n", d.display().to_string()),
            None => String::new(),
        };
        let config = format!(
            "{cache}webhooks_allow_private_addresses = true\n\n[limits]\nwork_lease_ms = {}\nconcurrent_invocations = 32\n\n\
             [connectors.fake]\nkind = \"http\"\nurl = \"{}\"\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n\n\
             [connectors.fake.gate]\nmax_concurrency = 256\n{rate}",
            o.work_lease_ms, carrier.url
        );
        let config_path = dir.join("switchboard.toml");
        std::fs::write(&config_path, config)?;
        let node_dirs: Vec<PathBuf> = (0..o.nodes).map(|i| dir.join(format!("node{i}"))).collect();
        let url = database.as_ref().map(|d| d.url.as_str());
        let starting = node_dirs.iter().map(|d| spawn_node(&o.binary, d, &config_path, url));
        let nodes = futures::future::try_join_all(starting).await?.into_iter().map(Some).collect();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut cluster = Cluster {
            carrier,
            nodes,
            tenant: String::new(),
            key: String::new(),
            http,
            database,
            dir,
            binary: o.binary.clone(),
            config_path,
        };
        cluster.set_up_tenant().await?;
        Ok(cluster)
    }

    /// The base URL of node `i` (panics if it was killed).
    pub fn base(&self, i: usize) -> &str {
        &self.nodes[i].as_ref().expect("a live node").base
    }

    async fn set_up_tenant(&mut self) -> anyhow::Result<()> {
        let base = self.base(0).to_string();
        let admin = |path: &str| format!("{base}/admin/v1{path}");
        let t: serde_json::Value = self
            .http
            .post(admin("/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": "Cluster" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        self.tenant = t["id"].as_str().context("tenant id")?.to_string();
        self.key = t["api_key"].as_str().context("api key")?.to_string();
        self.http
            .post(admin(&format!("/tenants/{}/numbers", self.tenant)))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "number": NUMBER, "connector": "fake", "default": true }))
            .send()
            .await?
            .error_for_status()?;
        self.http
            .put(admin(&format!("/tenants/{}/limits", self.tenant)))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "requests_per_second": API_REQUESTS_PER_SECOND, "requests_per_day": 1_000_000_000_000u64,
                "quotas": super::unlimited_quotas() }))
            .send()
            .await?
            .error_for_status()?;
        self.wait_for_limits(API_REQUESTS_PER_SECOND).await
    }

    /// Waits until every node applies the tenant's API limit (each learns
    /// of the change through the database's notices): a node still on the
    /// defaults would refuse a burst of requests with 429.
    pub async fn wait_for_limits(&self, per_second: u64) -> anyhow::Result<()> {
        for node in self.nodes.iter().flatten() {
            let seen = async {
                loop {
                    let r = self.http.get(format!("{}/v1/account", node.base)).bearer_auth(&self.key).send().await?;
                    let limit = r.headers().get("x-ratelimit-limit").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    if limit == Some(per_second) {
                        return anyhow::Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), seen)
                .await
                .with_context(|| format!("node {} did not apply the tenant's limits within 30 s", node.base))??;
        }
        Ok(())
    }

    /// Waits until the tenant's API bucket (cluster-wide, `per_second`
    /// tokens) was full before a probe: the probe's answer on node 0 says
    /// `per_second - 1` remain. Probes come every two refills, so each
    /// gains the bucket a token until it is full.
    pub async fn wait_for_full_bucket(&self, per_second: u64) -> anyhow::Result<()> {
        let every = Duration::from_millis(2_000 / per_second.max(1));
        let full = async {
            loop {
                let r = self.http.get(format!("{}/v1/account", self.base(0))).bearer_auth(&self.key).send().await?;
                let remaining =
                    r.headers().get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if r.status().is_success() && remaining == Some(per_second - 1) {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(every).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), full).await.context("the bucket did not fill within 30 s")?
    }

    /// Uploads a plugin (manifest text, component) through node `i`'s API.
    pub async fn deploy(&self, i: usize, manifest: &str, wasm: &[u8]) -> anyhow::Result<serde_json::Value> {
        let form = reqwest::multipart::Form::new()
            .part("manifest", reqwest::multipart::Part::text(manifest.to_string()))
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm.to_vec()).file_name("plugin.wasm").mime_str("application/wasm")?,
            );
        let response = self
            .http
            .post(format!("{}/v1/plugins", self.base(i)))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if !status.is_success() {
            bail!("deploy answered {status}: {body}");
        }
        Ok(body)
    }

    /// Posts an inbound SMS to node `i`; returns the engine's answer.
    pub async fn inbound(&self, i: usize, from: &str, text: &str) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::json!({ "from": from, "to": NUMBER, "message": text });
        Ok(super::signed_inbound(&self.http, self.base(i), &body).send().await?.error_for_status()?.json().await?)
    }

    /// Posts inbound `HOURS` to node `i` from `customer(first)`, then
    /// `customer(first + 1)` and on, until one is routed to a plugin (a
    /// node routes a new plugin's keyword once it has heard of the deploy).
    /// Returns the number that was routed and when its request started.
    pub async fn until_routed(&self, i: usize, first: usize) -> anyhow::Result<(String, Instant)> {
        let mut n = first;
        loop {
            let (from, sent) = (customer(n), Instant::now());
            if self.inbound(i, &from, "HOURS").await?["routed"].as_u64().unwrap_or(0) > 0 {
                return Ok((from, sent));
            }
            n += 1;
        }
    }

    /// Inbound `HOURS` from customer `i + offset`, spread over `nodes`.
    pub fn keyword_load(&self, nodes: &[usize], offset: usize) -> MakeRequestFn {
        let bases: Vec<String> = nodes.iter().map(|&n| self.base(n).to_string()).collect();
        Arc::new(move |client: &reqwest::Client, i: usize| {
            let body = serde_json::json!({ "from": customer(i + offset), "to": NUMBER, "message": "HOURS" });
            super::signed_inbound(client, &bases[i % bases.len()], &body)
        })
    }

    /// Kills node `i` with SIGKILL: no shutdown, leases left held.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut node) = self.nodes[i].take() {
            node.child.kill().await?;
        }
        Ok(())
    }

    /// Starts node `i` again on its data directory (after [`Cluster::kill`]).
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes[i].is_some() {
            bail!("node {i} is running");
        }
        let url = self.database.as_ref().map(|d| d.url.clone());
        let dir = self.dir.join(format!("node{i}"));
        self.nodes[i] = Some(spawn_node(&self.binary, &dir, &self.config_path, url.as_deref()).await?);
        Ok(())
    }

    /// Runs one `SELECT` of (label, count) rows on the cluster's database.
    async fn counts(&self, sql: &str, now: i64) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(match &self.database {
            Some(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&pool).await?;
                pool.close().await;
                rows
            }
            None => {
                // Read beside the running node (WAL readers do not block it).
                let url = crate::store::default_url(&self.dir.join("node0"));
                let options =
                    <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)?.read_only(true);
                let pool = sqlx::SqlitePool::connect_with(options).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&pool).await?;
                pool.close().await;
                rows
            }
        })
    }

    /// Waits until no work is left anywhere: no pending event, no outbox
    /// row. (Work a node holds in memory is in the database too.)
    pub async fn settled(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self
                .counts(
                    "SELECT 'left', (SELECT COUNT(*) FROM events WHERE status = 'pending') + \
                     (SELECT COUNT(*) FROM outbox) + $1",
                    0,
                )
                .await?;
            let left = rows.first().map_or(0, |r| r.1);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{left} events or outbox rows still pending");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the work stands, for failure messages: pending events and
    /// outbox rows by lease holder, messages by direction and status.
    pub async fn work_report(&self) -> String {
        let report = async {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
                as i64;
            let mut lines = Vec::new();
            for (what, sql) in [
                (
                    "pending events",
                    "SELECT COALESCE(lease_owner, '-') || CASE WHEN lease_until < $1 THEN ' (lapsed)' ELSE '' END, \
                     COUNT(*) FROM events WHERE status = 'pending' GROUP BY 1",
                ),
                (
                    "outbox",
                    "SELECT COALESCE(lease_owner, '-') || CASE WHEN lease_until < $1 THEN ' (lapsed)' ELSE '' END, \
                     COUNT(*) FROM outbox GROUP BY 1",
                ),
                (
                    "messages",
                    "SELECT direction || ' ' || status || CASE WHEN $1 = 0 THEN '' ELSE '' END, COUNT(*) \
                     FROM messages GROUP BY 1",
                ),
            ] {
                let rows = self.counts(sql, now).await?;
                lines.push(format!("{what}: {rows:?}"));
            }
            anyhow::Ok(lines.join("; "))
        };
        report.await.unwrap_or_else(|e| format!("(no report: {e})"))
    }

    /// Stops every node and drops the database.
    pub async fn stop(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            let mut child = node.child;
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a node on `database_url`, or on SQLite in `dir` when `None`.
async fn spawn_node(binary: &Path, dir: &Path, config: &Path, database_url: Option<&str>) -> anyhow::Result<Node> {
    std::fs::create_dir_all(dir)?;
    // Appended to: a restarted node's log follows its first life's.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log"))?;
    let mut child = tokio::process::Command::new(binary)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--no-demo"])
        .args(database_url.map(|u| ["--database-url", u]).into_iter().flatten())
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .env("SWITCHBOARD_SECRET_KEY", SECRET_KEY)
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SWITCHBOARD_LOG", "info,sqlx=warn,wasmtime=warn,cranelift=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let stdout = child.stdout.take().context("node stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("Switchboard is listening on ") {
                return Ok(url.trim().to_string());
            }
        }
        bail!("the node exited before listening; see {}", dir.join("node.log").display())
    })
    .await
    .context("the node did not start listening")??;
    // Keep draining stdout so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Node { base, child })
}

/// The keyword-reply plugin's manifest text and component.
pub fn keyword_plugin(plugins_dir: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let path = plugins_dir.join("keyword-reply/plugin.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let manifest = crate::manifest::Manifest::from_file(&path)?;
    let component = manifest.component_path(&path).context("component path")?;
    let wasm =
        std::fs::read(&component).with_context(|| format!("{}: build the plugins first", component.display()))?;
    Ok((text, wasm))
}

/// The `cluster` scenario: for 1, 2 and 3 nodes, a fresh database, the
/// keyword plugin, and inbound messages spread evenly over the nodes.
pub async fn run(opts: &Options, server_url: Option<String>) -> anyhow::Result<Vec<Figure>> {
    let binary = std::env::current_exe()?;
    let (manifest, wasm) = keyword_plugin(&opts.plugins_dir)?;
    let mut out = Vec::new();
    for nodes in 1..=3 {
        let mut o = ClusterOptions::new(nodes, binary.clone());
        if let Some(url) = &server_url {
            o.server_url = url.clone();
        }
        let cluster = Cluster::start(&o).await?;
        cluster.deploy(0, &manifest, &wasm).await?;
        let deployed = Instant::now();
        let all: Vec<usize> = (0..nodes).collect();
        // Every node routes the keyword before the load starts. The other
        // nodes hear of the deploy through the directory notice: how long
        // until the last of them routes is the time a change takes to reach
        // the whole cluster (measured from the deploy's answer to the start
        // of the first request that was routed).
        let mut seen_by_all = Duration::ZERO;
        for &i in &all {
            let (_, sent) = cluster.until_routed(i, 9_000_000 + 100_000 * i).await?;
            seen_by_all = seen_by_all.max(sent.duration_since(deployed));
        }
        let warm = opts.messages.min(1000);
        let mut expected = nodes + warm;
        load::closed_loop(warm, opts.connections, cluster.keyword_load(&all, 8_000_000)).await?;
        if !cluster.carrier.wait_for(expected, Duration::from_secs(300)).await {
            bail!("warm-up messages did not all arrive; {}", cluster.work_report().await);
        }
        let n = opts.messages;
        expected += n;
        let started = Instant::now();
        let cpu_before = cluster.nodes_cpu();
        load::closed_loop(n, opts.connections, cluster.keyword_load(&all, 0)).await?;
        if !cluster.carrier.wait_for(expected, Duration::from_secs(300)).await {
            let arrived = cluster.carrier.arrivals().len();
            bail!("{arrived} of {expected} replies reached the carrier; {}", cluster.work_report().await);
        }
        let nodes_cpu = cluster.nodes_cpu().saturating_sub(cpu_before);
        let last = cluster.carrier.arrivals().iter().map(|(_, at)| *at).max().unwrap_or(started);
        let throughput = n as f64 / last.duration_since(started).as_secs_f64();
        eprintln!("cluster: {nodes} node(s): {throughput:.0} msg/s");
        let of_nodes = if nodes == 1 { "1_node".to_string() } else { format!("{nodes}_nodes") };
        if nodes > 1 {
            let ms = seen_by_all.as_secs_f64() * 1000.0;
            eprintln!("cluster: {nodes} nodes: a deploy on node 1 routed on every node after {ms:.0} ms");
            out.push(Figure::new("cluster", &format!("deploy_seen_ms_{of_nodes}"), ms, "ms"));
        }
        out.push(Figure::new("cluster", &format!("throughput_{of_nodes}"), throughput, "msg/s"));
        // Every node process, summed (PostgreSQL's own time is not counted).
        let per_message = super::cpu::per_item_us(nodes_cpu, n);
        out.push(Figure::new("cluster", &format!("cpu_per_message_{of_nodes}"), per_message, "us"));
        cluster.stop().await;
    }
    Ok(out)
}
