//! The operator's API under `/admin/v1`, authenticated with the admin
//! token from the settings (`admin_token` or `SWITCHBOARD_ADMIN_TOKEN`);
//! without a configured token it answers 401 to everything.
//!
//! Tenants (create, list, disable), their limits and quotas, API keys,
//! numbers and sender IDs, credits, the connectors, and the audit log
//! every admin action is written to. The CLI's `tenant`, `key` and
//! `number` commands call these endpoints.

use super::auth::ConsoleAuthority;
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::json::Query;
use crate::api::Context;
use crate::billing::{format_amount, parse_amount};
use crate::clock::to_rfc3339;
use crate::control::AdminError;
use crate::secrets::{self, KeyMode};
use crate::tenancy::Quotas;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<Arc<Context>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Context>) -> Result<Self, ApiError> {
        let presented = match parts.extensions.get::<ConsoleAuthority>() {
            Some(ConsoleAuthority::Admin { token_hash }) => Some(token_hash.clone()),
            Some(ConsoleAuthority::Tenant { .. }) => None,
            None => parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| secrets::hash_key(token.trim())),
        };
        let expected = ctx.admin_token.as_ref().map(|t| secrets::hash_key(t.expose()));
        match (presented, expected) {
            (Some(p), Some(e)) if secrets::constant_time_eq(&p, &e) => Ok(Admin),
            (_, None) => Err(ApiError::unauthorized("the admin API is disabled: no admin token is configured")),
            _ => Err(ApiError::unauthorized("missing or invalid admin token")),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credit {
    /// Decimal amount, up to six decimals; negative to debit.
    #[schema(pattern = "^-?[0-9]{1,12}(\\.[0-9]{1,6})?$", example = "10.00")]
    amount: String,
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// What `Credit.amount` may look like (the schema's pattern).
fn amount_shaped(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    (1..=12).contains(&whole.len())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (!digits.contains('.') || (1..=6).contains(&fraction.len()))
        && fraction.bytes().all(|b| b.is_ascii_digit())
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
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    Json(body): Json<Credit>,
) -> Result<axum::Json<BalanceJson>, ApiError> {
    if !amount_shaped(&body.amount) {
        return Err(
            ApiError::bad_request("INVALID_AMOUNT", "a decimal amount with up to six decimals").with_field("amount")
        );
    }
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::bad_request("INVALID_FIELD", "note is at most 500 characters").with_field("note"));
    }
    let amount = parse_amount(&body.amount)
        .map_err(|e| ApiError::bad_request("INVALID_AMOUNT", e.to_string()).with_field("amount"))?;
    let balance =
        ctx.control.credit(&tenant_id, amount, body.note.as_deref().unwrap_or("")).await.map_err(|e| match e {
            AdminError::NotFound(_) => ApiError::not_found("TENANT_NOT_FOUND", format!("no tenant {tenant_id:?}")),
            e => ApiError::internal(e),
        })?;
    ctx.control
        .audit(ACTOR, "tenant.credit", &tenant_id, serde_json::json!({ "amount": body.amount, "note": body.note }))
        .await;
    Ok(axum::Json(BalanceJson {
        tenant_id,
        balance: format_amount(balance),
        currency: ctx.engine.pricing.currency.clone(),
    }))
}

/// The audit log's name for the operator.
const ACTOR: &str = "admin";

fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid { field, message } => ApiError::bad_request("INVALID_FIELD", message).with_field(field),
        AdminError::Conflict(what) => ApiError::conflict("ALREADY_EXISTS", format!("{what} already exists")),
        AdminError::NotFound(what) => ApiError::not_found("NOT_FOUND", format!("no such {what}")),
        AdminError::Refused { code, message } => ApiError::forbidden(code, message),
        AdminError::Store(e) => ApiError::internal(e),
    }
}

