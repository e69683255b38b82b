//! The `switchboard` binary as a user runs it: `serve` with the demo
//! tenant, `simulate`, clear one-line errors, and crash safety under
//! SIGKILL.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const DEMO_NUMBER: &str = "+15550000000";
/// A guard against hangs (not a timing assertion).
const GUARD: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Server {
    child: Child,
    url: String,
    key: String,
}

/// Starts `switchboard serve` on a free port in `data_dir` and waits until
/// it listens.
async fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    serve_with_env(data_dir, extra, &[]).await
}

async fn serve_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--plugins-dir")
        .arg(workspace().join("plugins"))
        .args(extra)
        .envs(env.iter().copied())
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Switchboard is listening on ") {
                return url.to_string();
            }
        }
        panic!("switchboard exited before listening");
    })
    .await
    .expect("switchboard listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // Without the demo tenant there is no demo key.
    let key = std::fs::read_to_string(data_dir.join("demo-api-key")).map(|k| k.trim().to_string()).unwrap_or_default();
    Server { child, url, key }
}

impl Server {
    async fn get(&self, path: &str) -> Value {
        let r = reqwest::Client::new().get(format!("{}{path}", self.url)).bearer_auth(&self.key).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Every outbound message, following the cursor.
    async fn outbound(&self) -> Vec<Value> {
        self.messages("outbound").await
    }

    /// Every message in one direction, following the cursor.
    async fn messages(&self, direction: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = format!("/v1/messages?direction={direction}&limit=200");
        loop {
            let page = self.get(&path).await;
            all.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/messages?direction={direction}&limit=200&cursor={c}"),
                None => return all,
            }
        }
    }

