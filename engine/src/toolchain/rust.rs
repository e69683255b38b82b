//! Rust: `cargo build --release --target wasm32-wasip2` with the small,
//! stripped release profile `plugin new` writes; the `.wasm` cargo reports
//! is copied to the manifest's `component` when that is elsewhere (as it is
//! under a shared `CARGO_TARGET_DIR`).

use super::{Project, ToolchainError, available, io};
use std::io::BufRead;
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

pub fn build(project: &Project) -> Result<(), ToolchainError> {
    if !available("cargo") {
        return Err(ToolchainError::Missing {
            language: "Rust",
            what: "cargo",
            hint: "install Rust with rustup (https://rustup.rs), then run `rustup target add wasm32-wasip2`",
        });
    }
    if available("rustup") {
        // Cheap when the target is there already.
        let added =
            Command::new("rustup").args(["target", "add", TARGET]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !added.is_ok_and(|s| s.success()) {
            return Err(ToolchainError::Missing {
                language: "Rust",
                what: "the wasm32-wasip2 target",
                hint: "`rustup target add wasm32-wasip2` failed; run it to see why",
            });
        }
    }
    eprintln!("building {} with cargo (--release --target {TARGET})", project.manifest.name);
    let mut child = Command::new("cargo")
        .current_dir(&project.dir)
        .args(["build", "--release", "--target", TARGET, "--message-format", "json-render-diagnostics"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io("cannot run cargo"))?;
    let mut wasm = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.map_err(io("cannot read cargo's output"))?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact" {
            for file in message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str()) {
                if file.ends_with(".wasm") {
                    wasm = Some(std::path::PathBuf::from(file));
                }
            }
        }
    }
    let status = child.wait().map_err(io("cargo"))?;
    if !status.success() {
        return Err(ToolchainError::Failed { step: "cargo build".into(), status: status.to_string() });
    }
    let wasm = wasm.ok_or_else(|| {
        ToolchainError::Project("cargo built no .wasm: Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`".into())
    })?;
    let same = std::fs::canonicalize(&wasm).ok() == std::fs::canonicalize(&project.component).ok();
    if !same {
        std::fs::copy(&wasm, &project.component).map_err(io(format!(
            "cannot copy {} to {}",
            wasm.display(),
            project.component.display()
        )))?;
    }
    Ok(())
}
