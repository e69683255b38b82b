//! Numbers and sender IDs: lookup (`GET /v1/numbers/{number}`), the
//! tenant's numbers and alphanumeric sender IDs.

use super::auth::{AuthTenant, LiveTenant};
use super::error::{ApiError, ErrorBody};
use super::json::{Json, Query};
use crate::api::Context;
use crate::control::AdminError;
use crate::senders::NumberRegistration;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use phonenumber::{Mode, Type};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct NumberLookup {
    /// What was asked.
    input: String,
    /// libphonenumber considers the number assigned and dialable.
    valid: bool,
    /// Sends accept it: valid, or of a possible length for its country code.
    possible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    e164: Option<String>,
    /// ISO 3166 alpha-2 region (`001` for non-geographic numbers such as
    /// `+800`); absent when the number is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    national_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    international_format: Option<String>,
    /// libphonenumber's number type (`unknown` when the number is not valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "mobile")]
    r#type: Option<&'static str>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The region national-format numbers (`020 7031 3000`) and numbers
    /// with an international prefix (`0044 …`, `011 44 …`) are read in:
    /// ISO 3166 alpha-2. Default: the tenant's default region.
    #[param(pattern = "^[A-Za-z]{2}$", example = "GB")]
    country: Option<String>,
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::Mobile => "mobile",
        Type::FixedLine => "fixed_line",
        Type::FixedLineOrMobile => "fixed_line_or_mobile",
        Type::TollFree => "toll_free",
        Type::PremiumRate => "premium_rate",
        Type::SharedCost => "shared_cost",
        Type::Voip => "voip",
        Type::PersonalNumber => "personal_number",
        Type::Pager => "pager",
        Type::Uan => "uan",
        Type::Voicemail => "voicemail",
        _ => "unknown",
    }
}

/// Validate and describe a phone number, as libphonenumber does.
#[utoipa::path(get, path = "/v1/numbers/{number}", tag = "numbers",
    params(("number" = String, Path, description = "The number: E.164 (+ may be written %2B), or national or with an international prefix, read in `country`", max_length = 64),
        LookupQuery),
    responses((status = 200, body = NumberLookup), (status = 400, description = "INVALID_PARAMETER: an unknown country", body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn lookup(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
    Path(number): Path<String>,
    Query(q): Query<LookupQuery>,
) -> Result<axum::Json<NumberLookup>, ApiError> {
    let region = match q.country {
        Some(c) => Some(crate::phone::region(&c).ok_or_else(|| {
            ApiError::bad_request("INVALID_PARAMETER", format!("{c:?} is not an ISO 3166 region")).with_field("country")
        })?),
        None => ctx.engine.directory.snapshot().tenants.get(&auth.tenant_id).and_then(|t| t.default_region.clone()),
    };
    let region_id = region.as_deref().and_then(|r| r.parse::<phonenumber::country::Id>().ok());
    if number.chars().count() > crate::phone::MAX_INPUT_BYTES {
        return Err(ApiError::bad_request(
            "INVALID_PARAMETER",
            format!("a number is at most {} characters", crate::phone::MAX_INPUT_BYTES),
        )
        .with_field("number"));
    }
    let parsed = phonenumber::parse(region_id, &number).ok();
    let possible = crate::phone::normalize(&number, region.as_deref()).is_ok();
    let mut out = NumberLookup {
        input: number,
        valid: false,
        possible,
        e164: None,
        country: None,
        country_code: None,
        national_format: None,
        international_format: None,
        r#type: None,
    };
    if let Some(n) = parsed {
        let described = crate::phone::describe(&n);
        out.valid = described.valid;
        out.country = described.region;
        out.r#type = Some(type_name(described.kind));
        out.e164 = Some(n.format().mode(Mode::E164).to_string());
        out.country_code = Some(n.code().value());
        out.national_format = Some(n.format().mode(Mode::National).to_string());
        out.international_format = Some(n.format().mode(Mode::International).to_string());
    }
    Ok(axum::Json(out))
}

#[derive(Serialize, ToSchema)]
pub struct NumberJson {
    number: String,
    connector: String,
    default: bool,
    /// The number's inbound webhook app (Twilio's `SmsUrl`), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    sms_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SendersJson {
    numbers: Vec<NumberJson>,
    /// Approved sender IDs (`GET /v1/sender-ids` lists pending ones too).
    sender_ids: Vec<String>,
}

/// The tenant's numbers and sender IDs.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers",
    responses((status = 200, body = SendersJson)), security(("api_key" = [])))]