    /// Polls until `n` outbound messages have reached one of `statuses`
    /// (across processes there is nothing to subscribe to; the guard bounds
    /// the wait).
    async fn wait_status(&self, n: usize, statuses: &[&str]) -> Vec<Value> {
        tokio::time::timeout(GUARD, async {
            loop {
                let all = self.outbound().await;
                if all.iter().filter(|m| statuses.iter().any(|s| m["status"] == *s)).count() >= n {
                    return all;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the replies were delivered")
    }

    async fn kill9(mut self) {
        self.child.start_kill().unwrap(); // SIGKILL on Unix
        self.child.wait().await.unwrap();
    }
}

async fn post_inbound(client: &reqwest::Client, url: &str, from: &str, text: &str) -> Result<String, reqwest::Error> {
    let r = client
        .post(format!("{url}/v1/inbound/generic"))
        .json(&json!({"from": from, "to": DEMO_NUMBER, "message": text}))
        .send()
        .await?
        .error_for_status()?;
    Ok(r.json::<Value>().await?["id"].as_str().unwrap().to_string())
}

fn customer(i: usize) -> String {
    format!("+1555{:07}", 1_000_000 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_the_demo_tenant_and_simulate_prints_the_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    let out = Command::new(BIN)
        .args(["simulate", "--server", &server.url, "--from", "+15551234567", "--to", DEMO_NUMBER, "STATUS"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("[keyword-reply] +15550000000 -> +15551234567: Checking your order status now..."),
        "{stdout}"
    );
    assert!(
        stdout.contains("[order-notifications] +15550000000 -> +15551234567: We have no orders for this number."),
        "{stdout}"
    );

    let plugins = server.get("/v1/plugins").await;
    let names: Vec<&str> = plugins["data"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["appointment-reminders", "keyword-reply", "order-notifications"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_one_readable_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["simulate", "--server", "http://127.0.0.1:9", "--api-key", "sk_live_x", "--from", "+15551234567"])
        .args(["--to", DEMO_NUMBER, "HOURS"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: cannot reach Switchboard at http://127.0.0.1:9"), "{stderr}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = 12\n").unwrap();
    let out = Command::new(BIN).arg("serve").arg("--config").arg(&bad).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: settings: "), "{stderr}");
}

/// Messages accepted by a node that had not processed them yet survive a
/// SIGKILL and are answered exactly once after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_sigkill_and_are_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ingest_only = dir.path().join("ingest-only.toml");
    std::fs::write(&ingest_only, "process_events = false\n").unwrap();
    let server = serve(dir.path(), &["--config", ingest_only.to_str().unwrap()]).await;
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    for i in 0..50 {
        accepted.push(post_inbound(&client, &server.url, &customer(i), "HOURS").await.unwrap());
    }
    assert!(server.outbound().await.is_empty(), "nothing processed before the kill");
    server.kill9().await;

    let server = serve(dir.path(), &[]).await;
    let outbound = server.wait_status(50, &["delivered"]).await;
    assert_eq!(outbound.len(), 50);
    let mut answered: Vec<&str> = outbound.iter().map(|m| m["in_reply_to"].as_str().unwrap()).collect();
    answered.sort();
    accepted.sort();
    assert_eq!(answered, accepted.iter().map(String::as_str).collect::<Vec<_>>(), "one reply per accepted message");
}

/// A SIGKILL in the middle of processing loses nothing accepted and
/// duplicates no effect: every inbound message has exactly one reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_processing_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let posts = (0..400).map(|i| {
        let (client, url) = (client.clone(), server.url.clone());
        tokio::spawn(async move { post_inbound(&client, &url, &customer(i), "HOURS").await.ok() })
    });
    let posts: Vec<_> = posts.collect();
    // Kill once a good part is accepted but (very likely) not all processed.
    let mut accepted = Vec::new();
    let mut pending = posts.into_iter();
    for handle in pending.by_ref().take(200) {
        accepted.extend(handle.await.unwrap());
    }
    server.kill9().await;
    for handle in pending {
        accepted.extend(handle.await.unwrap());
    }
    assert!(accepted.len() >= 200);

    let server = serve(dir.path(), &[]).await;
    assert_each_answered_once(&server, &accepted).await;
}

/// Runs a `switchboard` command against `url`; returns (success, stdout, stderr).
async fn run_cli(url: &str, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("SWITCHBOARD_URL", url)
        .envs(env.iter().copied())
        .env("SWITCHBOARD_LOG", "warn")
        .output()
        .await
        .expect("switchboard runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The operator's and the plugin developer's workflows, end to end through
/// the binary: tenants, numbers, keys, deploy, list, logs --follow,
/// rollback, disable, and one-line errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_keys_numbers_and_plugins_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let admin = [("SWITCHBOARD_ADMIN_TOKEN", "cli-admin-token")];
    let server = serve_with_env(dir.path(), &["--no-demo"], &admin).await;
    let url = server.url.clone();

    let (ok, out, err) = run_cli(&url, &admin, &["tenant", "create", "Acme Dental"]).await;
    assert!(ok, "{err}");
    let tenant = out.lines().next().unwrap().strip_prefix("tenant ").unwrap().to_string();
    let key = out.lines().nth(1).unwrap().strip_prefix("api key ").unwrap().split(' ').next().unwrap().to_string();
    assert!(key.starts_with("sk_live_"), "{out}");
    let (ok, out, err) =
        run_cli(&url, &admin, &["number", "add", "--tenant", &tenant, "+1 555 000 0077", "--default"]).await;
    assert!(ok && out.contains("+15550000077"), "{out}{err}");
    let (ok, out, _) = run_cli(&url, &admin, &["tenant", "list"]).await;
    assert!(ok && out.contains("Acme Dental") && out.contains("+15550000077"), "{out}");
    let (ok, _, err) = run_cli(&url, &[], &["tenant", "list"]).await;
    assert!(!ok && err.trim() == "error: no admin token: pass --admin-token or set SWITCHBOARD_ADMIN_TOKEN", "{err}");

    let tenant_env = [("SWITCHBOARD_API_KEY", key.as_str())];
    let chaos_manifest = workspace().join("examples/chaos-plugin/plugin.toml");
    let chaos_wasm = workspace().join("target/wasm32-wasip2/plugin/chaos_plugin.wasm");
    let (ok, out, err) =
        run_cli(&url, &tenant_env, &["plugin", "deploy", "--manifest", chaos_manifest.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployed chaos version 0.1.0");
    // Exactly the active version again: nothing changes, and it says so.
    let (ok, out, err) =
        run_cli(&url, &tenant_env, &["plugin", "deploy", "--manifest", chaos_manifest.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "chaos version 0.1.0 is already deployed and active, byte for byte: nothing changed");

    // A file that is not a component: one line naming the problem.
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "not wasm").unwrap();
    let (ok, _, err) = run_cli(
        &url,
        &tenant_env,
        &["plugin", "deploy", bogus.to_str().unwrap(), "--manifest", chaos_manifest.to_str().unwrap()],
    )
    .await;
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(err.trim(), "error: NOT_A_COMPONENT: not a WebAssembly component (field component)");

    // Version 0.2.0 fires every second and logs each fire.
    let v2 = std::fs::read_to_string(&chaos_manifest)
        .unwrap()
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"")
        .replace("[triggers]\n", "[triggers]\ncron = [\"* * * * * *\"]\n");
    let v2_path = dir.path().join("plugin.toml");
    std::fs::write(&v2_path, v2).unwrap();
    let (ok, out, err) = run_cli(
        &url,
        &tenant_env,
        &["plugin", "deploy", chaos_wasm.to_str().unwrap(), "--manifest", v2_path.to_str().unwrap()],
    )
    .await;
    assert!(ok && out.trim() == "deployed chaos version 0.2.0", "{out}{err}");

    let mut follow = Command::new(BIN)
        .args(["plugin", "logs", "chaos", "--follow", "--tail", "1"])
        .env("SWITCHBOARD_URL", &url)
        .envs(tenant_env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(GUARD, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("logs --follow keeps running");
            if line.contains("cron * * * * * * fired") {
                return line;
            }
        }
    })
    .await
    .expect("a cron fire was logged");
    assert!(line.contains(" info "), "{line}");
    follow.start_kill().unwrap();

    let (ok, out, _) = run_cli(&url, &tenant_env, &["plugin", "list"]).await;
    assert!(ok && out.contains("chaos") && out.contains("0.2.0") && out.contains("cron \"* * * * * *\""), "{out}");
    let (ok, out, _) = run_cli(&url, &tenant_env, &["plugin", "rollback", "chaos"]).await;
    assert!(ok && out.trim() == "chaos is at version 0.1.0", "{out}");
    let (ok, out, _) = run_cli(&url, &tenant_env, &["plugin", "logs", "chaos", "--invocations"]).await;
    assert!(ok && out.contains("timer") && out.contains(" ok"), "{out}");
    let (ok, out, _) = run_cli(&url, &tenant_env, &["plugin", "disable", "chaos"]).await;
    assert!(ok && out.trim() == "chaos disabled", "{out}");
    let (ok, out, _) = run_cli(&url, &tenant_env, &["plugin", "list"]).await;
    assert!(ok && out.contains("disabled"), "{out}");

    let (ok, out, _) = run_cli(&url, &admin, &["key", "create", "--tenant", &tenant, "--label", "spare"]).await;
    let (key_id, spare) = out.trim().split_once(' ').unwrap();
    assert!(ok && key_id.starts_with("key_") && spare.starts_with("sk_live_"), "{out}");
    let (ok, out, _) = run_cli(&url, &admin, &["key", "revoke", "--tenant", &tenant, key_id]).await;
    assert!(ok && out.trim() == format!("key {key_id} revoked"), "{out}");
    // A Twilio-style credential: an account SID and an auth token.
    let (ok, out, err) = run_cli(&url, &admin, &["key", "create", "--tenant", &tenant, "--twilio"]).await;
    assert!(ok, "{err}");
    let sid = out.lines().nth(1).and_then(|l| l.strip_prefix("account SID ")).unwrap_or_else(|| panic!("{out}"));
    let token = out.lines().nth(2).and_then(|l| l.strip_prefix("auth token  ")).unwrap_or_else(|| panic!("{out}"));
    let token = token.strip_suffix(" (shown once)").unwrap();
    assert!(sid.starts_with("AC") && sid.len() == 34 && token.len() == 32, "{out}");
    let listed: Value = reqwest::Client::new()
        .get(format!("{url}/2010-04-01/Accounts/{sid}/Messages.json"))
        .basic_auth(sid, Some(token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["messages"], json!([]), "{listed}");
    let (ok, _, err) = run_cli(&url, &[("SWITCHBOARD_API_KEY", spare)], &["plugin", "list"]).await;
    assert!(!ok && err.trim() == "error: UNAUTHORIZED: invalid or revoked API key", "{err}");

    let (ok, _, _) = run_cli(&url, &admin, &["tenant", "disable", &tenant]).await;
    assert!(ok);
    let (ok, _, err) = run_cli(&url, &tenant_env, &["plugin", "list"]).await;
    assert!(!ok && err.trim() == "error: TENANT_DISABLED: this tenant is disabled", "{err}");

    // Every admin action above is in the audit log.
    let audit: Value = reqwest::Client::new()
        .get(format!("{url}/admin/v1/audit"))
        .bearer_auth("cli-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "tenant.disable",
            "key.create",
            "key.revoke",
            "key.create",
            "plugin.disable",
            "plugin.rollback",
            "plugin.deploy",
            "plugin.deploy",
            "number.add",
            "tenant.create"
        ]
    );
}

/// Polls a plugin's event until it has settled with `status` after at
/// least `runs` invocations (across processes there is nothing to
/// subscribe to; the guard bounds the wait).
async fn wait_event(server: &Server, plugin: &str, id: &str, status: &str, runs: usize) -> Value {
    tokio::time::timeout(GUARD, async {
        loop {
            let event = server.get(&format!("/v1/plugins/{plugin}/events/{id}")).await;
            let records = server.get(&format!("/v1/plugins/{plugin}/invocations?limit=1000")).await;
            let ran = records["data"].as_array().unwrap().iter().filter(|r| r["event_id"] == id).count();
            if event["status"] == status && ran >= runs {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the event settled")
}

/// `plugin kv`, `timers`, `events` and `retry`: what an author uses to look
/// into a running plugin and run a dead letter again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_state_and_dead_letters_are_read_and_retried_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("settings.toml");
    std::fs::write(&config, "[limits]\nevent_max_attempts = 1\n").unwrap();
    let server = serve(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let env = [("SWITCHBOARD_API_KEY", server.key.as_str())];
    let client = reqwest::Client::new();
    let post_event = |payload: Value| {
        let request = client
            .post(format!("{}/v1/events/appointment-reminders", server.url))
            .bearer_auth(&server.key)
            .json(&json!({"name": "appointment.booked", "payload": payload}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string() }
    };
    let booked =
        post_event(json!({"id": "a-7", "phone": "+15551230007", "doctor": "Dr. Ortiz", "at": "2099-03-04T09:15"}))
            .await;
    wait_event(&server, "appointment-reminders", &booked, "done", 1).await;

    let (ok, out, err) = run_cli(&server.url, &env, &["plugin", "kv", "appointment-reminders"]).await;
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("appt:a-7") && l.contains("Dr. Ortiz")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("phone:+15551230007") && l.ends_with("\"a-7\"")), "{out}");
    let (ok, out, _) =
        run_cli(&server.url, &env, &["plugin", "kv", "appointment-reminders", "--prefix", "phone:", "--json"]).await;
    let listed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert!(ok && listed["data"].as_array().unwrap().len() == 1 && listed["data"][0]["value"] == "a-7", "{out}");
    let (ok, out, _) = run_cli(&server.url, &env, &["plugin", "timers", "appointment-reminders"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(ok && lines[0].starts_with("DUE") && lines.len() == 3, "two reminders: {out}");
    assert!(lines[1].starts_with("2099-03-03T09:15:00") && lines[2].starts_with("2099-03-04T07:15:00"), "{out}");
    let (ok, out, _) = run_cli(&server.url, &env, &["plugin", "events", "appointment-reminders"]).await;
    assert!(ok && out.trim() == "appointment-reminders has no dead-lettered events", "{out}");

    // A booking the plugin cannot read fails, once (the settings allow one
    // attempt), and is dead-lettered; a retry runs it again on that version.
    let bad = post_event(json!({"id": "a-8"})).await;
    wait_event(&server, "appointment-reminders", &bad, "dead", 1).await;
    let (ok, out, _) = run_cli(&server.url, &env, &["plugin", "events", "appointment-reminders"]).await;
    let row = out.lines().find(|l| l.starts_with(&bad)).unwrap_or_else(|| panic!("{out}"));
    assert!(ok && row.contains("0.1.0") && row.contains("missing field"), "{out}");
    let (ok, out, err) = run_cli(&server.url, &env, &["plugin", "retry", "appointment-reminders", &bad]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("event {bad} is pending again; it runs version 0.1.0")), "{out}");
    let event = wait_event(&server, "appointment-reminders", &bad, "dead", 2).await;
    assert_eq!(event["attempts"], 1, "a retry starts from the first attempt: {event}");
    let (ok, _, err) = run_cli(&server.url, &env, &["plugin", "retry", "appointment-reminders", &booked]).await;
    assert!(!ok && err.trim().starts_with("error: EVENT_NOT_DEAD: "), "{err}");
    let (ok, _, err) = run_cli(&server.url, &env, &["plugin", "kv", "no-such-plugin"]).await;
    assert!(!ok && err.trim() == "error: PLUGIN_NOT_FOUND: no plugin named \"no-such-plugin\"", "{err}");
}

/// Every benchmark scenario runs end to end on loopback (tiny loads: this
/// checks the harness and its output, not speed) and exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scenarios_run_and_print_one_json_line_per_figure() {
    let plugins = workspace().join("plugins");
    let scenarios: [(&str, &[&str], &[&str]); 6] = [
        (
            "keyword",
            &["--messages", "300", "--connections", "8"],
            &["throughput", "accept_p99", "end_to_end_p50", "half_rate_accept_p99"],
        ),
        ("send", &["--messages", "300", "--connections", "8"], &["throughput", "accept_p50", "end_to_end_p99"]),
        ("invoke", &["--messages", "200"], &["wasm_p50", "native_p50", "wasm_to_native"]),
        (
            "tenants",
            &["--tenants", "4", "--messages", "40", "--connections", "4"],
            &["resident_memory", "startup", "throughput"],
        ),
        ("timers", &["--messages", "50", "--connections", "4"], &["first_late", "last_late", "dispatch_rate"]),
        // Node processes on PostgreSQL (127.0.0.1:5432 unless SWITCHBOARD_TEST_DATABASE names one).
        (
            "cluster",
            &["--messages", "60", "--connections", "4"],
            &[
                "throughput_1_node",
                "throughput_2_nodes",
                "throughput_3_nodes",
                "deploy_seen_ms_2_nodes",
                "deploy_seen_ms_3_nodes",
            ],
        ),
    ];
    for (scenario, args, metrics) in scenarios {
        let out = tokio::time::timeout(
            GUARD,
            Command::new(BIN).arg("bench").arg(scenario).args(args).arg("--plugins-dir").arg(&plugins).output(),
        )
        .await
        .expect("bench finished")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{scenario}: {stderr}");
        let figures: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}): {l}")))
            .collect();
        for metric in metrics {
            let figure = figures
                .iter()
                .find(|f| f["metric"] == *metric)
                .unwrap_or_else(|| panic!("{scenario}: no {metric} in {figures:?}"));
            assert_eq!(figure["scenario"], scenario);
            assert!(figure["unit"].is_string());
            let value = figure["value"].as_f64().unwrap_or_else(|| panic!("{scenario}: {metric} is {figure}"));
            assert!(value.is_finite() && value >= 0.0, "{scenario}: {metric} = {value}");
        }
        assert!(stderr.contains(scenario), "a human summary goes to stderr: {stderr}");
    }
}

/// After a restart: every accepted inbound message is stored, and each
/// stored one has exactly one reply that reached the carrier.
async fn assert_each_answered_once(server: &Server, accepted: &[String]) {
    let inbound = server.messages("inbound").await;
    let stored: std::collections::HashSet<&str> = inbound.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in accepted {
        assert!(stored.contains(id.as_str()), "accepted message {id} was lost");
    }
    // Every reply reached the carrier. (A report the simulator had not yet
    // emitted when the process died is gone with it, as a carrier's report
    // is after its webhook retries run out: such replies stay `sent`.)
    let outbound = server.wait_status(stored.len(), &["sent", "delivered"]).await;
    let mut per_inbound = std::collections::HashMap::<&str, usize>::new();
    for m in &outbound {
        *per_inbound.entry(m["in_reply_to"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_inbound.len(), stored.len(), "every stored inbound message was answered");
    assert!(per_inbound.values().all(|&n| n == 1), "no message was answered twice");
}

/// The same under the load of `switchboard bench keyword`: 64 connections
/// posting flat out, the tenant's quotas out of the way, killed once 2,000
/// messages are accepted (thousands are then in flight: accepted and not
/// run, run and not committed, committed and not sent, sent and not
/// recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_full_keyword_load_loses_nothing_and_duplicates_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CONNECTIONS: usize = 64;
    const KILL_AT: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let unlimited = dir.path().join("unlimited.toml");
    std::fs::write(
        &unlimited,
        "[limits]\ntenant_invocations_per_minute = 100000000\ntenant_sends_per_day = 100000000\n",
    )
    .unwrap();
    let server = serve(dir.path(), &["--config", unlimited.to_str().unwrap()]).await;
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url) = (client.clone(), server.url.clone());
            let (next, accepted, enough) = (next.clone(), accepted.clone(), enough.clone());
            tokio::spawn(async move {
                // Until the process dies under it.
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Ok(id) = post_inbound(&client, &url, &customer(i), "HOURS").await else { break };
                    let mut accepted = accepted.lock().unwrap();
                    accepted.push(id);
                    if accepted.len() == KILL_AT {
                        enough.notify_one();
                    }
                }
            })
        })
        .collect();
    enough.notified().await;
    server.kill9().await;
    for worker in workers {
        worker.await.unwrap();
    }
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    assert!(accepted.len() >= KILL_AT);

    let server = serve(dir.path(), &["--config", unlimited.to_str().unwrap()]).await;
    assert_each_answered_once(&server, &accepted).await;
}

/// A keyword-reply manifest at `version` whose HOURS reply is `hours`, its
/// component the built one (for deploys from a scratch folder).
fn keyword_reply_version(dir: &Path, version: &str, hours: &str) -> PathBuf {
    let source = workspace().join("plugins/keyword-reply/plugin.toml");
    let wasm = workspace().join("target/wasm32-wasip2/plugin/keyword_reply.wasm");
    let manifest = std::fs::read_to_string(&source)
        .unwrap()
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        .replace("Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.", hours)
        .replace("../../target/wasm32-wasip2/plugin/keyword_reply.wasm", wasm.to_str().unwrap());
    let path = dir.join(format!("keyword-reply-{version}.toml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

/// Staging a version, replaying the day against it (summary, diff, JSON,
/// `--check`), and a canary rolled back and one promoted, through the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_staged_replayed_and_canaried_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    let (url, env) = (server.url.clone(), [("SWITCHBOARD_API_KEY", server.key.as_str())]);
    let client = reqwest::Client::new();
    for i in 0..6 {
        post_inbound(&client, &url, &customer(i), "HOURS").await.unwrap();
    }
    server.wait_status(6, &["delivered"]).await;

    let scratch = tempfile::tempdir().unwrap();
    let new_hours = "Demo Store is now open every day 8am-8pm.";
    let v2 = keyword_reply_version(scratch.path(), "0.2.0", new_hours);
    let (ok, out, err) = run_cli(&url, &env, &["plugin", "deploy", v2.to_str().unwrap(), "--stage"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "staged keyword-reply version 0.2.0; version 0.1.0 stays active");

    let replay = ["plugin", "replay", "keyword-reply", "--version", "0.2.0", "--since", "1h"];
    let (ok, out, err) = run_cli(&url, &env, &replay).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("replayed 6 recorded invocations of keyword-reply against version 0.2.0"), "{out}");
    let count =
        |label: &str| out.lines().find_map(|l| l.trim().strip_prefix(label)).map(|n| n.trim().parse::<u32>().unwrap());
    assert_eq!((count("different"), count("same"), count("new failures")), (Some(6), Some(0), Some(0)), "{out}");
    assert!(out.contains("- body: Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm."), "{out}");
    assert!(out.contains(&format!("+ body: {new_hours}")), "{out}");

    let (ok, out, err) = run_cli(&url, &env, &[&replay[..], &["--json"]].concat()).await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["report"]["totals"]["different"], 6);
    let (ok, _, err) = run_cli(&url, &env, &[&replay[..], &["--check"]].concat()).await;
    assert!(!ok);
    assert!(err.trim().ends_with("error: 6 invocations came out different or failed on version 0.2.0"), "{err}");

    // Canaries: one rolled back, one promoted by hand.
    let v3 = keyword_reply_version(scratch.path(), "0.3.0", new_hours);
    let (ok, out, err) = run_cli(&url, &env, &["plugin", "deploy", v3.to_str().unwrap(), "--canary", "10"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "keyword-reply version 0.3.0 is a canary for 10% of customers; version 0.1.0 takes the rest"
    );
    assert_eq!(server.get("/v1/plugins/keyword-reply").await["canary"]["version"], "0.3.0");
    let (ok, out, err) = run_cli(&url, &env, &["plugin", "rollback", "keyword-reply", "--canary"]).await;
    assert!(ok && out.contains("canary is rolled back; version 0.1.0 takes every event"), "{out}{err}");
    let v4 = keyword_reply_version(scratch.path(), "0.4.0", new_hours);
    let deploy = ["plugin", "deploy", v4.to_str().unwrap(), "--canary", "20", "--promote-after", "1h"];
    let (ok, _, err) = run_cli(&url, &env, &deploy).await;
    assert!(ok, "{err}");
    let (ok, out, err) = run_cli(&url, &env, &["plugin", "promote", "keyword-reply"]).await;
    assert!(ok && out.trim() == "keyword-reply is at version 0.4.0", "{out}{err}");
    let (ok, _, err) = run_cli(&url, &env, &["plugin", "promote", "keyword-reply"]).await;
    assert!(!ok);
    assert_eq!(err.trim(), "error: NO_CANARY: plugin \"keyword-reply\" has no canary");
}