fn tenant_profile(ctx: &Context, id: &str) -> Result<Arc<crate::directory::TenantProfile>, ApiError> {
    ctx.engine
        .directory
        .snapshot()
        .tenants
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("TENANT_NOT_FOUND", format!("no tenant {id:?}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 100 characters, not only spaces.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    id: String,
    name: String,
    /// A live API key for the tenant: shown once, stored only as a hash.
    api_key: String,
    api_key_id: String,
}

/// Create a tenant, with a first live API key.
#[utoipa::path(post, path = "/admin/v1/tenants", tag = "admin", request_body = NewTenant,
    responses((status = 201, body = CreatedTenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_tenant(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, axum::Json<CreatedTenant>), ApiError> {
    let id = ctx.control.create_tenant(&body.name).await.map_err(admin_error)?;
    let issued = ctx.control.issue_api_key(&id, KeyMode::Live, Some("initial"), false).await.map_err(admin_error)?;
    let (api_key_id, api_key) = (issued.id, issued.secret);
    ctx.control
        .audit(ACTOR, "tenant.create", &id, serde_json::json!({ "name": body.name.trim(), "key_id": api_key_id }))
        .await;
    Ok((StatusCode::CREATED, axum::Json(CreatedTenant { id, name: body.name.trim().to_string(), api_key, api_key_id })))
}

#[derive(Serialize, ToSchema)]
pub struct TenantJson {
    id: String,
    name: String,
    /// `active` or `disabled`.
    status: String,
    numbers: Vec<String>,
    sender_ids: Vec<String>,
    /// What the operator set for this tenant.
    limits: TenantLimits,
    /// The quotas in force: the tenant's own, else the engine's defaults.
    effective_quotas: EffectiveQuotas,
    plugins: usize,
}

/// A tenant's quotas as enforced (see `limits.tenant_*` for the defaults).
#[derive(Serialize, ToSchema)]
pub struct EffectiveQuotas {
    /// Fuel per invocation, when the tenant has its own cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    fuel: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_bytes: Option<usize>,
    invocations_per_minute: u32,
    kv_bytes: i64,
    kv_keys: i64,
    sends_per_day: i64,
    timers_pending: i64,
    requests_per_second: u32,
    requests_per_day: u64,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    data: Vec<TenantJson>,
}

fn tenant_json(ctx: &Context, t: &crate::directory::TenantProfile) -> TenantJson {
    let snapshot = ctx.engine.directory.snapshot();
    let mut numbers: Vec<String> =
        snapshot.numbers.iter().filter(|(_, owner)| **owner == t.id).map(|(n, _)| n.clone()).collect();
    numbers.sort();
    let mut sender_ids: Vec<String> = t.senders.keys().filter(|s| !s.starts_with('+')).cloned().collect();
    sender_ids.sort();
    TenantJson {
        id: t.id.clone(),
        name: t.name.clone(),
        status: if t.active { "active" } else { "disabled" }.into(),
        numbers,
        sender_ids,
        limits: TenantLimits::of(&t.settings),
        effective_quotas: {
            let limits = &ctx.engine.limits;
            let q = t.settings.quotas.resolve(limits);
            EffectiveQuotas {
                fuel: q.fuel,
                memory_bytes: q.memory_bytes,
                invocations_per_minute: q.invocations_per_minute,
                kv_bytes: q.kv_bytes,
                kv_keys: q.kv_keys,
                sends_per_day: q.sends_per_day,
                timers_pending: q.timers_pending,
                requests_per_second: t.settings.requests_per_second.unwrap_or(limits.api_requests_per_second),
                requests_per_day: t.settings.requests_per_day.unwrap_or(limits.api_requests_per_day),
            }
        },
        plugins: snapshot.plugins.values().filter(|p| p.row.tenant_id == t.id).count(),
    }
}

/// Every tenant.
#[utoipa::path(get, path = "/admin/v1/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn list_tenants(State(ctx): State<Arc<Context>>, _admin: Admin) -> axum::Json<TenantList> {
    let snapshot = ctx.engine.directory.snapshot();
    let mut data: Vec<TenantJson> = snapshot.tenants.values().map(|t| tenant_json(&ctx, t)).collect();
    data.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    axum::Json(TenantList { data })
}

/// One tenant.
#[utoipa::path(get, path = "/admin/v1/tenants/{id}", tag = "admin", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_tenant(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<TenantJson>, ApiError> {
    Ok(axum::Json(tenant_json(&ctx, &*tenant_profile(&ctx, &id)?)))
}

async fn set_active(ctx: Arc<Context>, id: String, active: bool) -> Result<axum::Json<TenantJson>, ApiError> {
    ctx.control.set_tenant_active(&id, active).await.map_err(|e| match e {
        AdminError::NotFound(_) => ApiError::not_found("TENANT_NOT_FOUND", format!("no tenant {id:?}")),
        e => admin_error(e),
    })?;
    ctx.control.audit(ACTOR, if active { "tenant.enable" } else { "tenant.disable" }, &id, serde_json::json!({})).await;
    Ok(axum::Json(tenant_json(&ctx, &*tenant_profile(&ctx, &id)?)))
}

/// Disable a tenant: its keys are refused and its plugins stop running.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/disable", tag = "admin", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn disable_tenant(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<TenantJson>, ApiError> {
    set_active(ctx, id, false).await
}

/// Enable a disabled tenant.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/enable", tag = "admin", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn enable_tenant(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<TenantJson>, ApiError> {
    set_active(ctx, id, true).await
}

