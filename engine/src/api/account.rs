//! The tenant's account: balance and usage, the ledger, the status
//! webhook and its signing secret, and API keys (rotation).

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::json::Query;
use crate::api::Context;
use crate::billing::format_amount;
use crate::clock::to_rfc3339;
use crate::secrets::KeyMode;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct UsageJson {
    /// UTC day, `YYYY-MM-DD`.
    date: String,
    direction: String,
    status: String,
    messages: i64,
    segments: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AccountJson {
    tenant_id: String,
    name: String,
    balance: String,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<String>,
    /// Messages and segments per day, direction and status.
    usage: Vec<UsageJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Days of usage to report (1 to 366, default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

/// Balance and usage.
#[utoipa::path(get, path = "/v1/account", tag = "account", params(UsageQuery),
    responses((status = 200, body = AccountJson)), security(("api_key" = [])))]
pub async fn get(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Query(q): Query<UsageQuery>,
) -> Result<axum::Json<AccountJson>, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad_request("INVALID_PARAMETER", "days is 1 to 366").with_field("days"));
    }
    let account =
        ctx.engine.db.account(&auth.tenant_id).await?.ok_or_else(|| ApiError::internal("account vanished"))?;
    let today = ctx.engine.clock.now_ms() / 86_400_000;
    let since = (today - days as i64 + 1) * 86_400_000;
    let usage = ctx
        .engine
        .db
        .usage(&auth.tenant_id, since)
        .await?
        .into_iter()
        .map(|u| UsageJson {
            date: crate::clock::to_datetime(u.day * 86_400_000).format("%Y-%m-%d").to_string(),
            direction: u.direction,
            status: u.status,
            messages: u.messages,
            segments: u.segments,
        })
        .collect();
    Ok(axum::Json(AccountJson {
        tenant_id: account.tenant_id,
        name: account.name,
        balance: format_amount(account.balance),
        currency: ctx.engine.pricing.currency.clone(),
        webhook_url: account.webhook_url,
        usage,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryJson {
    /// Signed: credits positive, debits negative.
    amount: String,
    balance_after: String,
    /// credit, debit, refund, adjustment
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerJson {
    data: Vec<LedgerEntryJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Newest entries first, at most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Every debit and credit, newest first.
#[utoipa::path(get, path = "/v1/account/ledger", tag = "account", params(LedgerQuery),
    responses((status = 200, body = LedgerJson)), security(("api_key" = [])))]
pub async fn ledger(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Query(q): Query<LedgerQuery>,
) -> Result<axum::Json<LedgerJson>, ApiError> {
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let data = ctx
        .engine
        .db
        .ledger(&auth.tenant_id, limit)
        .await?
        .into_iter()
        .map(|l| LedgerEntryJson {
            amount: format_amount(l.amount),
            balance_after: format_amount(l.balance_after),
            kind: l.kind,
            message_id: l.message_id,
            note: l.note,
            at: to_rfc3339(l.at),
        })
        .collect();
    Ok(axum::Json(LedgerJson { data }))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receives status changes of messages that have no webhook_url of
    /// their own: an http(s) URL.
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+", max_length = 2048)]
    url: Option<String>,
}

/// The account's default status webhook.
#[utoipa::path(get, path = "/v1/account/webhook", tag = "account",
    responses((status = 200, body = WebhookConfig)), security(("api_key" = [])))]
pub async fn get_webhook(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
) -> Result<axum::Json<WebhookConfig>, ApiError> {
    let account =
        ctx.engine.db.account(&auth.tenant_id).await?.ok_or_else(|| ApiError::internal("account vanished"))?;
    Ok(axum::Json(WebhookConfig { url: account.webhook_url }))
}

/// Set (or, with `null`, clear) the default status webhook.
#[utoipa::path(put, path = "/v1/account/webhook", tag = "account", request_body = WebhookConfig,
    responses((status = 200, body = WebhookConfig), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put_webhook(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<WebhookConfig>,
) -> Result<axum::Json<WebhookConfig>, ApiError> {
    if let Some(url) = &body.url {
        crate::net::parse_http_url(url)
            .map_err(|e| ApiError::bad_request("INVALID_FIELD", e.to_string()).with_field("url"))?;
    }
    ctx.engine.db.set_webhook(&auth.tenant_id, body.url.as_deref(), None).await?;
    Ok(axum::Json(body))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The ISO 3166 region (two letters) numbers written without a country
    /// code are read in: sends, opt-outs, lookups. `null`: none (such
    /// numbers are refused).
    #[schema(pattern = "^[A-Za-z]{2}$")]
    default_region: Option<String>,
}

/// The default region for numbers without a country code.
#[utoipa::path(get, path = "/v1/account/region", tag = "account",
    responses((status = 200, body = RegionConfig)), security(("api_key" = [])))]
