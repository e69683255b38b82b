//! The binary as an operator installs and runs it: `--version` names the
//! git revision it was built from, every setting can come from a
//! `SWITCHBOARD_*` variable, and `/metrics` can have a listener of its own.

mod support;

use std::path::Path;
use support::{BIN, serve};
use tokio::process::Command;

#[tokio::test]
async fn version_names_the_release_and_the_git_revision() {
    let out = Command::new(BIN).arg("--version").output().await.unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(printed.trim(), format!("switchboard {} ({head})", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, metrics_url) = serve(
        &["--no-demo", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        dir.path(),
        &[("SWITCHBOARD_ADMIN_TOKEN", "metrics-admin-token")],
        "Metrics are served on ",
    )
    .await;
    let http = reqwest::Client::new();
    let refused = http.get(&metrics_url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let scraped = http.get(&metrics_url).bearer_auth("metrics-admin-token").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(text.contains("# TYPE switchboard_write_cycle_rows histogram"), "{text}");
    // Only /metrics is there.
    let other = http.get(metrics_url.replace("/metrics", "/v1/messages")).send().await.unwrap();
    assert_eq!(other.status(), 404);
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_the_environment_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "generic_webhook = true\n[limits]\nmessage_chars = 1600\n").unwrap();
    let (mut child, url) = serve(
        &["--no-demo", "--listen", "127.0.0.1:0", "--config", file.to_str().unwrap()],
        &dir.path().join("data"),
        &[("SWITCHBOARD_GENERIC_WEBHOOK", "false"), ("SWITCHBOARD_METRICS__OPEN", "true")],
        "Switchboard is listening on ",
    )
    .await;
    let http = reqwest::Client::new();
    // The variable turned the file's generic webhook off ...
    let generic = http
        .post(format!("{url}/v1/inbound/generic"))
        .json(&serde_json::json!({"from": "+15551234567", "to": "+15550000000", "message": "HI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(generic.status(), 404);
    // ... and opened /metrics, which needs no admin token now.
    assert_eq!(http.get(format!("{url}/metrics")).send().await.unwrap().status(), 200);
    child.kill().await.unwrap();

    // A bad variable: one line naming it, not its value; a failure exit.
    let out = Command::new(BIN)
        .args(["serve", "--no-demo", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("SWITCHBOARD_LIMITS__FUEL_PER_INVOCATION", "plenty")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: settings: SWITCHBOARD_LIMITS__FUEL_PER_INVOCATION: "), "{stderr}");
    assert!(!stderr.contains("plenty"), "{stderr}");
}
