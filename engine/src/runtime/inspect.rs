//! What an uploaded component is, read before anything compiles it.
//!
//! Compiling costs far more than reading: a 210 KB upload with one
//! function of 20,000 locals holds a compiler thread for seconds (the cost
//! grows about with the square of the locals). So a deploy first walks the
//! binary — top-level imports and exports, and in every core module the
//! function count, each function's locals and body size — refuses what is
//! over the limits or not our world, validates the structure, and only
//! then compiles.

use super::RuntimeError;
use super::bindings::{WIT_PACKAGE, WIT_VERSION};
use super::capabilities::Grants;
use crate::limits::Limits;
use crate::manifest::Capability;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// The exports of the `switchboard:plugin/plugin` world.
pub const WORLD_EXPORTS: [&str; 4] = ["on-inbound", "on-event", "on-timer", "on-delivery"];

/// What the walk found.
#[derive(Debug, Default)]
pub struct Shape {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub functions: u64,
    pub max_locals: u64,
    pub max_body_bytes: usize,
}

/// Reads the component's shape; refuses bytes that are not a component.
pub fn shape(wasm: &[u8]) -> Result<Shape, RuntimeError> {
    if !Parser::is_component(wasm) {
        return Err(RuntimeError::NotAComponent(if Parser::is_core_wasm(wasm) {
            " (this is a core module; build with --target wasm32-wasip2)"
        } else {
            ""
        }));
    }
    let invalid = |e: wasmparser::BinaryReaderError| RuntimeError::Invalid(e.message().to_string());
    let mut shape = Shape::default();
    // Depth of nesting: 1 is the component itself.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.map_err(invalid)?;
                    // Type imports (`inbound-message`, ...) name shapes, not
                    // capabilities: instances and functions are what link.
                    if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        shape.imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    shape.exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::FunctionSection(section) => shape.functions += u64::from(section.count()),
            Payload::CodeSectionEntry(body) => {
                let mut locals = 0u64;
                for declared in body.get_locals_reader().map_err(invalid)? {
                    locals += u64::from(declared.map_err(invalid)?.0);
                }
                shape.max_locals = shape.max_locals.max(locals);
                shape.max_body_bytes = shape.max_body_bytes.max(body.range().len());
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Refuses a component over the limits, outside our world, or importing
/// what this engine does not provide; then validates its structure. Nothing
/// is compiled. An ungranted capability is not refused: it is linked to
/// `ungranted.rs`'s refusals.
pub fn check(wasm: &[u8], limits: &Limits) -> Result<Shape, RuntimeError> {
    let shape = shape(wasm)?;
    let too_big = |what: String| Err(RuntimeError::TooComplex(what));
    if shape.functions > u64::from(limits.component_max_functions) {
        return too_big(format!("{} functions; the limit is {}", shape.functions, limits.component_max_functions));
    }
    if shape.max_locals > u64::from(limits.component_max_locals) {
        return too_big(format!(
            "a function declares {} locals; the limit is {}",
            shape.max_locals, limits.component_max_locals
        ));
    }
    if shape.max_body_bytes > limits.component_max_function_bytes {
        return too_big(format!(
            "a function body is {} bytes; the limit is {}",
            shape.max_body_bytes, limits.component_max_function_bytes
        ));
    }
    for name in &shape.imports {
        check_import(name)?;
    }
    let missing: Vec<&str> = WORLD_EXPORTS.iter().copied().filter(|e| !shape.exports.iter().any(|x| x == e)).collect();
    if !missing.is_empty() {
        return Err(RuntimeError::WrongExports(format!("it does not export {}", missing.join(", "))));
    }
    // Every feature the parser knows: this pass refuses malformed bytes;
    // which features the engine runs is the compiler's call.
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .map_err(|e| RuntimeError::Invalid(e.message().to_string()))?;
    Ok(shape)
}

/// The capabilities a component imports that `grants` does not grant: their
/// calls will be refused with `access-denied`. Deploy answers name them.
pub fn ungranted_imports(shape: &Shape, grants: Grants) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = shape
        .imports
        .iter()
        .filter_map(|name| our_interface(name))
        .filter_map(|(interface, _)| Capability::from_interface(interface))
        .filter(|cap| !grants.contains(*cap))
        .map(Capability::name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// `switchboard:plugin/kv@0.1.0` → `("kv", "0.1.0")`.
fn our_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// An import is WASI (resolved, or refused, when linking) or one of our
/// interfaces at our version.
pub fn check_import(name: &str) -> Result<(), RuntimeError> {
    if name.starts_with("wasi:") {
        return Ok(());
    }
    let Some((interface, version)) = our_interface(name) else {
        return Err(RuntimeError::UnknownImport(name.to_string()));
    };
    if version != WIT_VERSION {
        return Err(RuntimeError::WrongWitVersion(format!(
            "component targets {WIT_PACKAGE}@{}; this engine provides {WIT_PACKAGE}@{WIT_VERSION}",
            if version.is_empty() { "(unversioned)" } else { version }
        )));
    }
    if interface == "types" {
        return Ok(());
    }
    match Capability::from_interface(interface) {
        Some(_) => Ok(()),
        None => Err(RuntimeError::UnknownImport(name.to_string())),
    }
}
