//! Edge 8: one engine per SQLite data directory. A second engine on the
//! same directory refuses to start with one line naming the holder,
//! instead of starting with a stale view of the first one's opt-outs.

use super::*;
use std::process::Stdio;
use switchboard::app::App;

/// The release (or debug) binary built next to this test.
fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("switchboard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_data_directory_refuses_to_start() {
    if std::env::var(TEST_DATABASE_VAR).is_ok_and(|v| !v.is_empty()) {
        return; // the lock guards SQLite; engines on PostgreSQL share their database
    }
    let h = harness().plugins(&[]).start().await;
    let second = App::start(test_settings(h.dir.path()), h.clock.clone()).await;
    let err = second.err().expect("a second engine does not start").to_string();
    assert!(err.contains("in use by another engine"), "{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");

    // The binary says so in one line and exits non-zero.
    let output = tokio::process::Command::new(binary())
        .args(["serve", "--no-demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(h.dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("in use by another engine") && lines[0].contains("node local"), "{stderr}");

    // Released at shutdown: the same directory starts again.
    let h = h.restart().await;
    assert!(h.get("/v1/account").await["balance"].is_string());
}
