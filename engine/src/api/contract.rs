//! The OpenAPI document, completed with what every operation can answer.
//!
//! Handlers describe their own outcomes in `#[utoipa::path]`; what the
//! layers around them answer is added here, by the same rules the layers
//! follow, so the document lists every status a client can see:
//!
//! - every operation: 414 (request target too long), 429 (a tenant's,
//!   the admin API's or a source address's limit), 500, 503;
//! - with parameters or a body: 400; with a body: 413, and 415 for JSON;
//! - with path parameters: 404;
//! - behind a key or token: 401; behind a tenant key: 403
//!   (`TENANT_DISABLED`, and `TEST_KEY` where a test key cannot act).
//!
//! Limits the operator configures (the longest text) are written in from
//! the running settings, so the schema says what this engine enforces.
//! Unsigned integers get their real upper bound (the generator calls a
//! `u32` an `int32`, which would refuse values the handler takes).

use crate::limits::Limits;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    })
}

/// Adds `status` with `description` unless the operation lists it; a
/// listed one without a body gets the error body.
fn ensure(responses: &mut serde_json::Map<String, Value>, status: &str, description: &str) {
    match responses.get_mut(status) {
        Some(existing) => {
            if existing.get("content").is_none() {
                existing["content"] = error_response("")["content"].clone();
            }
        }
        None => {
            responses.insert(status.to_string(), error_response(description));
        }
    }
}

/// Completes `spec` (the generated document, as JSON) in place.
pub fn complete(spec: &mut Value, limits: &Limits) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let has_path_params = path.contains('{');
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "delete" | "patch") {
                continue;
            }
            let has_params = op.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
            let body = op.get("requestBody").cloned();
            let json_body = body.as_ref().is_some_and(|b| b["content"].get("application/json").is_some());
            let schemes: Vec<String> = op
                .get("security")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_object())
                .flat_map(|s| s.keys().cloned())
                .collect();
            let responses = op["responses"].as_object_mut().expect("every operation has responses");
            if has_params || body.is_some() || has_path_params {
                ensure(
                    responses,
                    "400",
                    "INVALID_PARAMETER (a query or path parameter), INVALID_JSON, INVALID_FIELD or INVALID_BODY \
                     (the body), INVALID_REQUEST (the request could not be read)",
                );
            }
            if !schemes.is_empty() {
                ensure(responses, "401", "UNAUTHORIZED: a missing, invalid or revoked API key (or admin token)");
            }
            if schemes.iter().any(|s| s == "api_key") {
                ensure(responses, "403", "TENANT_DISABLED; TEST_KEY where a test key cannot act");
            }
            if has_path_params {
                ensure(responses, "404", "no such resource (the code names which)");
            }
            if body.is_some() {
                ensure(responses, "413", "PAYLOAD_TOO_LARGE: the body is over the limit");
            }
            if json_body {
                ensure(responses, "415", "UNSUPPORTED_MEDIA_TYPE: send content-type: application/json");
            }
            ensure(responses, "414", "URI_TOO_LONG: the path is over 2,048 bytes or the query over 4,096");
            ensure(
                responses,
                "429",
                "RATE_LIMITED: over the tenant's, the admin API's or this address's failed-authentication limit",
            );
            responses.get_mut("429").expect("just ensured")["headers"] = json!({
                "Retry-After": { "description": "Seconds to wait", "schema": { "type": "integer", "minimum": 1 } }
            });
            ensure(responses, "500", "INTERNAL: our fault; it has been logged");
            ensure(responses, "503", "UNAVAILABLE: storage is unavailable; retry");
        }
    }
    unsigned_bounds(spec);
    // What the operator configured, not the defaults.
    let chars = json!(limits.message_chars);
    for pointer in [
        "/components/schemas/SendMessage/properties/message",
        "/components/schemas/BatchMessage/properties/message",
        "/components/schemas/SandboxInbound/properties/message",
        "/components/schemas/PutTemplate/properties/body",
    ] {
        if let Some(text) = spec.pointer_mut(pointer) {
            text["maxLength"] = chars.clone();
        }
    }
}

/// An integer schema with a lower bound of zero or more and no upper bound
/// is an unsigned Rust integer: its format's signed range is replaced by the
/// unsigned one the handler accepts.
fn unsigned_bounds(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned =
                map.get("minimum").and_then(Value::as_f64).is_some_and(|m| m >= 0.0) && !map.contains_key("maximum");
            let max = match map.get("format").and_then(Value::as_str) {
                Some("int32") => Some(json!(u32::MAX)),
                Some("int64") => Some(json!(u64::MAX)),
                _ => None,
            };
            if let (true, Some(max)) = (unsigned, max) {
                map.remove("format");
                map.insert("maximum".into(), max);
            }
            map.values_mut().for_each(unsigned_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_bounds),
        _ => {}
    }
}
