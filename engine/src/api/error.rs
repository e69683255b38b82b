//! The one error type of the HTTP API and its JSON body:
//! `{"error": {"code", "message", "field"?}}`. Codes are stable and listed
//! in the README; internal errors are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// Every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (see the README's table).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field or parameter, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// A failure that is ours, not the caller's: logged in full, reported
    /// without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error; it has been logged")
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "service unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "temporarily unavailable; retry shortly")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failed_auth = matches!(self.code, "UNAUTHORIZED" | "INVALID_SIGNATURE");
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message, field: self.field } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if failed_auth {
            // Counted against the source address (see `rate_limit`).
            response.extensions_mut().insert(super::rate_limit::AuthFailed);
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// Longest request path accepted, in bytes; longer is 414 before routing.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// The last word on every error answer: refuses oversized request targets
/// (and paths with an encoded NUL) before anything parses them, and turns error responses that are not
/// our JSON (rejections of axum's own extractors, the body limit, 405s)
/// into `{"error": {"code", "message"}}`.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = req.uri();
    if uri.path().len() > MAX_PATH_BYTES || uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("the path is limited to {MAX_PATH_BYTES} bytes and the query to {MAX_QUERY_BYTES}"),
        )
        .into_response();
    }
    // A path parameter holding U+0000 names nothing that can exist (see
    // `limits::NUL_REFUSED`); refused before a handler looks it up.
    if uri.path().contains("%00") {
        return ApiError::bad_request("INVALID_PARAMETER", format!("a path parameter: {}", crate::limits::NUL_REFUSED))
            .into_response();
    }
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    // Ours already: the API's JSON, or a console page.
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are short; anything longer is not worth reading.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let (code, fallback) = match status {
        StatusCode::BAD_REQUEST => ("INVALID_REQUEST", "the request could not be read"),
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "this endpoint does not take that method"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UNSUPPORTED_MEDIA_TYPE", "unsupported content type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("INVALID_BODY", "the body could not be processed"),
        s if s.is_server_error() => ("INTERNAL", "internal error; it has been logged"),
        _ => ("INVALID_REQUEST", "the request was refused"),
    };
    let message = match text {
        Ok(t) if !t.is_empty() && !status.is_server_error() => t,
        _ => fallback.to_string(),
    };
    let mut out = ApiError { status, code, message, field: None }.into_response();
    // Keep what the original answer said about how to retry or what is allowed.
    for name in [axum::http::header::ALLOW, axum::http::header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
