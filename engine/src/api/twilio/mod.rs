//! The Twilio-compatible Messages API: code written against Twilio's
//! SDKs sends through Switchboard by changing the base URL and the
//! credentials (`switchboard key create --twilio`).
//!
//! `/2010-04-01/Accounts/{AccountSid}/Messages.json` (create, list) and
//! `/Messages/{Sid}.json` (fetch, cancel or redact, delete), with HTTP Basic
//! auth (account SID and auth token), form-encoded requests, Twilio's
//! message resource and paging, and Twilio's error body
//! `{"code", "message", "more_info", "status"}` with Twilio's codes. Sends
//! go through the same pipeline as `POST /v1/messages` (pricing, consent,
//! quotas, routes, idempotency). These routes are described by Twilio's
//! own OpenAPI document, not ours.

mod messages;
mod resource;

use super::auth::basic_credentials;
use crate::api::Context;
use crate::secrets::{self, KeyMode};
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use std::sync::Arc;

/// The routes, with Twilio's error body on every error they answer.
pub fn routes(ctx: &Arc<Context>) -> Router<Arc<Context>> {
    Router::new()
        .route("/2010-04-01/Accounts/{account}/Messages.json", get(messages::list).post(messages::create))
        .route(
            "/2010-04-01/Accounts/{account}/Messages/{file}",
            get(messages::fetch).post(messages::update).delete(messages::delete),
        )
        .route("/2010-04-01/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), super::rate_limit::limit))
        .layer(axum::middleware::from_fn(twilio_errors))
}

async fn not_found(req: Request) -> TwilioError {
    TwilioError::not_found(req.uri().path())
}

/// An error in Twilio's form.
#[derive(Debug)]
pub struct TwilioError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

#[derive(Serialize)]
struct TwilioErrorBody<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl TwilioError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        TwilioError { status, code, message: message.into() }
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 20404, format!("The requested resource {path} was not found"))
    }

    fn authenticate() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error")
    }
}

impl From<crate::store::StoreError> for TwilioError {
    fn from(e: crate::store::StoreError) -> Self {
        TwilioError::internal(e)
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = TwilioErrorBody {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == 20003 {
            response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"Twilio API\""));
            // Counted against the source address (see `rate_limit`).
            response.extensions_mut().insert(super::rate_limit::AuthFailed);
        }
        response
    }
}

/// Twilio's code for an error status the framework or a shared layer
/// answered (the body limit, a method a path does not take, the rate limit).
fn code_for(status: StatusCode) -> u32 {
    match status {
        StatusCode::UNAUTHORIZED => 20003,
        StatusCode::NOT_FOUND => 20404,
        StatusCode::METHOD_NOT_ALLOWED => 20004,
        StatusCode::TOO_MANY_REQUESTS => 20429,
        StatusCode::PAYLOAD_TOO_LARGE => 21617,
        s if s.is_server_error() => 20500,
        _ => 20001,
    }
}

/// Rewrites error answers that are not yet Twilio's form (they carry our
/// `{"error": {...}}` or plain text) into it, keeping `Retry-After` and
/// `Allow`.
async fn twilio_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    if parsed.as_ref().is_some_and(|v| v.get("more_info").is_some()) {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { message };
    let mut out = TwilioError::new(status, code_for(status), message).into_response();
    for name in [axum::http::header::ALLOW, axum::http::header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(marker) = parts.extensions.get::<super::rate_limit::AuthFailed>() {
        out.extensions_mut().insert(*marker);
    }
    out
}

/// The tenant behind a Twilio-style credential (HTTP Basic: account SID
/// and auth token). The account in the path must be the credential's.
#[derive(Debug, Clone)]
pub struct TwilioAuth {
    pub tenant_id: String,
    pub account_sid: String,
    pub mode: KeyMode,
}

impl FromRequestParts<Arc<Context>> for TwilioAuth {
    type Rejection = TwilioError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Context>) -> Result<Self, TwilioError> {
        let (account_sid, token) = basic_credentials(&parts.headers).ok_or_else(TwilioError::authenticate)?;
        let hash = secrets::hash_key(&token);
        let snapshot = ctx.engine.directory.snapshot();
        let found = snapshot
            .api_keys
            .get(&hash)
            .filter(|k| secrets::constant_time_eq(&k.hash, &hash))
            .filter(|k| k.twilio.as_ref().is_some_and(|t| t.account_sid == account_sid))
            .ok_or_else(TwilioError::authenticate)?;
        if !snapshot.tenants.get(&found.tenant_id).is_some_and(|t| t.active) {
            return Err(TwilioError::new(StatusCode::FORBIDDEN, 20005, "Account not active"));
        }
        // The path names the account too; it must be the one authenticated.
        let path_account = parts.uri.path().strip_prefix("/2010-04-01/Accounts/").and_then(|r| r.split('/').next());
        if path_account != Some(account_sid.as_str()) {
            return Err(TwilioError::authenticate());
        }
        Ok(TwilioAuth {
            tenant_id: found.tenant_id.clone(),
            account_sid,
            mode: if found.mode == "test" { KeyMode::Test } else { KeyMode::Live },
        })
    }
}
