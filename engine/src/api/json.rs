//! A JSON body extractor whose rejections use our error body and name the
//! offending field.

use super::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::de::DeserializeOwned;

pub struct Json<T>(pub T);

/// Refuses bodies that say they are not JSON (a missing content type is
/// accepted).
pub fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send a JSON body with content-type: application/json",
            ));
        }
    }
    Ok(())
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body is too large")
            } else {
                ApiError::bad_request("INVALID_BODY", e.body_text())
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Every request body the API takes is a JSON object, and so is every record
/// inside one (serde_json alone would read an array into a struct field by
/// field, see `objects_only`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')) {
        return Err(ApiError::bad_request("INVALID_BODY", "the request body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(super::objects_only::ObjectsOnly(&mut *de)).map_err(field_error)?;
    // Nothing but whitespace may follow the value.
    de.end().map_err(|e| ApiError::bad_request("INVALID_JSON", format!("invalid request body: {e}")))?;
    Ok(value)
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner_is_syntax = e.inner().is_syntax() || e.inner().is_eof();
    // A syntax error has no meaningful path ("?").
    let path = if inner_is_syntax { String::new() } else { e.path().to_string() };
    let inner = e.into_inner();
    let message = inner.to_string();
    // serde names missing and unknown fields in its message only.
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"));
    let field = match (named, path.as_str()) {
        (Some(name), "." | "") => Some(name.to_string()),
        // An unknown field's path already ends with its name.
        (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => Some(p.to_string()),
        (Some(name), p) => Some(format!("{p}.{name}")),
        (None, "." | "") => None,
        (None, p) => Some(p.to_string()),
    };
    let code = if inner_is_syntax { "INVALID_JSON" } else { "INVALID_FIELD" };
    let mut err = ApiError::bad_request(code, format!("invalid request body: {message}"));
    err.field = field;
    err
}

/// A query-string extractor whose rejections use our error body
/// (`INVALID_PARAMETER`, naming the parameter when serde does).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        // As in bodies, text with U+0000 is refused (see `objects_only`).
        if let Some((name, _)) =
            url::form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad_request(
                "INVALID_PARAMETER",
                format!("invalid query string: {}", crate::limits::NUL_REFUSED),
            )
            .with_field(name.replace('\0', "")));
        }
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let named = message.split('`').nth(1).filter(|_| message.starts_with("unknown field"));
            let field = named.map(str::to_string).or((path != "." && !path.is_empty()).then_some(path));
            let mut err = ApiError::bad_request("INVALID_PARAMETER", format!("invalid query string: {message}"));
            err.field = field;
            err
        })
    }
}
