//! The tenant's outbound routes: which connectors carry messages to which
//! destinations, in failover order or cheapest first.

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use crate::api::Context;
use crate::tenancy::Route;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// The tenant's routes; they win over the operator's.
    routes: Vec<Route>,
}

#[derive(Serialize, ToSchema)]
pub struct RoutesView {
    routes: Vec<Route>,
    /// The operator's routes, used where none of the tenant's matches.
    defaults: Vec<Route>,
}

/// The tenant's routes and the operator's defaults.
#[utoipa::path(get, path = "/v1/routes", tag = "routes", responses((status = 200, body = RoutesView)), security(("api_key" = [])))]
pub async fn get(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> axum::Json<RoutesView> {
    let routes = ctx
        .engine
        .directory
        .snapshot()
        .tenants
        .get(&auth.tenant_id)
        .map(|t| t.settings.routes.clone())
        .unwrap_or_default();
    axum::Json(RoutesView { routes, defaults: ctx.engine.routes.clone() })
}

/// Replace the tenant's routes.
#[utoipa::path(put, path = "/v1/routes", tag = "routes", request_body = Routes,
    responses((status = 200, body = Routes), (status = 400, description = "INVALID_FIELD, UNKNOWN_CONNECTOR", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<Routes>,
) -> Result<axum::Json<Routes>, ApiError> {
    for (i, r) in body.routes.iter().enumerate() {
        let prefix_ok = r.prefix.is_empty()
            || (r.prefix.starts_with('+') && r.prefix.len() <= 16 && r.prefix[1..].bytes().all(|b| b.is_ascii_digit()));
        if !prefix_ok {
            return Err(ApiError::bad_request("INVALID_FIELD", "prefix is empty or + and digits")
                .with_field(format!("routes[{i}].prefix")));
        }
        if r.connectors.is_empty() {
            return Err(ApiError::bad_request("INVALID_FIELD", "a route names at least one connector")
                .with_field(format!("routes[{i}].connectors")));
        }
        for (j, name) in r.connectors.iter().enumerate() {
            let usable = ctx.engine.connectors.get(name).is_some_and(|c| c.gate.allows(&auth.tenant_id));
            if !usable || name == crate::connectors::SANDBOX_CONNECTOR {
                return Err(ApiError::bad_request(
                    "UNKNOWN_CONNECTOR",
                    format!("no connector {name:?} is available to this tenant"),
                )
                .with_field(format!("routes[{i}].connectors[{j}]")));
            }
        }
    }
    let mut settings =
        ctx.engine.directory.snapshot().tenants.get(&auth.tenant_id).map(|t| t.settings.clone()).unwrap_or_default();
    settings.routes = body.routes.clone();
    ctx.control.update_tenant_settings(&auth.tenant_id, &settings).await.map_err(ApiError::internal)?;
    Ok(axum::Json(body))
}