/// A tenant's quotas and API rate limits. Absent: no tenant-level limit
/// (the engine's own limits apply).
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    #[serde(default)]
    quotas: Quotas,
    /// API requests per second, all the tenant's keys together.
    #[schema(minimum = 1)]
    requests_per_second: Option<u32>,
    /// API requests per UTC day, all the tenant's keys together.
    #[schema(minimum = 1)]
    requests_per_day: Option<u64>,
}

impl TenantLimits {
    fn of(s: &crate::tenancy::TenantSettings) -> Self {
        TenantLimits {
            quotas: s.quotas.clone(),
            requests_per_second: s.requests_per_second,
            requests_per_day: s.requests_per_day,
        }
    }
}

/// Set a tenant's quotas and rate limits (replaces them all).
#[utoipa::path(put, path = "/admin/v1/tenants/{id}/limits", tag = "admin", request_body = TenantLimits,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn put_limits(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(id): Path<String>,
    Json(body): Json<TenantLimits>,
) -> Result<axum::Json<TenantJson>, ApiError> {
    let q = &body.quotas;
    let positive = [
        ("quotas.fuel", q.fuel.map(|v| v as i64)),
        ("quotas.memory_bytes", q.memory_bytes.map(|v| v as i64)),
        ("quotas.invocations_per_minute", q.invocations_per_minute.map(i64::from)),
        ("quotas.kv_bytes", q.kv_bytes),
        ("quotas.kv_keys", q.kv_keys),
        ("quotas.sends_per_day", q.sends_per_day),
        ("quotas.timers_pending", q.timers_pending),
        ("requests_per_second", body.requests_per_second.map(i64::from)),
        ("requests_per_day", body.requests_per_day.map(|v| v as i64)),
    ];
    if let Some((field, _)) = positive.iter().find(|(_, v)| v.is_some_and(|v| v <= 0)) {
        return Err(ApiError::bad_request("INVALID_FIELD", "limits are positive numbers").with_field(*field));
    }
    let tenant = tenant_profile(&ctx, &id)?;
    let mut settings = tenant.settings.clone();
    settings.quotas = body.quotas;
    settings.requests_per_second = body.requests_per_second;
    settings.requests_per_day = body.requests_per_day;
    ctx.control.update_tenant_settings(&id, &settings).await.map_err(admin_error)?;
    ctx.control
        .audit(ACTOR, "tenant.limits", &id, serde_json::to_value(TenantLimits::of(&settings)).unwrap_or_default())
        .await;
    Ok(axum::Json(tenant_json(&ctx, &*tenant_profile(&ctx, &id)?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// live (default) or test.
    #[schema(value_type = Option<super::params::ModeFilter>)]
    mode: Option<String>,
    #[schema(max_length = 100)]
    label: Option<String>,
    /// A Twilio-style credential (an account SID and auth token for the
    /// Twilio-compatible API) instead of an API key.
    #[serde(default)]
    twilio: bool,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedKey {
    id: String,
    /// Shown once, stored only as a hash (for a Twilio-style credential:
    /// the auth token).
    key: String,
    mode: String,
    /// A Twilio-style credential's account SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    account_sid: Option<String>,
}

/// Issue an API key for a tenant.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/keys", tag = "admin", request_body = NewKey,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201, body = IssuedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_key(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, axum::Json<IssuedKey>), ApiError> {
    tenant_profile(&ctx, &tenant_id)?;
    let mode = super::auth::new_key_mode(body.mode.as_deref(), body.label.as_deref())?;
    let issued =
        ctx.control.issue_api_key(&tenant_id, mode, body.label.as_deref(), body.twilio).await.map_err(admin_error)?;
    ctx.control
        .audit(
            ACTOR,
            "key.create",
            &tenant_id,
            serde_json::json!({ "key_id": issued.id, "mode": mode.as_str(), "label": body.label,
                "account_sid": issued.account_sid }),
        )
        .await;
    let (id, key, account_sid) = (issued.id, issued.secret, issued.account_sid);
    Ok((StatusCode::CREATED, axum::Json(IssuedKey { id, key, mode: mode.as_str().into(), account_sid })))
}

/// Revoke one of a tenant's API keys.
#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/keys/{key_id}", tag = "admin",
    params(("id" = String, Path, description = "Tenant id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke_key(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path((tenant_id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !ctx.control.revoke_api_key(&tenant_id, &key_id).await.map_err(admin_error)? {
        return Err(ApiError::not_found("KEY_NOT_FOUND", format!("tenant {tenant_id:?} has no live key {key_id:?}")));
    }
    ctx.control.audit(ACTOR, "key.revoke", &tenant_id, serde_json::json!({ "key_id": key_id })).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    /// E.164.
    #[schema(min_length = 1, max_length = 64)]
    number: String,
    /// The connector that sends from and receives on it.
    #[schema(min_length = 1, max_length = 64)]
    connector: String,
    /// Make it the tenant's default sender.
    #[serde(default)]
    default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct NumberJson {
    number: String,
    connector: String,
    default: bool,
}

/// Assign a number to a tenant.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/numbers", tag = "admin", request_body = NewNumber,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201, body = NumberJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn add_number(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    Json(body): Json<NewNumber>,
) -> Result<(StatusCode, axum::Json<NumberJson>), ApiError> {
    tenant_profile(&ctx, &tenant_id)?;
    let number =
        ctx.control.add_number(&tenant_id, &body.number, &body.connector, body.default).await.map_err(admin_error)?;
    ctx.control
        .audit(ACTOR, "number.add", &tenant_id, serde_json::json!({ "number": number, "connector": body.connector }))
        .await;
    Ok((StatusCode::CREATED, axum::Json(NumberJson { number, connector: body.connector, default: body.default })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSenderId {
    /// 1 to 11 letters, digits or inner spaces, with at least one letter.
    #[schema(
        min_length = 1,
        max_length = 11,
        pattern = "^([A-Za-z0-9][A-Za-z0-9 ]*)?[A-Za-z]([A-Za-z0-9 ]*[A-Za-z0-9])?$"
    )]
    sender_id: String,
}

/// Assign an alphanumeric sender ID to a tenant, approved at once (the
/// brand list does not bind the operator).
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/sender-ids", tag = "admin", request_body = NewSenderId,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn add_sender_id(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    Json(body): Json<NewSenderId>,
) -> Result<StatusCode, ApiError> {
    tenant_profile(&ctx, &tenant_id)?;
    super::numbers::check_sender_id(&body.sender_id)?;
    ctx.control.assign_sender_id(&tenant_id, &body.sender_id).await.map_err(admin_error)?;
    ctx.control.audit(ACTOR, "sender_id.add", &tenant_id, serde_json::json!({ "sender_id": body.sender_id })).await;
    Ok(StatusCode::CREATED)
}

async fn decide(ctx: &Context, tenant_id: &str, sender_id: &str, approve: bool) -> Result<StatusCode, ApiError> {
    ctx.control.decide_sender_id(tenant_id, sender_id, approve).await.map_err(|e| match e {
        AdminError::NotFound(_) => ApiError::not_found(
            "SENDER_ID_NOT_FOUND",
            format!("tenant {tenant_id:?} has not asked for sender ID {sender_id:?}"),
        ),
        AdminError::Conflict(_) => {
            ApiError::conflict("SENDER_ID_TAKEN", "another tenant holds this sender ID").with_field("sender_id")
        }
        e => admin_error(e),
    })?;
    let action = if approve { "sender_id.approve" } else { "sender_id.reject" };
    ctx.control.audit(ACTOR, action, tenant_id, serde_json::json!({ "sender_id": sender_id })).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Approve a sender ID a tenant asked for.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/sender-ids/{sender_id}/approve", tag = "admin",
    params(("id" = String, Path, description = "Tenant id"), ("sender_id" = String, Path, description = "The sender ID")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "SENDER_ID_TAKEN: another tenant holds it", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn approve_sender_id(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path((tenant_id, sender_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    decide(&ctx, &tenant_id, &sender_id, true).await
}

/// Reject a sender ID a tenant asked for.
#[utoipa::path(post, path = "/admin/v1/tenants/{id}/sender-ids/{sender_id}/reject", tag = "admin",
    params(("id" = String, Path, description = "Tenant id"), ("sender_id" = String, Path, description = "The sender ID")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn reject_sender_id(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Path((tenant_id, sender_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    decide(&ctx, &tenant_id, &sender_id, false).await
}

#[derive(Serialize, ToSchema)]
pub struct ConnectorJson {
    name: String,
    /// `simulator`, `sandbox`, `twilio`, `vonage`, `http`, `smpp` or `generic`.
    kind: String,
    /// Circuit breaker: `closed`, `open` or `half_open`.
    circuit: String,
    /// Requests to the carrier in progress on this node.
    in_flight: usize,
    /// The send rate the connector is held to, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_second: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectorList {
    data: Vec<ConnectorJson>,
}

/// The configured carrier connectors and their circuit state.
#[utoipa::path(get, path = "/admin/v1/connectors", tag = "admin",
    responses((status = 200, body = ConnectorList), (status = 401, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn connectors(State(ctx): State<Arc<Context>>, _admin: Admin) -> axum::Json<ConnectorList> {
    let mut data: Vec<ConnectorJson> = ctx
        .engine
        .connectors
        .names()
        .map(|name| {
            let kind = ctx.connector_kinds.get(name).copied().unwrap_or(name);
            let registered = ctx.engine.connectors.get(name);
            let gate = registered.as_ref().map(|r| &r.gate);
            let circuit = match gate.map(|g| g.state()) {
                Some(crate::connectors::gate::CircuitState::Open) => "open",
                Some(crate::connectors::gate::CircuitState::HalfOpen) => "half_open",
                _ => "closed",
            };
            ConnectorJson {
                name: name.to_string(),
                kind: kind.to_string(),
                circuit: circuit.to_string(),
                in_flight: gate.map_or(0, |g| g.in_flight()),
                rate_per_second: gate.and_then(|g| g.rate_per_second()),
            }
        })
        .collect();
    data.sort_by(|a, b| a.name.cmp(&b.name));
    axum::Json(ConnectorList { data })
}

#[derive(Serialize, ToSchema)]
pub struct QueueJson {
    /// `events`, `outbox`, `timers` or `webhooks`.
    name: String,
    /// Items waiting.
    depth: i64,
    /// How long the oldest due item has waited, in seconds (0 when none is due).
    oldest_seconds: f64,
}

#[derive(Serialize, ToSchema)]
pub struct QueueList {
    data: Vec<QueueJson>,
}

/// The work waiting in each queue, across every node sharing the database.
#[utoipa::path(get, path = "/admin/v1/queues", tag = "admin",
    responses((status = 200, body = QueueList), (status = 401, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn queues(State(ctx): State<Arc<Context>>, _admin: Admin) -> Result<axum::Json<QueueList>, ApiError> {
    let rows = ctx.engine.db.queue_depths().await?;
    let now = ctx.engine.clock.now_ms();
    let data = ["events", "outbox", "timers", "webhooks"]
        .into_iter()
        .map(|name| {
            let row = rows.iter().find(|r| r.queue == name);
            let waited = row.and_then(|r| r.earliest_due).map_or(0, |due| (now - due).max(0));
            QueueJson {
                name: name.to_string(),
                depth: row.map_or(0, |r| r.depth),
                oldest_seconds: waited as f64 / 1000.0,
            }
        })
        .collect();
    Ok(axum::Json(QueueList { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many entries (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Entries older than this id (the previous page's `next_before`).
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditJson {
    id: i64,
    /// `admin`, or the tenant and key that acted.
    actor: String,
    /// e.g. `tenant.create`, `key.revoke`, `plugin.deploy`.
    action: String,
    target: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    data: Vec<AuditJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// The audit log, newest first: who did what, to what, when.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody)), security(("admin_token" = [])))]
pub async fn audit(
    State(ctx): State<Arc<Context>>,
    _admin: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditList>, ApiError> {
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let rows = ctx.engine.db.audit_log(limit, q.before).await?;
    let next_before = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id)).flatten();
    let data = rows
        .into_iter()
        .map(|r| AuditJson {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::String(r.detail)),
            at: to_rfc3339(r.at),
        })
        .collect();
    Ok(axum::Json(AuditList { data, next_before }))
}
