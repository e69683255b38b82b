//! Helpers shared by the tests that run the `switchboard` binary.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// A guard against hangs (not a timing assertion).
pub const GUARD: Duration = Duration::from_secs(120);

/// Starts `switchboard serve` with `args` on `data_dir` and `env`, and
/// returns it with what follows `announce` on the line it prints.
pub async fn serve(args: &[&str], data_dir: &Path, env: &[(&str, &str)], announce: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().copied())
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced = tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(announce) {
                return rest.to_string();
            }
        }
        panic!("switchboard exited before printing {announce:?}");
    })
    .await
    .expect("switchboard starts serving");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, announced)
}
