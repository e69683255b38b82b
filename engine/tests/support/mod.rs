//! Helpers shared by the tests that run the `switchboard` binary.

use std::path::{Path, PathBuf};
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

#[allow(dead_code)] // not every test binary starts the demo
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Where an engine keeps its data: a scratch PostgreSQL database when the
/// suite runs on PostgreSQL, else (`None`) SQLite in the data directory.
#[allow(dead_code)] // not every test binary runs on both stores
pub async fn scratch_database() -> Option<switchboard::store::postgres::scratch::ScratchDatabase> {
    let server = std::env::var("SWITCHBOARD_TEST_DATABASE").ok().filter(|u| u.starts_with("postgres"))?;
    Some(switchboard::store::postgres::scratch::ScratchDatabase::create(&server).await.expect("a scratch database"))
}

/// Starts `switchboard serve` on a free loopback port with the demo tenant
/// (the workspace's plugins), on `database_url` or SQLite in `data_dir`;
/// returns it with its base URL.
#[allow(dead_code)] // not every test binary starts the demo
pub async fn demo_engine(
    data_dir: &Path,
    database_url: Option<&str>,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> (Child, String) {
    let plugins = workspace().join("plugins");
    let cache = workspace().join("target/test-compile-cache");
    let mut env = vec![("SWITCHBOARD_COMPILE_CACHE_DIR", cache.to_str().unwrap().to_string())];
    if let Some(url) = database_url {
        // Nodes on one database share the key that seals its secrets.
        env.push(("SWITCHBOARD_DATABASE_URL", url.to_string()));
        env.push(("SWITCHBOARD_SECRET_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()));
    }
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra_env);
    let mut all_args = vec!["--listen", "127.0.0.1:0", "--plugins-dir", plugins.to_str().unwrap()];
    all_args.extend_from_slice(args);
    serve(&all_args, data_dir, &env, "Switchboard is listening on ").await
}
