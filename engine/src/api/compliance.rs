//! Consent records and compliance settings: `GET`/`POST /v1/opt-outs`
//! (list, import), `GET`/`PUT /v1/compliance` (keywords, replies, scope,
//! quiet hours, and the count of refused sends).

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::Json;
use super::json::Query;
use crate::api::Context;
use crate::clock::to_rfc3339;
use crate::compliance::{Compliance, OPT_OUT_REFUSALS, valid_quiet_hours};
use crate::phone;
use crate::store::OptOutRow;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct OptOutJson {
    recipient: String,
    /// The tenant number the recipient opted out of; absent: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    /// `keyword` (they texted it), `import` or `api`.
    source: String,
    /// The keyword they texted.
    #[serde(skip_serializing_if = "Option::is_none")]
    keyword: Option<String>,
    opted_out_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct OptOutList {
    data: Vec<OptOutJson>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OptOutQuery {
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Recipients after this one (the previous page's `next_after`).
    after: Option<String>,
}

/// The tenant's opt-outs (consent records), by recipient.
#[utoipa::path(get, path = "/v1/opt-outs", tag = "compliance", params(OptOutQuery),
    responses((status = 200, body = OptOutList)), security(("api_key" = [])))]
pub async fn list(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Query(q): Query<OptOutQuery>,
) -> Result<axum::Json<OptOutList>, ApiError> {
    let limit = super::params::page_limit(q.limit, 100, 1000)?;
    let rows = ctx.engine.db.list_opt_outs(&auth.tenant_id, limit, q.after.as_deref()).await?;
    let next_after = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.recipient.clone())).flatten();
    let data = rows
        .into_iter()
        .map(|r| OptOutJson {
            recipient: r.recipient,
            number: Some(r.scope).filter(|s| !s.is_empty()),
            source: r.source,
            keyword: r.keyword,
            opted_out_at: to_rfc3339(r.at),
        })
        .collect();
    Ok(axum::Json(OptOutList { data, next_after }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportedOptOut {
    #[schema(min_length = 1, max_length = 64)]
    recipient: String,
    /// Opt out of this one of your numbers only (default: all of them).
    #[schema(max_length = 64)]
    number: Option<String>,
    /// When they opted out (RFC 3339; default now).
    #[schema(format = DateTime)]
    opted_out_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOptOuts {
    /// Up to 10,000 recipients, e.g. from another platform's suppression list.
    #[schema(max_items = 10000)]
    opt_outs: Vec<ImportedOptOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportResult {
    /// New opt-outs recorded.
    imported: u64,
    /// Recipients that were opted out already.
    already_opted_out: u64,
}

const MAX_IMPORT: usize = 10_000;

/// Import opt-outs. Existing records (and their timestamps) are kept.
#[utoipa::path(post, path = "/v1/opt-outs", tag = "compliance", request_body = ImportOptOuts,
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn import(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<ImportOptOuts>,
) -> Result<axum::Json<ImportResult>, ApiError> {
    if body.opt_outs.len() > MAX_IMPORT {
        return Err(ApiError::bad_request("TOO_MANY_ITEMS", format!("at most {MAX_IMPORT} opt-outs per request"))
            .with_field("opt_outs"));
    }
    let tenant = crate::pipeline::outbound::tenant(&ctx.engine, &auth.tenant_id)
        .ok_or_else(|| ApiError::internal("tenant vanished"))?;
    let now = ctx.engine.clock.now_ms();
    let mut rows = Vec::with_capacity(body.opt_outs.len());
    for (i, o) in body.opt_outs.into_iter().enumerate() {
        let field = |f: &str| format!("opt_outs[{i}].{f}");
        let recipient = phone::normalize(&o.recipient, tenant.default_region.as_deref())
            .map_err(|e| ApiError::bad_request("INVALID_PHONE_NUMBER", e.to_string()).with_field(field("recipient")))?;
        let scope = match &o.number {
            None => String::new(),
            Some(n) => tenant.sender(n).map(|s| s.address.clone()).ok_or_else(|| {
                ApiError::bad_request("INVALID_FIELD", format!("{n:?} is not one of your numbers"))
                    .with_field(field("number"))
            })?,
        };
        let at = match &o.opted_out_at {
            None => now,
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| {
                    ApiError::bad_request("INVALID_FIELD", "opted_out_at must be an RFC 3339 time")
                        .with_field(field("opted_out_at"))
                })?
                .timestamp_millis(),
        };
        rows.push(OptOutRow { recipient, scope, source: "import".into(), keyword: None, at });
    }
    let imported = ctx.engine.db.import_opt_outs(&auth.tenant_id, &rows).await?;
    ctx.control
        .audit(
            &auth.actor(),
            "opt_outs.import",
            &auth.tenant_id,
            serde_json::json!({ "count": rows.len(), "new": imported }),
        )
        .await;
    Ok(axum::Json(ImportResult { imported, already_opted_out: rows.len() as u64 - imported }))
}

#[derive(Serialize, ToSchema)]
pub struct ComplianceJson {
    settings: Compliance,
    /// Sends refused because the recipient opted out (API, plugins, and
    /// scheduled messages at send time).
    refused_sends: i64,
}

/// Compliance settings and the count of refused sends.
#[utoipa::path(get, path = "/v1/compliance", tag = "compliance",
    responses((status = 200, body = ComplianceJson)), security(("api_key" = [])))]
pub async fn get(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> Result<axum::Json<ComplianceJson>, ApiError> {
    let tenant = crate::pipeline::outbound::tenant(&ctx.engine, &auth.tenant_id)
        .ok_or_else(|| ApiError::internal("tenant vanished"))?;
    let counters = ctx.engine.db.counters(&auth.tenant_id).await?;
    let refused_sends = counters.iter().find(|(n, _)| n == OPT_OUT_REFUSALS).map_or(0, |(_, v)| *v);
    Ok(axum::Json(ComplianceJson { settings: tenant.settings.compliance.clone(), refused_sends }))
}

fn validate(c: &Compliance) -> Result<(), ApiError> {
    let lists = [
        ("stop_keywords", &c.stop_keywords),
        ("start_keywords", &c.start_keywords),
        ("help_keywords", &c.help_keywords),
    ];
    for (name, words) in lists {
        if words.iter().any(|w| w.is_empty() || w.chars().count() > 32 || w.chars().any(char::is_whitespace)) {
            return Err(ApiError::bad_request("INVALID_FIELD", "each keyword is one word of 1 to 32 characters")
                .with_field(name));
        }
    }
    if c.stop_keywords.is_empty() {
        return Err(
            ApiError::bad_request("INVALID_FIELD", "at least one stop keyword is required").with_field("stop_keywords")
        );
    }
    for (name, text) in [("stop_reply", &c.stop_reply), ("start_reply", &c.start_reply), ("help_reply", &c.help_reply)]
    {
        if text.trim().is_empty() || text.chars().count() > 480 {
            return Err(ApiError::bad_request("INVALID_FIELD", "replies are 1 to 480 characters").with_field(name));
        }
    }
    if let Some(q) = &c.quiet_hours {
        valid_quiet_hours(q).map_err(|m| ApiError::bad_request("INVALID_FIELD", m).with_field("quiet_hours"))?;
    }
    Ok(())
}

/// Replace the compliance settings (give every field; `GET` first).
#[utoipa::path(put, path = "/v1/compliance", tag = "compliance", request_body = Compliance,
    responses((status = 200, body = ComplianceJson), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<Compliance>,
) -> Result<axum::Json<ComplianceJson>, ApiError> {
    validate(&body)?;
    let tenant = crate::pipeline::outbound::tenant(&ctx.engine, &auth.tenant_id)
        .ok_or_else(|| ApiError::internal("tenant vanished"))?;
    let mut settings = tenant.settings.clone();
    settings.compliance = body;
    ctx.control.update_tenant_settings(&auth.tenant_id, &settings).await.map_err(ApiError::internal)?;
    ctx.control
        .audit(
            &auth.actor(),
            "compliance.update",
            &auth.tenant_id,
            serde_json::to_value(&settings.compliance).unwrap_or_default(),
        )
        .await;
    get(State(ctx), auth).await
}
