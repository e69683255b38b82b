//! Tidy: the engine's layers only look down, and the README's settings
//! table names every setting.
//!
//! Reads `engine/src` and fails when a module imports (`crate::…`) from a
//! module above it in [`LAYERS`]. The table is the one in ARCHITECTURE.md:
//! a module may use every layer below its own, and, within its layer, the
//! modules listed before it. Tests inside a module count like its code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The engine's top-level modules, lowest layer first.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundations", &["ids", "clock", "limits", "billing", "secrets", "net", "metrics", "telemetry"]),
    ("store", &["store"]),
    ("domain", &["sms", "phone", "compliance", "tenancy", "manifest", "directory"]),
    ("carriers and plugins", &["connectors", "runtime"]),
    ("work", &["pipeline", "scheduler", "deploy", "control", "senders"]),
    ("HTTP API", &["api"]),
    ("wiring", &["app"]),
    ("commands", &["bench", "toolchain", "cli", "properties"]),
];

/// `(layer, position in the layer)` of every module.
fn ranks() -> BTreeMap<&'static str, (usize, usize)> {
    let mut ranks = BTreeMap::new();
    for (layer, (_, modules)) in LAYERS.iter().enumerate() {
        for (position, module) in modules.iter().enumerate() {
            assert!(ranks.insert(*module, (layer, position)).is_none(), "{module} is listed twice");
        }
    }
    ranks
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`pipeline/worker.rs` →
/// `pipeline`, `tenancy.rs` → `tenancy`); `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (module != "lib" && module != "main").then_some(module)
}

/// The modules a file names as `crate::module` or `crate::{module, …}`,
/// with the line they are on; comments are skipped.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` in macros and identifiers ending in `crate` are not paths of this crate.
            if preceded.ends_with('$') || preceded.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        found.push((number + 1, name));
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                found.push((number + 1, name));
            }
        }
    }
    found
}

/// Every import that points to a module above the importer (or to a
/// module missing from the table), as readable lines.
fn violations(src: &Path) -> Vec<String> {
    let ranks = ranks();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let Some(module) = module_of(src, &file) else { continue };
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        let Some(&own) = ranks.get(module.as_str()) else {
            problems.push(format!("{shown}: module `{module}` has no layer; add it to LAYERS and ARCHITECTURE.md"));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, target) in imports(&text) {
            if target == module {
                continue;
            }
            match ranks.get(target.as_str()) {
                None => problems.push(format!("{shown}:{line}: `crate::{target}` is not a module in LAYERS")),
                Some(&theirs) if theirs > own => problems.push(format!(
                    "{shown}:{line}: `{module}` ({}) imports `{target}` ({}), which is above it",
                    LAYERS[own.0].0, LAYERS[theirs.0].0
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

#[test]
fn modules_import_only_from_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(problems.is_empty(), "imports that point up the layers (see ARCHITECTURE.md):\n{}", problems.join("\n"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let ranks = ranks();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 10, "lib.rs declares the modules");
    let missing: Vec<&&str> = declared.iter().filter(|m| !ranks.contains_key(**m)).collect();
    assert!(missing.is_empty(), "modules without a layer: {missing:?}");
    let stale: Vec<&&str> = ranks.keys().filter(|m| !declared.contains(m)).collect();
    assert!(stale.is_empty(), "LAYERS lists modules that do not exist: {stale:?}");
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The checker itself: an upward import, a grouped one and a comment.
    let dir = tempfile::tempdir().expect("temporary folder");
    let src = dir.path();
    std::fs::create_dir_all(src.join("store")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod store;\n").unwrap();
    std::fs::write(
        src.join("store/mod.rs"),
        "use crate::clock::Clock;\n// crate::api is only named here\nuse crate::{ids, pipeline::Context};\n",
    )
    .unwrap();
    let problems = violations(src);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("store/mod.rs:3: `store` (store) imports `pipeline` (work)"), "{problems:?}");
}

/// The `pub` fields of `struct name` in `source`.
fn struct_fields(source: &str, name: &str) -> Vec<String> {
    let start = source.find(&format!("pub struct {name} {{")).unwrap_or_else(|| panic!("struct {name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("the struct ends")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub ")?.split_once(':').map(|(f, _)| f.trim().to_string()))
        .collect()
}

#[test]
fn the_readme_lists_every_setting_and_its_variable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let mut variables: Vec<String> = switchboard::app::SETTING_KEYS
        .iter()
        .filter(|k| !["limits", "pricing", "metrics", "connectors"].contains(k))
        .map(|k| k.to_uppercase())
        .collect();
    let nested = [
        ("LIMITS", read("engine/src/limits.rs"), "Limits"),
        ("PRICING", read("engine/src/billing.rs"), "PricingSettings"),
        ("METRICS", read("engine/src/app/mod.rs"), "MetricsSettings"),
    ];
    for (table, source, name) in &nested {
        variables.extend(struct_fields(source, name).iter().map(|f| format!("{table}__{}", f.to_uppercase())));
    }
    variables.push("CONNECTORS__<NAME>__<KEY>".into());
    let missing: Vec<&String> =
        variables.iter().filter(|v| !readme.contains(&format!("| `SWITCHBOARD_{v}` |"))).collect();
    assert!(missing.is_empty(), "README.md's settings table lacks SWITCHBOARD_{missing:?}");
}
