//! Signing in and out, and the session every page runs as.
//!
//! Signing in takes a tenant's API key (or the operator's admin token),
//! checks it exactly as the API would, and opens a session: a random token
//! in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console`, of which
//! the store keeps only the SHA-256 next to the credential's hash. Forms
//! carry a CSRF token derived from the session token (an HMAC of it), and
//! every POST is also refused when its `Origin` is another site's.

use super::{Console, Page};
use crate::api::auth::ConsoleAuthority;
use crate::secrets;
use crate::store::ConsoleSessionRow;
use axum::extract::{FromRequestParts, RawForm};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, RequestPartsExt};
use hmac::{Hmac, Mac};
use std::sync::Arc;

pub const COOKIE: &str = "switchboard_console";
/// Longest credential read from the sign-in form.
const CREDENTIAL_BYTES: usize = 512;

/// Who a session acts as.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Tenant { tenant_id: String, name: String },
    Operator,
}

/// A signed-in request: its role, the authority the API calls carry, and
/// the CSRF token its forms must send back.
#[derive(Clone)]
pub struct Session {
    pub role: Role,
    pub authority: ConsoleAuthority,
    pub csrf: String,
    token_hash: String,
}

impl Session {
    pub fn tenant_id(&self) -> Option<&str> {
        match &self.role {
            Role::Tenant { tenant_id, .. } => Some(tenant_id),
            Role::Operator => None,
        }
    }
}

fn csrf_of(token: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(b"switchboard console csrf");
    hex::encode(mac.finalize().into_bytes())
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
        .filter(|t| t.len() <= 128)
}

/// Not signed in (or no longer): pages send the browser to sign in.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/console/login").into_response()
    }
}

impl FromRequestParts<Arc<crate::api::Context>> for Session {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<crate::api::Context>) -> Result<Self, SignIn> {
        let Extension(console) = parts.extract::<Extension<Arc<Console>>>().await.map_err(|_| SignIn)?;
        let token = session_token(&parts.headers).ok_or(SignIn)?;
        let token_hash = hex::encode(secrets::hash_key(&token));
        let ctx = &console.ctx;
        let row = ctx.engine.db.console_session(&token_hash, ctx.engine.clock.now_ms()).await.map_err(|e| {
            tracing::warn!(error = %e, "could not read a console session");
            SignIn
        })?;
        let row = row.ok_or(SignIn)?;
        let credential = hex::decode(&row.credential_hash).map_err(|_| SignIn)?;
        // The credential is checked again on every request, as the API
        // checks a presented one: a revoked key or a changed admin token
        // ends the session.
        let (role, authority) = match row.kind.as_str() {
            "tenant" => {
                let snapshot = ctx.engine.directory.snapshot();
                let key = snapshot.api_keys.get(&credential).ok_or(SignIn)?;
                let tenant = snapshot.tenants.get(&key.tenant_id).filter(|t| t.active).ok_or(SignIn)?;
                let role = Role::Tenant { tenant_id: key.tenant_id.clone(), name: tenant.name.clone() };
                (role, ConsoleAuthority::Tenant { key_hash: credential })
            }
            "admin" => {
                let current = ctx.admin_token.as_ref().map(|t| secrets::hash_key(t.expose())).ok_or(SignIn)?;
                if !secrets::constant_time_eq(&current, &credential) {
                    return Err(SignIn);
                }
                (Role::Operator, ConsoleAuthority::Admin { token_hash: credential })
            }
            _ => return Err(SignIn),
        };
        Ok(Session { role, authority, csrf: csrf_of(&token), token_hash })
    }
}

/// A POSTed form, once its CSRF token and origin are checked: its fields,
/// in order.
pub struct CheckedForm(pub Vec<(String, String)>);

impl CheckedForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Refuses a POST from another site: browsers send `Origin` on every POST,
/// and `SameSite=Strict` already keeps the cookie off cross-site requests.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    url::Url::parse(origin).ok().is_some_and(|u| {
        let authority = match u.port() {
            Some(port) => format!("{}:{port}", u.host_str().unwrap_or("")),
            None => u.host_str().unwrap_or("").to_string(),
        };
        authority.eq_ignore_ascii_case(host)
    })
}

pub fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, Response> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form could not be read").into_response())
}

impl Session {
    /// Checks a form's CSRF token (and origin) before anything acts on it.
    pub fn check(&self, headers: &HeaderMap, RawForm(bytes): RawForm) -> Result<CheckedForm, Response> {
        let fields = parse_form(&bytes)?;
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !same_origin(headers) || !secrets::constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            return Err((StatusCode::FORBIDDEN, "this form is stale or was sent from another site; reload the page")
                .into_response());
        }
        Ok(CheckedForm(fields))
    }
}

