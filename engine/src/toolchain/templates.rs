//! The projects `switchboard plugin new` writes: the visit bot of
//! `examples/visit-bot-{rs,js,py}` (a keyword handler, kv, a timer and
//! configuration), with its manifest, the build files pinning the right
//! toolchain versions, a test and a README.

use super::{COMPONENTIZE_JS, COMPONENTIZE_PY, JCO, Language, ToolchainError, io};
use std::path::{Path, PathBuf};

const MANIFEST: &str = include_str!("../../../examples/visit-bot-js/plugin.toml");
const JS_SOURCE: &str = include_str!("../../../examples/visit-bot-js/plugin.js");
const PY_SOURCE: &str = include_str!("../../../examples/visit-bot-py/app.py");
const RS_SOURCE: &str = include_str!("../../../examples/visit-bot-rs/src/lib.rs");

/// Where the engine's own SDK sources are, when this binary runs from a
/// source checkout: a new Rust project depends on them by path.
fn sdk_checkout() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-guest");
    sdk.join("Cargo.toml").is_file().then(|| sdk.canonicalize().ok()).flatten()
}

/// Writes a new project named `name` into `dir` (which must not exist or
/// be empty). Returns the files written, relative to `dir`.
pub fn new_project(dir: &Path, name: &str, language: Language) -> Result<Vec<String>, ToolchainError> {
    // A letter first too: the name is also a crate and package name.
    if !crate::manifest::valid_name(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(ToolchainError::Project(format!(
            "{name:?} is not a plugin name: use 1 to 64 lower-case letters, digits or dashes, starting with a letter"
        )));
    }
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ToolchainError::Project(format!("{} exists and is not empty", dir.display())));
    }
    let files = match language {
        Language::Rust => rust(name),
        Language::Js => javascript(name),
        Language::Python => python(name),
    };
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(io(format!("cannot write {}", path.display())))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// The example's manifest, renamed, writing its component to `component`.
fn manifest(name: &str, language: Language, component: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in MANIFEST.lines() {
        lines.push(if line.starts_with("name = ") {
            format!("name = {name:?}")
        } else if line.starts_with("description = ") {
            format!("description = \"Counts visits (VISIT, VISITS) and texts a follow-up later ({})\"", language.name())
        } else if line.starts_with("component = ") {
            format!("component = {component:?}")
        } else {
            line.to_string()
        });
    }
    lines.join("\n") + "\n"
}

fn rust(name: &str) -> Vec<(String, String)> {
    let crate_file = name.replace('-', "_");
    let sdk = match sdk_checkout() {
        Some(path) => format!("switchboard-sdk = {{ path = {:?} }}", path.display().to_string()),
        None => "switchboard-sdk = \"0.1\"".to_string(),
    };
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# Its own workspace, wherever the folder is.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
{sdk}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# Small components: they are compiled once at deploy and instantiated per event.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#
    );
    let test = format!(
        r#"//! Runs the built component in the engine's sandbox (`switchboard run`)
//! and checks the effects it would commit. Build first: `switchboard plugin build`.

use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {{
    let out = Command::new(std::env::var("SWITCHBOARD").unwrap_or_else(|_| "switchboard".into()))
        .args(["run", "target/wasm32-wasip2/release/{crate_file}.wasm", "--manifest", "plugin.toml", "--json"])
        .args(args)
        .output()
        .expect("switchboard is on PATH (or set SWITCHBOARD)");
    assert!(out.status.success(), "{{}}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}}

#[test]
fn a_visit_is_counted_answered_and_followed_up() {{
    let result = run(&["--inbound", "+15551234567:VISIT", "--kv", "visits:+15551234567=2"]);
    assert_eq!(result["outcome"], "ok");
    assert_eq!(result["sends"][0]["body"], "Welcome! This is visit #3.");
    assert_eq!(result["kv_writes"][0]["value"], "3");
    assert_eq!(result["timers"][0]["key"], "followup:+15551234567");
}}
"#
    );
    vec![
        ("Cargo.toml".into(), cargo),
        ("src/lib.rs".into(), RS_SOURCE.to_string()),
        ("tests/visits.rs".into(), test),
        (
            "plugin.toml".into(),
            manifest(name, Language::Rust, &format!("target/wasm32-wasip2/release/{crate_file}.wasm")),
        ),
        (".gitignore".into(), "/target\n".into()),
        ("README.md".into(), readme(name, Language::Rust)),
    ]
}

fn javascript(name: &str) -> Vec<(String, String)> {
    let package = format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "main": "plugin.js",
  "scripts": {{
    "build": "switchboard plugin build",
    "test": "node --test"
  }},
  "devDependencies": {{
    "@bytecodealliance/jco": "{JCO}",
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}"
  }}
}}
"#
    );
    let test = format!(
        r#"// Runs the built component in the engine's sandbox (`switchboard run`)
// and checks the effects it would commit. Build first: `switchboard plugin build`.
import {{ test }} from 'node:test';
import assert from 'node:assert/strict';
import {{ execFileSync }} from 'node:child_process';

function run(...args) {{
  const out = execFileSync(process.env.SWITCHBOARD ?? 'switchboard',
    ['run', 'build/{name}.wasm', '--manifest', 'plugin.toml', '--json', ...args]);
  return JSON.parse(out);
}}

test('a visit is counted, answered and followed up', () => {{
  const result = run('--inbound', '+15551234567:VISIT', '--kv', 'visits:+15551234567=2');
  assert.equal(result.outcome, 'ok');
  assert.equal(result.sends[0].body, 'Welcome! This is visit #3.');
  assert.equal(result.kv_writes[0].value, '3');
  assert.equal(result.timers[0].key, 'followup:+15551234567');
}});
"#
    );
    vec![
        ("package.json".into(), package),
        ("plugin.js".into(), JS_SOURCE.to_string()),
        ("plugin.test.js".into(), test),
        ("plugin.toml".into(), manifest(name, Language::Js, &format!("build/{name}.wasm"))),
        (".gitignore".into(), "/build\n/node_modules\n".into()),
        ("README.md".into(), readme(name, Language::Js)),
    ]
}

