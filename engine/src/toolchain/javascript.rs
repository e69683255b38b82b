//! JavaScript: jco's `componentize` (componentize-js, StarlingMonkey) turns
//! the project's entry module into a component. The entry is `main` in
//! `package.json` (default `plugin.js`); it exports `onInbound`, `onEvent`,
//! `onTimer` and `onDelivery`, and imports the capabilities as
//! `switchboard:plugin/<name>@0.1.0`.

use super::{COMPONENTIZE_JS, JCO, Project, ToolchainError, Tools, available, run};
use std::process::Command;

pub fn build(project: &Project, tools: &Tools) -> Result<(), ToolchainError> {
    let missing = |what, hint| ToolchainError::Missing { language: "JavaScript", what, hint };
    if !available("node") {
        return Err(missing("Node.js (node)", "install Node.js 20 or later, which comes with npm"));
    }
    if !available("npm") {
        return Err(missing("npm", "install npm (it comes with Node.js)"));
    }
    let wit = tools.wit()?;
    let jco = tools
        .installed(&format!("js-jco-{JCO}-componentize-js-{COMPONENTIZE_JS}"), |dir| {
            eprintln!("installing jco {JCO} and componentize-js {COMPONENTIZE_JS} from the npm registry (once)");
            run(
                "npm install",
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                    .arg(dir)
                    .arg(format!("@bytecodealliance/jco@{JCO}"))
                    .arg(format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}")),
            )
        })?
        .join("node_modules/.bin/jco");
    let entry = entry(project)?;
    eprintln!("building {} with jco {JCO} (componentize-js {COMPONENTIZE_JS})", project.manifest.name);
    // Outgoing requests go through the `http` capability, so the WASI HTTP
    // interfaces (which the engine does not link) are left out.
    run(
        "jco componentize",
        Command::new(jco)
            .current_dir(&project.dir)
            .arg("componentize")
            .arg(&entry)
            .arg("--wit")
            .arg(&wit)
            .args(["--world-name", "plugin", "--disable", "http", "fetch-event", "--out"])
            .arg(&project.component),
    )
}

/// `main` of `package.json`, else `plugin.js`.
fn entry(project: &Project) -> Result<String, ToolchainError> {
    let path = project.dir.join("package.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ToolchainError::Project(format!("cannot read {}: {e}", path.display())))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ToolchainError::Project(format!("{}: {e}", path.display())))?;
    let entry = package["main"].as_str().unwrap_or("plugin.js").to_string();
    if !project.dir.join(&entry).is_file() {
        return Err(ToolchainError::Project(format!(
            "{}: the entry module {entry:?} (`main`) does not exist",
            path.display()
        )));
    }
    Ok(entry)
}
