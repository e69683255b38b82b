//! Query parameters several endpoints share, with the constraints the
//! OpenAPI document states and the handlers enforce (the two are kept
//! together here so they cannot drift).

use super::error::ApiError;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// A page size: `default` when absent, 1 to `max` otherwise (a value out of
/// range is refused, never quietly clamped).
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request("INVALID_PARAMETER", format!("limit is 1 to {max}")).with_field("limit")),
    }
}

/// `live` or `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeFilter {
    Live,
    Test,
}

impl ModeFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeFilter::Live => "live",
            ModeFilter::Test => "test",
        }
    }
}

/// `inbound` or `outbound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectionFilter {
    Inbound,
    Outbound,
}

/// A message status, as the API names them.
pub fn status_schema() -> ObjectBuilder {
    let names: Vec<&str> = crate::store::MessageStatus::ALL.iter().map(|s| s.as_str()).collect();
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).enum_values(Some(names))
}

/// An RFC 3339 date-time.
pub fn date_time_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
}

/// A phone number as typed (bounded like every number input).
pub fn number_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).max_length(Some(crate::phone::MAX_INPUT_BYTES))
}
