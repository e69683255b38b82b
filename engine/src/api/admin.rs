//! The operator's API under `/admin/v1`, authenticated with the admin
//! token from the settings (`admin_token` or `SWITCHBOARD_ADMIN_TOKEN`);
//! without a configured token it answers 401 to everything.

use super::error::{ApiError, ErrorBody};
use super::json::Json;
use crate::app::{AdminError, App};
use crate::billing::{format_amount, parse_amount};
use crate::secrets;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let expected = app.settings.admin_token.as_ref().map(|t| secrets::hash_key(t.expose()));
        match (presented, expected) {
            (Some(p), Some(e)) if secrets::constant_time_eq(&secrets::hash_key(p), &e) => Ok(Admin),
            (_, None) => Err(ApiError::unauthorized("the admin API is disabled: no admin token is configured")),
            _ => Err(ApiError::unauthorized("missing or invalid admin token")),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credit {
    /// Decimal amount; negative to debit.
    amount: String,
    note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceJson {
    tenant_id: String,
    balance: String,
    currency: String,
}

/// Credit (or debit) a tenant's prepaid balance; every change is a ledger row.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/credits", tag = "admin", request_body = Credit,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = BalanceJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn credit(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    Json(body): Json<Credit>,
) -> Result<axum::Json<BalanceJson>, ApiError> {
    let amount = parse_amount(&body.amount)
        .map_err(|e| ApiError::bad_request("INVALID_AMOUNT", e.to_string()).with_field("amount"))?;
    let balance = app.credit(&tenant_id, amount, body.note.as_deref().unwrap_or("")).await.map_err(|e| match e {
        AdminError::NotFound(_) => ApiError::not_found("TENANT_NOT_FOUND", format!("no tenant {tenant_id:?}")),
        e => ApiError::internal(e),
    })?;
    Ok(axum::Json(BalanceJson { tenant_id, balance: format_amount(balance), currency: app.pricing.currency.clone() }))
}
