//! Stamps the binary with the git revision it was built from, for
//! `switchboard --version` (`SWITCHBOARD_GIT_REVISION` overrides it where the
//! source comes without `.git`, as in a container build), and builds it
//! again when a migration is added.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_GIT_REVISION");
    // `sqlx::migrate!` embeds the migration files at compile time, and
    // cargo does not know it reads them: a new migration builds again.
    println!("cargo:rerun-if-changed=migrations");
    let revision = match std::env::var("SWITCHBOARD_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_string(),
        _ => git_revision().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=SWITCHBOARD_GIT_REVISION={revision}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn git_revision() -> Option<String> {
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    // Build again when HEAD moves: a commit, a checkout, a fetch into the
    // current branch. Only files that exist are named: a missing one would
    // make cargo run this script on every build.
    for watched in ["HEAD", "packed-refs", "refs/heads"] {
        let path = Path::new(&git_dir).join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
