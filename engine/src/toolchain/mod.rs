//! Building plugins from source, in each language a plugin may be written
//! in, and the projects `switchboard plugin new` starts from.
//!
//! A plugin project is a folder with a `plugin.toml` whose `component` names
//! the file the build writes. Its language is told by the file beside it:
//! `Cargo.toml` (Rust), `package.json` (JavaScript) or `app.py` (Python).
//!
//! Every language builds against this engine's own WIT (written out of the
//! binary, so a plugin and the engine that runs it never disagree), with
//! toolchain versions pinned here ([`JCO`], [`COMPONENTIZE_JS`],
//! [`COMPONENTIZE_PY`]) and installed once from the npm registry or PyPI
//! into a tools folder ([`Tools`]).

mod javascript;
mod python;
mod rust;
pub mod templates;

use crate::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::Command;

/// jco, which drives componentize-js, from the npm registry.
pub const JCO: &str = "1.27.0";
/// componentize-js (StarlingMonkey), the version jco's range resolves to.
pub const COMPONENTIZE_JS: &str = "0.22.0";
/// componentize-py, from PyPI.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The WIT package every plugin targets: `switchboard:plugin@0.1.0`.
pub const WIT: &str = include_str!("../../../sdk-guest/wit/plugin.wit");
/// Its folder name in the tools folder.
const WIT_FOLDER: &str = "switchboard-plugin-0.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "py")]
    Python,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Js => "JavaScript",
            Language::Python => "Python",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{0}")]
    Project(String),
    #[error("building a {language} plugin needs {what}, which is not installed: {hint}")]
    Missing { language: &'static str, what: &'static str, hint: &'static str },
    #[error("{step} failed ({status}); its output is above")]
    Failed { step: String, status: String },
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolchainError {
    let what = what.into();
    move |error| ToolchainError::Io { what, error }
}

/// A plugin project on disk.
#[derive(Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub language: Language,
    /// Where the build writes the component (the manifest's `component`).
    pub component: PathBuf,
}

impl Project {
    /// Reads the project in `dir` (its `plugin.toml` and the file that
    /// tells its language).
    pub fn open(dir: &Path) -> Result<Project, ToolchainError> {
        // Absolute: each toolchain runs in the project folder.
        let dir = &std::path::absolute(dir).map_err(io(format!("cannot resolve {}", dir.display())))?;
        let manifest_path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| ToolchainError::Project(format!("cannot read {}: {e}", manifest_path.display())))?;
        let manifest = Manifest::from_toml(&text)
            .map_err(|e| ToolchainError::Project(format!("{}: {e}", manifest_path.display())))?;
        let component = manifest.component_path(&manifest_path).ok_or_else(|| {
            ToolchainError::Project(format!(
                "{}: set `component` to the file the build writes (for example \"build/{}.wasm\")",
                manifest_path.display(),
                manifest.name
            ))
        })?;
        let language = if dir.join("Cargo.toml").is_file() {
            Language::Rust
        } else if dir.join("package.json").is_file() {
            Language::Js
        } else if dir.join("app.py").is_file() {
            Language::Python
        } else {
            return Err(ToolchainError::Project(format!(
                "{} has no Cargo.toml (Rust), package.json (JavaScript) or app.py (Python) beside plugin.toml",
                dir.display()
            )));
        };
        Ok(Project { dir: dir.to_path_buf(), manifest, language, component })
    }
}

/// Where pinned toolchains are installed, once, and the WIT is written.
#[derive(Debug, Clone)]
pub struct Tools {
    pub dir: PathBuf,
}

impl Tools {
    /// `SWITCHBOARD_TOOLS_DIR`, else `$XDG_CACHE_HOME/switchboard/tools`,
    /// else `~/.cache/switchboard/tools`.
    pub fn from_env() -> Tools {
        let dir = std::env::var_os("SWITCHBOARD_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir);
            cache.join("switchboard").join("tools")
        });
        Tools { dir }
    }

    /// The engine's WIT package, written out (once per version).
    pub fn wit(&self) -> Result<PathBuf, ToolchainError> {
        let folder = self.dir.join("wit").join(WIT_FOLDER);
        let file = folder.join("plugin.wit");
        if std::fs::read_to_string(&file).is_ok_and(|t| t == WIT) {
            return Ok(folder);
        }
        std::fs::create_dir_all(&folder).map_err(io(format!("cannot create {}", folder.display())))?;
        write_atomically(&file, WIT.as_bytes())?;
        Ok(folder)
    }

    /// A folder installed by `install` (into a fresh folder, renamed into
    /// place when complete, so an interrupted or concurrent install never
    /// leaves a half-installed toolchain behind).
    fn installed(
        &self,
        name: &str,
        install: impl FnOnce(&Path) -> Result<(), ToolchainError>,
    ) -> Result<PathBuf, ToolchainError> {
        let target = self.dir.join(name);
        if target.is_dir() {
            return Ok(target);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(format!("cannot create {}", self.dir.display())))?;
        let staging = self.dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        install(&staging)?;
        if std::fs::rename(&staging, &target).is_err() {
            // Another build installed it meanwhile.
            let _ = std::fs::remove_dir_all(&staging);
        }
        Ok(target)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ToolchainError> {
    let staging = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&staging, bytes).map_err(io(format!("cannot write {}", staging.display())))?;
    std::fs::rename(&staging, path).map_err(io(format!("cannot write {}", path.display())))
}

/// Builds the project's component; returns its path.
pub fn build(project: &Project, tools: &Tools) -> Result<PathBuf, ToolchainError> {
    if let Some(parent) = project.component.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
    }
    match project.language {
        Language::Rust => rust::build(project)?,
        Language::Js => javascript::build(project, tools)?,
        Language::Python => python::build(project, tools)?,
    }
    if !project.component.is_file() {
        return Err(ToolchainError::Project(format!("the build wrote no {}", project.component.display())));
    }
    Ok(project.component.clone())
}

/// Runs `command`; its output goes to this process's stderr (stdout is
/// for what the command that called it prints).
fn run(step: &str, command: &mut Command) -> Result<(), ToolchainError> {
    let status = command.stdout(std::io::stderr()).status().map_err(io(format!("cannot run {step}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ToolchainError::Failed { step: step.to_string(), status: status.to_string() })
    }
}

/// Whether `program` runs (`program --version` succeeds).
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