pub async fn list(State(ctx): State<Arc<Context>>, auth: AuthTenant) -> axum::Json<SendersJson> {
    let snapshot = ctx.engine.directory.snapshot();
    let tenant = snapshot.tenants.get(&auth.tenant_id);
    let mut numbers = Vec::new();
    let mut sender_ids = Vec::new();
    for s in tenant.map(|t| t.senders.values().collect::<Vec<_>>()).unwrap_or_default() {
        if s.address.starts_with('+') {
            let default = tenant.and_then(|t| t.default_sender.as_deref()) == Some(s.address.as_str());
            numbers.push(NumberJson {
                number: s.address.clone(),
                connector: s.connector.clone(),
                default,
                sms_url: s.sms_url.clone(),
            });
        } else {
            sender_ids.push(s.address.clone());
        }
    }
    numbers.sort_by(|a, b| a.number.cmp(&b.number));
    sender_ids.sort();
    axum::Json(SendersJson { numbers, sender_ids })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterNumber {
    #[schema(min_length = 1, max_length = 64)]
    number: String,
    /// The connector that sends from and receives on it (default `simulator`).
    #[schema(min_length = 1, max_length = 64)]
    connector: Option<String>,
    /// Make it the default sender.
    #[serde(default)]
    default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RegisteredNumber {
    number: String,
    connector: String,
    default: bool,
    /// `active`, or `pending_verification`: a code was sent to the number;
    /// post it to `/v1/numbers/{number}/verify`.
    status: &'static str,
    /// Until when the code is valid (RFC 3339), while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

/// What refusals of number and sender ID requests look like.
pub(super) fn senders_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid { field: "number", message } => {
            ApiError::bad_request("INVALID_PHONE_NUMBER", message).with_field("number")
        }
        AdminError::Invalid { field: "code", message } => {
            ApiError::bad_request("INVALID_VERIFICATION_CODE", message).with_field("code")
        }
        AdminError::Invalid { field, message } => ApiError::bad_request("INVALID_FIELD", message).with_field(field),
        AdminError::Conflict(what) if what == "number" => {
            ApiError::conflict("NUMBER_TAKEN", "this number is already registered").with_field("number")
        }
        AdminError::Conflict(_) => {
            ApiError::conflict("SENDER_ID_EXISTS", "this sender ID is already registered").with_field("sender_id")
        }
        AdminError::Refused { code: "INSUFFICIENT_BALANCE", message } => {
            ApiError::new(StatusCode::PAYMENT_REQUIRED, "INSUFFICIENT_BALANCE", message)
        }
        AdminError::Refused { code: code @ "VERIFICATION_EXPIRED", message } => ApiError::conflict(code, message),
        AdminError::Refused { code, message } => {
            let field = if code == "SENDER_ID_BLOCKED" { "sender_id" } else { "connector" };
            ApiError::forbidden(code, message).with_field(field)
        }
        AdminError::NotFound("number claim") => {
            ApiError::not_found("NOT_FOUND", "no verification is pending for this number").with_field("number")
        }
        AdminError::NotFound(what) => ApiError::not_found("NOT_FOUND", format!("no such {what}")),
        AdminError::Store(e) => ApiError::internal(e),
    }
}

/// Register a number: inbound SMS to it route to this tenant, and it can be
/// used as `from`. On a connector whose numbers the operator assigns this is
/// 403 `NUMBER_ASSIGNED_BY_OPERATOR`; on one that wants proof, a code is sent
/// to the number (202, `pending_verification`).
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = RegisterNumber,
    responses((status = 201, description = "Registered", body = RegisteredNumber),
        (status = 202, description = "A code was sent to the number", body = RegisteredNumber),
        (status = 400, body = ErrorBody), (status = 402, body = ErrorBody),
        (status = 403, description = "TEST_KEY, CONNECTOR_NOT_ALLOWED, NUMBER_ASSIGNED_BY_OPERATOR", body = ErrorBody),
        (status = 409, description = "NUMBER_TAKEN", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn register(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<RegisterNumber>,
) -> Result<(StatusCode, axum::Json<RegisteredNumber>), ApiError> {
    let connector = body.connector.unwrap_or_else(|| "simulator".into());
    let outcome = ctx
        .control
        .register_number(&auth.tenant_id, &body.number, &connector, body.default)
        .await
        .map_err(senders_error)?;
    let (status, number, state, expires_at) = match outcome {
        NumberRegistration::Active { number } => (StatusCode::CREATED, number, "active", None),
        NumberRegistration::Pending { number, expires_at } => {
            (StatusCode::ACCEPTED, number, "pending_verification", Some(crate::clock::to_rfc3339(expires_at)))
        }
    };
    ctx.control
        .audit(
            &auth.actor(),
            "number.register",
            &auth.tenant_id,
            serde_json::json!({ "number": number, "connector": connector, "status": state }),
        )
        .await;
    Ok((status, axum::Json(RegisteredNumber { number, connector, default: body.default, status: state, expires_at })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyNumber {
    /// The code sent to the number.
    #[schema(min_length = 1, max_length = 16)]
    code: String,
}

/// Prove a number with the code sent to it: it becomes the tenant's.
#[utoipa::path(post, path = "/v1/numbers/{number}/verify", tag = "numbers", request_body = VerifyNumber,
    params(("number" = String, Path, description = "The number (+ may be written %2B)")),
    responses((status = 201, body = NumberJson), (status = 400, description = "INVALID_VERIFICATION_CODE", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "VERIFICATION_EXPIRED, NUMBER_TAKEN", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(number): Path<String>,
    Json(body): Json<VerifyNumber>,
) -> Result<(StatusCode, axum::Json<NumberJson>), ApiError> {
    let number = ctx.control.verify_number(&auth.tenant_id, &number, &body.code).await.map_err(senders_error)?;
    let snapshot = ctx.engine.directory.snapshot();
    let tenant = snapshot.tenants.get(&auth.tenant_id);
    let sender = tenant.and_then(|t| t.senders.get(&number));
    let json = NumberJson {
        connector: sender.map(|s| s.connector.clone()).unwrap_or_default(),
        default: tenant.and_then(|t| t.default_sender.as_deref()) == Some(number.as_str()),
        number,
        sms_url: None,
    };
    ctx.control
        .audit(&auth.actor(), "number.verify", &auth.tenant_id, serde_json::json!({ "number": json.number }))
        .await;
    Ok((StatusCode::CREATED, axum::Json(json)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSenderId {
    /// 1 to 11 letters, digits or inner spaces, with at least one letter.
    #[schema(
        min_length = 1,
        max_length = 11,
        pattern = "^([A-Za-z0-9][A-Za-z0-9 ]*)?[A-Za-z]([A-Za-z0-9 ]*[A-Za-z0-9])?$"
    )]
    sender_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct SenderIdJson {
    sender_id: String,
    /// `pending` (until the operator decides), `approved` or `rejected`.
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct SenderIdList {
    data: Vec<SenderIdJson>,
}

/// Refuses a malformed alphanumeric sender ID.
pub(super) fn check_sender_id(s: &str) -> Result<(), ApiError> {
    if valid_sender_id(s) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "INVALID_SENDER_ID",
        "a sender ID is 1 to 11 letters, digits or inner spaces, and not only digits",
    )
    .with_field("sender_id"))
}

/// Whether `s` is a valid alphanumeric sender ID.
pub fn valid_sender_id(s: &str) -> bool {
    (1..=11).contains(&s.chars().count())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && !s.chars().all(|c| c.is_ascii_digit() || c == ' ')
        && s.trim() == s
}

/// The tenant's sender IDs and where their approval stands.
#[utoipa::path(get, path = "/v1/sender-ids", tag = "numbers",
    responses((status = 200, body = SenderIdList)), security(("api_key" = [])))]
pub async fn list_sender_ids(
    State(ctx): State<Arc<Context>>,
    auth: AuthTenant,
) -> Result<axum::Json<SenderIdList>, ApiError> {
    let data = ctx
        .engine
        .db
        .list_sender_ids()
        .await?
        .into_iter()
        .filter(|r| r.tenant_id == auth.tenant_id)
        .map(|r| SenderIdJson { sender_id: r.sender_id, status: r.status })
        .collect();
    Ok(axum::Json(SenderIdList { data }))
}

/// Ask for an alphanumeric sender ID: pending until the operator approves
/// it. Names that imitate a brand are refused (403 `SENDER_ID_BLOCKED`).
#[utoipa::path(post, path = "/v1/sender-ids", tag = "numbers", request_body = RegisterSenderId,
    responses((status = 202, description = "Pending the operator's approval", body = SenderIdJson),
        (status = 400, description = "INVALID_SENDER_ID", body = ErrorBody),
        (status = 403, description = "TEST_KEY, SENDER_ID_BLOCKED", body = ErrorBody),
        (status = 409, description = "SENDER_ID_EXISTS", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_sender_id(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Json(body): Json<RegisterSenderId>,
) -> Result<(StatusCode, axum::Json<SenderIdJson>), ApiError> {
    check_sender_id(&body.sender_id)?;
    ctx.control.request_sender_id(&auth.tenant_id, &body.sender_id).await.map_err(senders_error)?;
    ctx.control
        .audit(&auth.actor(), "sender_id.request", &auth.tenant_id, serde_json::json!({ "sender_id": body.sender_id }))
        .await;
    Ok((StatusCode::ACCEPTED, axum::Json(SenderIdJson { sender_id: body.sender_id, status: "pending".into() })))
}

/// Remove a sender ID.
#[utoipa::path(delete, path = "/v1/sender-ids/{sender_id}", tag = "numbers",
    params(("sender_id" = String, Path, description = "The sender ID")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_sender_id(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(sender_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if ctx.control.remove_sender_id(&auth.tenant_id, &sender_id).await.map_err(ApiError::internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("SENDER_ID_NOT_FOUND", format!("no sender ID {sender_id:?}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sender_id_rules() {
        for ok in ["ACME", "Acme Shop", "A1", "ABCDEFGHIJK"] {
            assert!(super::valid_sender_id(ok), "{ok}");
        }
        for bad in ["", "ABCDEFGHIJKL", "12345", "ACME!", " ACME", "Ünicode"] {
            assert!(!super::valid_sender_id(bad), "{bad}");
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNumber {
    /// Every inbound message to the number is POSTed here as Twilio's form
    /// (`MessageSid`, `From`, `To`, `Body`, …, signed with `X-Twilio-Signature`
    /// under the tenant's Twilio-style credential); the `<Message>`s of the
    /// TwiML it answers are sent as replies. `null` removes it.
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+", max_length = 2048)]
    sms_url: Option<String>,
}

/// Set or remove a number's inbound webhook app (`sms_url`).
#[utoipa::path(patch, path = "/v1/numbers/{number}", tag = "numbers", request_body = UpdateNumber,
    params(("number" = String, Path, description = "One of your numbers, E.164", max_length = 64)),
    responses((status = 200, body = NumberJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "NUMBER_NOT_FOUND", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn update(
    State(ctx): State<Arc<Context>>,
    LiveTenant(auth): LiveTenant,
    Path(number): Path<String>,
    Json(body): Json<UpdateNumber>,
) -> Result<axum::Json<NumberJson>, ApiError> {
    if let Some(url) = &body.sms_url {
        if url.len() > 2048 {
            return Err(ApiError::bad_request("INVALID_FIELD", "sms_url is at most 2048 bytes").with_field("sms_url"));
        }
        crate::net::parse_http_url(url)
            .map_err(|e| ApiError::bad_request("INVALID_FIELD", e.to_string()).with_field("sms_url"))?;
    }
    let snapshot = ctx.engine.directory.snapshot();
    let tenant = snapshot.tenants.get(&auth.tenant_id);
    let sender = tenant
        .and_then(|t| t.sender(&number))
        .filter(|s| s.address.starts_with('+'))
        .ok_or_else(|| ApiError::not_found("NUMBER_NOT_FOUND", format!("{number:?} is not one of your numbers")))?;
    let number = sender.address.clone();
    let default = tenant.and_then(|t| t.default_sender.as_deref()) == Some(number.as_str());
    let connector = sender.connector.clone();
    drop(snapshot);
    if !ctx.control.set_sms_url(&auth.tenant_id, &number, body.sms_url.as_deref()).await? {
        return Err(ApiError::not_found("NUMBER_NOT_FOUND", format!("{number:?} is not one of your numbers")));
    }
    ctx.control.audit(&auth.actor(), "number.update", &number, serde_json::json!({ "sms_url": body.sms_url })).await;
    Ok(axum::Json(NumberJson { number, connector, default, sms_url: body.sms_url }))
}
