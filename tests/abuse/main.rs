//! The abuse suite: each edge where an outsider, a tenant or a plugin
//! could take more than it is owed, one file per edge, driven through the
//! real HTTP router (and, for the data directory, the release binary).
//! Every test asserts the refusal or the bound, and that nothing already
//! accepted is lost.

#[path = "../common/mod.rs"]
mod common;

mod authority;
mod carrier_ids;
mod claims;
mod data_dir;
mod inputs;
mod multipliers;
mod quotas;
mod ssrf;
mod test_keys;
mod uploads;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::Value;

/// Posts a raw body with headers (no API key); returns status and JSON.
pub async fn post_raw(
    h: &Harness,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(Method::POST).uri(uri).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    raw(&h.app, req.body(Body::from(body)).unwrap()).await
}

/// The error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The tenant's messages in one direction.
pub async fn messages(h: &Harness, direction: &str) -> Vec<Value> {
    h.get(&format!("/v1/messages?direction={direction}&limit=200")).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
