//! Message templates: `{{var}}` placeholders filled at send time.

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use crate::api::Context;
use crate::clock::to_rfc3339;
use crate::sms::template;
use crate::store::TemplateRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTemplate {
    /// 1 to 64 letters, digits, `-` or `_`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// Text with `{{name}}` placeholders; at most `limits.message_chars`.
    #[schema(min_length = 1, max_length = 1600)]
    body: String,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateJson {
    name: String,
    body: String,
    /// The placeholders a send must fill.
    variables: Vec<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    data: Vec<TemplateJson>,
}

impl From<TemplateRow> for TemplateJson {
    fn from(t: TemplateRow) -> Self {
        TemplateJson {
            variables: template::placeholders(&t.body).unwrap_or_default(),
            name: t.name,
            body: t.body,
            created_at: to_rfc3339(t.created_at),
            updated_at: to_rfc3339(t.updated_at),
        }
    }
}

/// Create or replace a template.
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = PutTemplate,
    responses((status = 201, body = TemplateJson), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<PutTemplate>,
) -> Result<(StatusCode, axum::Json<TemplateJson>), ApiError> {
    let name_ok = (1..=64).contains(&body.name.len())
        && body.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(
            ApiError::bad_request("INVALID_FIELD", "name is 1 to 64 letters, digits, - or _").with_field("name")
        );
    }
    if body.body.is_empty() || body.body.chars().count() > ctx.engine.limits.message_chars {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("body is 1 to {} characters", ctx.engine.limits.message_chars),
        )
        .with_field("body"));
    }
    template::placeholders(&body.body)
        .map_err(|e| ApiError::bad_request("INVALID_TEMPLATE", e.to_string()).with_field("body"))?;
    ctx.engine.db.put_template(&auth.tenant_id, &body.name, &body.body, ctx.engine.clock.now_ms()).await?;
    let stored = ctx
        .engine
        .db
        .get_template(&auth.tenant_id, &body.name)
        .await?
        .ok_or_else(|| ApiError::internal("template vanished"))?;
    Ok((StatusCode::CREATED, axum::Json(stored.into())))
}

/// The tenant's templates.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = TemplateList)), security(("api_key" = [])))]
pub async fn list(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> Result<axum::Json<TemplateList>, ApiError> {
    let data = ctx.engine.db.list_templates(&auth.tenant_id).await?.into_iter().map(TemplateJson::from).collect();
    Ok(axum::Json(TemplateList { data }))
}

/// One template.
#[utoipa::path(get, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 200, body = TemplateJson), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(name): Path<String>,
) -> Result<axum::Json<TemplateJson>, ApiError> {
    let t = ctx
        .engine
        .db
        .get_template(&auth.tenant_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("TEMPLATE_NOT_FOUND", format!("no template {name:?}")))?;
    Ok(axum::Json(t.into()))
}

/// Delete a template.
#[utoipa::path(delete, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if ctx.engine.db.delete_template(&auth.tenant_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("TEMPLATE_NOT_FOUND", format!("no template {name:?}")))
    }
}
