//! Outgoing HTTP through the host (needs the `http` capability and the
//! target host in the manifest's `[http] allow` list).
//!
//! ```ignore
//! let res = switchboard_sdk::http::get("https://api.example.com/v1/orders/42")?;
//! if res.status == 200 { /* res.body ... */ }
//! ```

use crate::host::http as raw;
use crate::types::HostError;

pub use raw::{Request, Response};

/// Makes `request`.
pub fn fetch(request: &Request) -> Result<Response, HostError> {
    raw::fetch(request)
}

/// A `GET` without headers.
pub fn get(url: impl Into<String>) -> Result<Response, HostError> {
    fetch(&Request { method: "GET".into(), url: url.into(), headers: vec![], body: None })
}

/// A `POST` of a JSON document.
pub fn post_json(url: impl Into<String>, json: &impl serde::Serialize) -> Result<Response, HostError> {
    let body = serde_json::to_vec(json).map_err(|e| HostError::InvalidArgument(format!("JSON: {e}")))?;
    fetch(&Request {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body),
    })
}
