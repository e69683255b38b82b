//! Python: componentize-py turns the project's `app` module (`app.py`) into
//! a component. It defines `class WitWorld(wit_world.WitWorld)` with
//! `on_inbound`, `on_event`, `on_timer` and `on_delivery`, and imports the
//! capabilities from `wit_world.imports`.

use super::{COMPONENTIZE_PY, Project, ToolchainError, Tools, available, run};
use std::process::Command;

pub fn build(project: &Project, tools: &Tools) -> Result<(), ToolchainError> {
    if !available("python3") {
        return Err(ToolchainError::Missing {
            language: "Python",
            what: "Python 3 (python3)",
            hint: "install Python 3.10 or later with pip",
        });
    }
    let wit = tools.wit()?;
    // A plain `--target` folder, not a virtual environment: it still works
    // after the rename that completes the install.
    let packages = tools.installed(&format!("py-componentize-py-{COMPONENTIZE_PY}"), |dir| {
        eprintln!("installing componentize-py {COMPONENTIZE_PY} from PyPI (once)");
        run(
            "pip install",
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"])
                .arg("--target")
                .arg(dir)
                .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
        )
    })?;
    eprintln!("building {} with componentize-py {COMPONENTIZE_PY}", project.manifest.name);
    run(
        "componentize-py",
        Command::new("python3")
            .current_dir(&project.dir)
            .env("PYTHONPATH", &packages)
            // Only the project's own folder is the app's path.
            .env_remove("VIRTUAL_ENV")
            .args([
                "-c",
                "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
            ])
            .arg("--wit-path")
            .arg(&wit)
            .args(["--world", "plugin", "componentize", "app", "--python-path", ".", "--output"])
            .arg(&project.component),
    )
}