fn python(name: &str) -> Vec<(String, String)> {
    let pyproject = format!(
        r#"[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"

[project.optional-dependencies]
# `switchboard plugin build` installs exactly this version itself.
build = ["componentize-py=={COMPONENTIZE_PY}"]
"#
    );
    let test = format!(
        r#""""Runs the built component in the engine's sandbox (`switchboard run`)
and checks the effects it would commit. Build first: `switchboard plugin build`.
Run with `python3 -m unittest`."""

import json
import os
import subprocess
import unittest


def run(*args):
    out = subprocess.run(
        [os.environ.get("SWITCHBOARD", "switchboard"), "run", "build/{name}.wasm",
         "--manifest", "plugin.toml", "--json", *args],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


class VisitTest(unittest.TestCase):
    def test_a_visit_is_counted_answered_and_followed_up(self):
        result = run("--inbound", "+15551234567:VISIT", "--kv", "visits:+15551234567=2")
        self.assertEqual(result["outcome"], "ok")
        self.assertEqual(result["sends"][0]["body"], "Welcome! This is visit #3.")
        self.assertEqual(result["kv_writes"][0]["value"], "3")
        self.assertEqual(result["timers"][0]["key"], "followup:+15551234567")


if __name__ == "__main__":
    unittest.main()
"#
    );
    vec![
        ("pyproject.toml".into(), pyproject),
        ("app.py".into(), PY_SOURCE.to_string()),
        ("test_app.py".into(), test),
        ("plugin.toml".into(), manifest(name, Language::Python, &format!("build/{name}.wasm"))),
        (".gitignore".into(), "/build\n__pycache__/\n".into()),
        ("README.md".into(), readme(name, Language::Python)),
    ]
}

fn readme(name: &str, language: Language) -> String {
    let (source, test) = match language {
        Language::Rust => ("src/lib.rs", "cargo test"),
        Language::Js => ("plugin.js", "node --test"),
        Language::Python => ("app.py", "python3 -m unittest"),
    };
    let tools = match language {
        Language::Rust => "cargo and the `wasm32-wasip2` target (added by the build through rustup)".to_string(),
        Language::Js => {
            format!("Node.js 20+ and npm; the build installs jco {JCO} and componentize-js {COMPONENTIZE_JS} once")
        }
        Language::Python => format!("Python 3.10+; the build installs componentize-py {COMPONENTIZE_PY} once"),
    };
    format!(
        r#"# {name}

A Switchboard plugin in {lang}: texting VISIT counts the sender's visits
(kv), answers with the count and schedules a follow-up text (a timer);
VISITS answers with the count so far. The follow-up's delay and text are
in `[config]` of `plugin.toml`.

- `{source}`: the handlers.
- `plugin.toml`: name, version, capabilities, triggers (the keywords), config.

Needs {tools}.

```sh
switchboard plugin build          # writes the component named in plugin.toml
{test}                     # runs it in the sandbox with `switchboard run`
switchboard run {component} --manifest plugin.toml --inbound '+15551234567:VISIT'
switchboard dev                   # a local engine that redeploys on every save
switchboard plugin deploy         # to the engine at SWITCHBOARD_URL, with SWITCHBOARD_API_KEY
```
"#,
        lang = language.name(),
        component = match language {
            Language::Rust => format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
            _ => format!("build/{name}.wasm"),
        }
    )
}