fn cookie_header(console: &Console, value: &str, max_age: cookie::time::Duration) -> String {
    let secure = console.ctx.public_base_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    cookie::Cookie::build((COOKIE, value.to_string()))
        .path("/console")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .max_age(max_age)
        .build()
        .to_string()
}

pub async fn login_page(Extension(console): Extension<Arc<Console>>) -> Response {
    console.render("login.html", Page::anonymous("Sign in"), minijinja::context! {})
}

/// Opens a session for a valid API key or admin token; a wrong one is
/// counted against the address like any failed authentication.
pub async fn login(
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    RawForm(bytes): RawForm,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "sign in from this site's own page").into_response();
    }
    let fields = match parse_form(&bytes) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let credential = fields.iter().find(|(k, _)| k == "credential").map_or("", |(_, v)| v.trim());
    let refuse = |message: &str| {
        let mut response = console.render_status(
            StatusCode::UNAUTHORIZED,
            "login.html",
            Page::anonymous("Sign in"),
            minijinja::context! { error => message },
        );
        response.extensions_mut().insert(crate::api::rate_limit::AuthFailed);
        response
    };
    if credential.is_empty() || credential.len() > CREDENTIAL_BYTES {
        return refuse("Enter an API key or the admin token.");
    }
    let ctx = &console.ctx;
    let hash = secrets::hash_key(credential);
    let kind = {
        let snapshot = ctx.engine.directory.snapshot();
        let admin = ctx.admin_token.as_ref().map(|t| secrets::hash_key(t.expose()));
        if admin.is_some_and(|a| secrets::constant_time_eq(&a, &hash)) {
            "admin"
        } else if let Some(key) = snapshot.api_keys.get(&hash).filter(|k| secrets::constant_time_eq(&k.hash, &hash)) {
            if !snapshot.tenants.get(&key.tenant_id).is_some_and(|t| t.active) {
                return refuse("This tenant is disabled.");
            }
            "tenant"
        } else {
            return refuse("That key is not valid (or was revoked).");
        }
    };
    let mut token_bytes = [0u8; 32];
    rand::fill(&mut token_bytes);
    let token = hex::encode(token_bytes);
    let now = ctx.engine.clock.now_ms();
    let lifetime = ctx.engine.limits.console_session_ms;
    let row = ConsoleSessionRow {
        token_hash: hex::encode(secrets::hash_key(&token)),
        kind: kind.to_string(),
        credential_hash: hex::encode(&hash),
        created_at: now,
        expires_at: now + lifetime as i64,
    };
    if let Err(e) = ctx.engine.db.create_console_session(&row).await {
        tracing::error!(error = %e, "could not open a console session");
        return console.failure(StatusCode::SERVICE_UNAVAILABLE, "Could not sign in now; try again.");
    }
    let target = if kind == "admin" { "/console/operator" } else { "/console/conversations" };
    let max_age = cookie::time::Duration::milliseconds(lifetime as i64);
    let mut response = Redirect::to(target).into_response();
    let cookie = cookie_header(&console, &token, max_age);
    response.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("a cookie is a header value"));
    response
}

pub async fn logout(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    headers: HeaderMap,
    form: RawForm,
) -> Response {
    if let Err(refused) = session.check(&headers, form) {
        return refused;
    }
    if let Err(e) = console.ctx.engine.db.delete_console_session(&session.token_hash).await {
        tracing::error!(error = %e, "could not end a console session");
        return console.failure(StatusCode::SERVICE_UNAVAILABLE, "Could not sign out now; try again.");
    }
    let mut response = Redirect::to("/console/login").into_response();
    let cookie = cookie_header(&console, "", cookie::time::Duration::ZERO);
    response.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("a cookie is a header value"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let headers = |origin: &str, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        assert!(same_origin(&headers("http://127.0.0.1:8080", "127.0.0.1:8080")));
        assert!(same_origin(&headers("https://sms.example.com", "sms.example.com")));
        assert!(!same_origin(&headers("https://evil.example", "sms.example.com")));
        assert!(!same_origin(&headers("http://127.0.0.1:9999", "127.0.0.1:8080")));
        assert!(!same_origin(&headers("null", "127.0.0.1:8080")));
        assert!(same_origin(&HeaderMap::new()), "no Origin: not a browser's cross-site POST");
    }

    #[test]
    fn the_csrf_token_depends_on_the_session() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert_eq!(csrf_of("a"), csrf_of("a"));
        assert_eq!(csrf_of("a").len(), 64);
    }
}
