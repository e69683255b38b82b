//! API-key authentication: `Authorization: Bearer <key>` or
//! `X-API-Key: <key>`. Keys are looked up by their SHA-256 in the
//! directory and compared in constant time; the key itself is never logged.

use super::error::ApiError;
use crate::api::Context;
use crate::secrets::{self, KeyMode};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// Who a web console request acts for: the console sets it on the API
/// request it makes in-process for a signed-in session (an extension is
/// never read from the wire). The hashes are the session's credential,
/// checked here exactly as a presented key or token would be, so revoking
/// the key (or changing the admin token) ends the session's authority.
#[derive(Debug, Clone)]
pub enum ConsoleAuthority {
    Tenant { key_hash: Vec<u8> },
    Admin { token_hash: Vec<u8> },
}

/// The tenant a request acts for.
#[derive(Debug, Clone)]
pub struct AuthTenant {
    pub tenant_id: String,
    pub mode: KeyMode,
    pub key_id: String,
}

impl AuthTenant {
    /// Who acted, for the audit log.
    pub fn actor(&self) -> String {
        format!("tenant:{} (key {})", self.tenant_id, self.key_id)
    }
}

/// Checks the mode (`live`, the default, or `test`) and label of a key to create.
pub fn new_key_mode(mode: Option<&str>, label: Option<&str>) -> Result<KeyMode, ApiError> {
    let mode = match mode {
        None | Some("live") => KeyMode::Live,
        Some("test") => KeyMode::Test,
        Some(_) => return Err(ApiError::bad_request("INVALID_FIELD", "mode is live or test").with_field("mode")),
    };
    if label.is_some_and(|l| l.len() > 100) {
        return Err(ApiError::bad_request("INVALID_FIELD", "label is at most 100 characters").with_field("label"));
    }
    Ok(mode)
}

/// The API key a request presents, if any.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The account SID and auth token of `Authorization: Basic` (how Twilio's
/// clients authenticate). Bounded before it is decoded.
pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 512 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The secret a request presents, whichever way: an API key, or the auth
/// token of Basic credentials. What the per-tenant limits count by.
pub fn presented_secret(headers: &axum::http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    match presented_key(headers) {
        Some(key) => Some(key.into()),
        None => basic_credentials(headers).map(|(_, token)| token.into()),
    }
}

impl FromRequestParts<Arc<Context>> for AuthTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Context>) -> Result<Self, ApiError> {
        let hash = match parts.extensions.get::<ConsoleAuthority>() {
            Some(ConsoleAuthority::Tenant { key_hash }) => key_hash.clone(),
            Some(ConsoleAuthority::Admin { .. }) => {
                return Err(ApiError::unauthorized("an operator's console session cannot act as a tenant"));
            }
            None => {
                let Some(key) = presented_key(&parts.headers) else {
                    return Err(ApiError::unauthorized(
                        "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                    ));
                };
                secrets::hash_key(key)
            }
        };
        let snapshot = ctx.engine.directory.snapshot();
        let found = snapshot
            .api_keys
            .get(&hash)
            .filter(|k| secrets::constant_time_eq(&k.hash, &hash))
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))?;
        let active = snapshot.tenants.get(&found.tenant_id).is_some_and(|t| t.active);
        if !active {
            return Err(ApiError::new(axum::http::StatusCode::FORBIDDEN, "TENANT_DISABLED", "this tenant is disabled"));
        }
        Ok(AuthTenant {
            tenant_id: found.tenant_id.clone(),
            mode: if found.mode == "test" { KeyMode::Test } else { KeyMode::Live },
            key_id: found.id.clone(),
        })
    }
}

/// The tenant a request acts for, with a live key: what changes live
/// configuration (numbers, sender IDs, templates, webhooks, keys, routes,
/// plugins, compliance settings, consent) refuses test keys with 403
/// `TEST_KEY`. A test key reads, and sends through the sandbox.
#[derive(Debug, Clone)]
pub struct LiveTenant(pub AuthTenant);

impl FromRequestParts<Arc<Context>> for LiveTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Context>) -> Result<Self, ApiError> {
        let auth = AuthTenant::from_request_parts(parts, ctx).await?;
        if auth.mode == KeyMode::Test {
            return Err(ApiError::forbidden(
                "TEST_KEY",
                "a test key can read and send through the sandbox only; use a live key to change configuration",
            ));
        }
        Ok(LiveTenant(auth))
    }
}