pub async fn get_region(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> axum::Json<RegionConfig> {
    let default_region =
        ctx.engine.directory.snapshot().tenants.get(&auth.tenant_id).and_then(|t| t.default_region.clone());
    axum::Json(RegionConfig { default_region })
}

/// Set (or, with `null`, clear) the default region.
#[utoipa::path(put, path = "/v1/account/region", tag = "account", request_body = RegionConfig,
    responses((status = 200, body = RegionConfig), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put_region(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<RegionConfig>,
) -> Result<axum::Json<RegionConfig>, ApiError> {
    let default_region = match &body.default_region {
        None => None,
        Some(code) => Some(crate::phone::region(code).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_FIELD",
                format!("{code:?} is not an ISO 3166 region with numbering metadata"),
            )
            .with_field("default_region")
        })?),
    };
    let tenant = ctx
        .engine
        .directory
        .snapshot()
        .tenants
        .get(&auth.tenant_id)
        .cloned()
        .ok_or_else(|| ApiError::internal("tenant vanished"))?;
    let mut settings = tenant.settings.clone();
    settings.default_region = default_region.clone();
    ctx.control.update_tenant_settings(&auth.tenant_id, &settings).await.map_err(ApiError::internal)?;
    Ok(axum::Json(RegionConfig { default_region }))
}

#[derive(Serialize, ToSchema)]
pub struct WebhookSecretJson {
    /// Shown once: verify `X-Switchboard-Signature` with it.
    secret: String,
}

/// Replace the webhook signing secret; the new one is shown once.
#[utoipa::path(post, path = "/v1/account/webhook/secret", tag = "account",
    responses((status = 201, body = WebhookSecretJson)), security(("api_key" = [])))]
pub async fn rotate_webhook_secret(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
) -> Result<(StatusCode, axum::Json<WebhookSecretJson>), ApiError> {
    let secret = ctx.control.rotate_webhook_secret(&auth.tenant_id).await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(WebhookSecretJson { secret })))
}

#[derive(Serialize, ToSchema)]
pub struct KeyJson {
    id: String,
    /// A Twilio-style credential's account SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    account_sid: Option<String>,
    /// The first characters, to tell keys apart.
    prefix: String,
    /// live or test
    mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    data: Vec<KeyJson>,
}

/// The tenant's API keys (never the secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = KeyList)), security(("api_key" = [])))]
pub async fn list_keys(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> Result<axum::Json<KeyList>, ApiError> {
    let data = ctx
        .engine
        .db
        .list_keys(&auth.tenant_id)
        .await?
        .into_iter()
        .map(|k| KeyJson {
            id: k.id,
            account_sid: k.account_sid,
            prefix: k.prefix,
            mode: k.mode,
            label: k.label,
            created_at: to_rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(to_rfc3339),
        })
        .collect();
    Ok(axum::Json(KeyList { data }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(max_length = 100)]
    label: Option<String>,
    /// live (default) or test.
    #[schema(value_type = Option<super::params::ModeFilter>)]
    mode: Option<String>,
    /// A Twilio-style credential (an account SID and auth token for the
    /// Twilio-compatible API) instead of an API key.
    #[serde(default)]
    twilio: bool,
}

#[derive(Serialize, ToSchema)]
pub struct NewKeyJson {
    id: String,
    /// The key itself (for a Twilio-style credential: the auth token):
    /// shown once, stored only as a hash.
    key: String,
    mode: String,
    /// A Twilio-style credential's account SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    account_sid: Option<String>,
}

/// Create an API key (for rotation: create the new one, switch, revoke the old).
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = NewKeyJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_key(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, axum::Json<NewKeyJson>), ApiError> {
    let mode = super::auth::new_key_mode(body.mode.as_deref(), body.label.as_deref())?;
    if auth.mode == KeyMode::Test && mode == KeyMode::Live {
        return Err(ApiError::forbidden("TEST_KEY", "a test key cannot create live keys"));
    }
    let issued = ctx
        .control
        .issue_api_key(&auth.tenant_id, mode, body.label.as_deref(), body.twilio)
        .await
        .map_err(ApiError::internal)?;
    ctx.control
        .audit(
            &auth.actor(),
            "key.create",
            &issued.id,
            serde_json::json!({ "mode": mode.as_str(), "label": body.label, "account_sid": issued.account_sid }),
        )
        .await;
    let (id, key, account_sid) = (issued.id, issued.secret, issued.account_sid);
    Ok((StatusCode::CREATED, axum::Json(NewKeyJson { id, key, mode: mode.as_str().into(), account_sid })))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn revoke_key(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if ctx.control.revoke_api_key(&auth.tenant_id, &id).await.map_err(ApiError::internal)? {
        ctx.control.audit(&auth.actor(), "key.revoke", &id, serde_json::json!({})).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("KEY_NOT_FOUND", format!("no live key {id:?}")))
    }
}
