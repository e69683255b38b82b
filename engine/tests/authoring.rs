//! A plugin author's loop, through the `switchboard` binary, in each
//! language: `plugin new` → `plugin build` (the pinned toolchain, installed
//! from its registry) → the project's own test (which runs the component
//! with `switchboard run`) → `plugin deploy` to a running engine → an SMS
//! from `simulate` → the reply.
//!
//! Toolchains install once under target/tools/guests (shared with `make
//! guests`); Rust projects share target/guest-rust for their dependencies.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// A guard against hangs (not a timing assertion): a first build installs
/// a toolchain from its registry.
const GUARD: Duration = Duration::from_secs(900);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `switchboard ARGS` in `dir`, with the shared tool caches; fails the test
/// unless it succeeds. Returns stdout.
async fn switchboard(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    run(Command::new(BIN).args(args), dir, env).await
}

async fn run(command: &mut Command, dir: &Path, env: &[(&str, &str)]) -> String {
    let ws = workspace();
    let out = tokio::time::timeout(
        GUARD,
        command
            .current_dir(dir)
            .env("SWITCHBOARD_TOOLS_DIR", ws.join("target/tools/guests"))
            .env("CARGO_TARGET_DIR", ws.join("target/guest-rust"))
            .env("SWITCHBOARD", BIN)
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("finishes")
    .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout.into_owned()
}

struct Server {
    _child: Child,
    url: String,
    key: String,
}

async fn serve(data_dir: &Path) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--plugins-dir")
        .arg(workspace().join("plugins"))
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next_line().await.unwrap().expect("switchboard listens");
        if let Some(url) = line.strip_prefix("Switchboard is listening on ") {
            break url.to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let key = std::fs::read_to_string(data_dir.join("demo-api-key")).unwrap().trim().to_string();
    Server { _child: child, url, key }
}

/// The loop for one language; `test` runs the project's own test.
async fn new_build_test_deploy_reply(lang: &str, test: &[&str]) {
    let name = format!("my-bot-{lang}");
    let scratch = tempfile::tempdir().unwrap();
    let project = scratch.path().join(&name);
    let wrote = switchboard(scratch.path(), &["plugin", "new", &name, "--lang", lang], &[]).await;
    assert!(wrote.contains("plugin.toml") && wrote.contains("README.md"), "{wrote}");

    let built = switchboard(&project, &["plugin", "build"], &[]).await;
    assert!(built.starts_with("built "), "{built}");

    // The project's own test: it runs the component with `switchboard run`.
    run(Command::new(test[0]).args(&test[1..]), &project, &[]).await;

    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path()).await;
    let api = [("SWITCHBOARD_URL", server.url.as_str()), ("SWITCHBOARD_API_KEY", server.key.as_str())];
    let deployed = switchboard(&project, &["plugin", "deploy"], &api).await;
    assert!(deployed.starts_with(&format!("deployed {name} version 0.1.0")), "{deployed}");
    let replies = switchboard(
        &project,
        &["simulate", "--from", "+15551234567", "--to", "+15550000000", "VISIT"],
        &api,
    )
    .await;
    assert!(
        replies.contains(&format!("[{name}] +15550000000 -> +15551234567: Welcome! This is visit #1.")),
        "{replies}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("rust", &["cargo", "test", "--quiet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("js", &["node", "--test"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("python", &["python3", "-m", "unittest", "-v"]).await;
}

/// A missing toolchain is named, with what to install, on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_toolchain_is_named_with_what_to_install() {
    let scratch = tempfile::tempdir().unwrap();
    let project = scratch.path().join("bot");
    switchboard(scratch.path(), &["plugin", "new", "bot", "--lang", "js", "--dir", "bot"], &[]).await;
    let out = Command::new(BIN)
        .args(["plugin", "build"])
        .current_dir(&project)
        .env("PATH", "/nonexistent")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: building a JavaScript plugin needs Node.js (node), which is not installed: \
         install Node.js 20 or later, which comes with npm"
    );
}
