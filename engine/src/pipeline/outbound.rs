//! Accepting messages from the gateway API: validate and normalise, price,
//! persist with the debit and idempotency record (the writer), then hand
//! what is due now to the dispatcher. Scheduled messages wait in the
//! outbox until the sweeper finds them due.

use super::Context;
use super::writer::WriteError;
use crate::billing::Micros;
use crate::directory::TenantProfile;
use crate::phone;
use crate::secrets::KeyMode;
use crate::sms::encoding::{self, Encoding, EncodingChoice};
use crate::sms::template::{self, TemplateError};
use crate::store::{
    Direction, IdempotencyRecord, MessageStatus, NewMessage, OutboundRequest, OutboundResult, StoreError,
};
use crate::{ids, net};
use std::collections::HashMap;
use std::sync::Arc;

/// One message as the API describes it, before validation.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// Where errors point (`""` for a single message, `messages[3].` in a batch).
    pub field_prefix: String,
    pub to: Vec<String>,
    pub from: Option<String>,
    pub message: Option<String>,
    pub template: Option<(String, HashMap<String, String>)>,
    pub encoding: EncodingChoice,
    pub schedule_time: Option<String>,
    pub webhook_url: Option<String>,
    pub reference: Option<String>,
    /// Send even during the recipient's quiet hours.
    pub urgent: bool,
    /// Sent through the Twilio-compatible API under this account.
    pub account_sid: Option<String>,
    /// Seconds the message may wait to be sent, from when it is due;
    /// past that it fails as expired instead.
    pub validity_s: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{message}")]
    Invalid { code: &'static str, message: String, field: String },
    #[error("{message}")]
    SenderNotAllowed { message: String, field: String },
    #[error("template {name:?} does not exist")]
    TemplateNotFound { name: String, field: String },
    #[error("insufficient balance: the messages cost {needed}, the balance is {balance}")]
    InsufficientBalance { balance: Micros, needed: Micros },
    #[error("the idempotency key was used concurrently; retry to get the first result")]
    IdempotencyRace,
    #[error("{message}")]
    OptedOut { message: String, field: String },
    #[error("the tenant's quota of {quota} messages per day is used up")]
    DailyQuotaExceeded { quota: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Commit(#[from] WriteError),
}

fn invalid(code: &'static str, message: impl Into<String>, field: String) -> SendError {
    SendError::Invalid { code, message: message.into(), field }
}

/// A message accepted for sending.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub to: String,
    pub from: String,
    pub status: MessageStatus,
    pub segments: u32,
    pub encoding: Encoding,
    pub price: Micros,
    pub scheduled_at: Option<i64>,
}

/// The validated form of a request, ready to commit.
pub struct Prepared {
    pub messages: Vec<NewMessage>,
    pub queued: Vec<Queued>,
    pub batch_id: Option<String>,
}

/// Validates drafts into messages. All-or-nothing: the first invalid draft
/// fails the request.
pub async fn prepare(
    ctx: &Context,
    tenant: &TenantProfile,
    mode: KeyMode,
    drafts: Vec<Draft>,
    bulk: bool,
) -> Result<Prepared, SendError> {
    let now = ctx.clock.now_ms();
    let batch_id = bulk.then(|| ids::new_id("bat"));
    let mut templates: HashMap<String, String> = HashMap::new();
    let mut messages = Vec::new();
    let mut queued = Vec::new();
    // The field each message came from, for errors found after the loop.
    let mut fields = Vec::new();
    for d in drafts {
        let p = &d.field_prefix;
        let body = match (&d.message, &d.template) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "INVALID_FIELD",
                    "give either message or template, not both",
                    format!("{p}template"),
                ));
            }
            (None, None) => {
                return Err(invalid("INVALID_FIELD", "message (or template) is required", format!("{p}message")));
            }
            (Some(m), None) => m.clone(),
            (None, Some((name, vars))) => {
                if !templates.contains_key(name) {
                    let t = ctx.db.get_template(&tenant.id, name).await?.ok_or_else(|| {
                        SendError::TemplateNotFound { name: name.clone(), field: format!("{p}template.name") }
                    })?;
                    templates.insert(name.clone(), t.body);
                }
                template::render(&templates[name], vars).map_err(|e| match &e {
                    TemplateError::MissingVariable(v) => {
                        invalid("TEMPLATE_VARIABLE_MISSING", e.to_string(), format!("{p}template.vars.{v}"))
                    }
                    TemplateError::Malformed(_) => {
                        invalid("INVALID_TEMPLATE", e.to_string(), format!("{p}template.name"))
                    }
                })?
            }
        };
        if body.is_empty() {
            return Err(invalid("INVALID_FIELD", "message is empty", format!("{p}message")));
        }
        let chars = body.chars().count();
        let limit = ctx.limits.message_chars;
        if chars > limit {
            return Err(invalid(
                "MESSAGE_TOO_LONG",
                format!("message is {chars} characters; the limit is {limit}"),
                format!("{p}message"),
            ));
        }
        let analysis = encoding::analyze(&body, d.encoding)
            .map_err(|e| invalid("INVALID_ENCODING", format!("encoding gsm7: {e}"), format!("{p}message")))?;
        let sender = match &d.from {
            Some(f) => tenant.sender(f).ok_or_else(|| SendError::SenderNotAllowed {
                message: format!("{f:?} is not one of this tenant's numbers or sender IDs"),
                field: format!("{p}from"),
            })?,
            None => tenant.default_sender().ok_or_else(|| SendError::SenderNotAllowed {
                message: "from is required: this tenant has no default number".into(),
                field: format!("{p}from"),
            })?,
        };
        let scheduled_at = match &d.schedule_time {
            None => None,
            Some(t) => {
                let at = chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| {
                        invalid(
                            "INVALID_SCHEDULE_TIME",
                            "schedule_time must be an RFC 3339 time",
                            format!("{p}schedule_time"),
                        )
                    })?
                    .timestamp_millis();
                if at <= now {
                    return Err(invalid(
                        "INVALID_SCHEDULE_TIME",
                        "schedule_time is in the past",
                        format!("{p}schedule_time"),
                    ));
                }
                if at > now + crate::limits::MAX_SCHEDULE_AHEAD_MS {
                    return Err(invalid(
                        "INVALID_SCHEDULE_TIME",
                        "schedule_time is more than a year ahead",
                        format!("{p}schedule_time"),
                    ));
                }
                Some(at)
            }
        };
        if d.reference.as_deref().is_some_and(crate::compliance::is_reserved_reference) {
            return Err(invalid(
                "INVALID_FIELD",
                format!("references starting with {:?} are reserved", crate::compliance::RESERVED_REFERENCE_PREFIX),
                format!("{p}reference"),
            ));
        }
        if let Some(url) = &d.webhook_url {
            net::parse_http_url(url).map_err(|e| invalid("INVALID_FIELD", e.to_string(), format!("{p}webhook_url")))?;
        }
        if d.to.is_empty() {
            return Err(invalid("INVALID_FIELD", "to is required", format!("{p}to")));
        }
        let many = d.to.len() > 1;
        let trace_context = crate::telemetry::current();
        for (i, raw) in d.to.iter().enumerate() {
            let field = if many { format!("{p}to[{i}]") } else { format!("{p}to") };
            let to = phone::normalize(raw, tenant.default_region.as_deref())
                .map_err(|e| invalid("INVALID_PHONE_NUMBER", e.to_string(), field.clone()))?;
            fields.push(field);
            let scheduled_at = match d.urgent {
                true => scheduled_at,
                false => tenant.settings.compliance.quiet_until(&to, scheduled_at.unwrap_or(now)).or(scheduled_at),
            };
            let price = match mode {
                KeyMode::Live => ctx.pricing.price(&to, analysis.segments as u32),
                KeyMode::Test => 0,
            };
            let status = if scheduled_at.is_some() { MessageStatus::Scheduled } else { MessageStatus::Queued };
            let connector = match mode {
                KeyMode::Live => sender.connector.clone(),
                KeyMode::Test => crate::connectors::SANDBOX_CONNECTOR.to_string(),
            };
            let m = NewMessage {
                id: ids::message_id(),
                tenant_id: tenant.id.clone(),
                direction: Direction::Outbound,
                from: sender.address.clone(),
                to: to.clone(),
                body: body.clone(),
                status,
                segments: analysis.segments as u32,
                encoding: analysis.encoding.as_str(),
                reference: d.reference.clone(),
                connector: Some(connector),
                plugin_id: None,
                event_id: None,
                in_reply_to: None,
                created_at: now,
                mode: mode.as_str(),
                webhook_url: d.webhook_url.clone(),
                scheduled_at,
                price,
                batch_id: batch_id.clone(),
                error_code: None,
                account_sid: d.account_sid.clone(),
                expires_at: d.validity_s.map(|v| scheduled_at.unwrap_or(now) + i64::from(v) * 1000),
                // The API request's span (and the caller's trace, if it sent one).
                trace_context: trace_context.clone(),
            };
            queued.push(Queued {
                id: m.id.clone(),
                to,
                from: m.from.clone(),
                status,
                segments: m.segments,
                encoding: analysis.encoding,
                price,
                scheduled_at,
            });
            messages.push(m);
        }
    }
    if let Some(i) = crate::compliance::first_opted_out(ctx.db.as_ref(), &tenant.id, &messages).await? {
        return Err(SendError::OptedOut {
            message: format!(
                "{} opted out of your messages (they texted STOP, or were imported as opted out)",
                messages[i].to
            ),
            field: fields[i].clone(),
        });
    }
    if mode == KeyMode::Live {
        let quota = tenant.settings.quotas.resolve(&ctx.limits).sends_per_day;
        let sent = ctx.runtime.usage.sends_today(ctx.db.as_ref(), &tenant.id, now).await?;
        if sent + messages.len() as i64 > quota {
            return Err(SendError::DailyQuotaExceeded { quota });
        }
    }
    Ok(Prepared { messages, queued, batch_id })
}

/// Commits prepared messages (with their debit and the idempotency
/// record) and hands the ones due now to the dispatcher. `Ok(None)` means
/// the idempotency key was already used: the caller returns the stored
/// answer.
pub async fn commit(
    ctx: &Context,
    tenant_id: &str,
    prepared: &Prepared,
    idempotency: Option<IdempotencyRecord>,
) -> Result<Option<()>, SendError> {
    let request = OutboundRequest {
        tenant_id: tenant_id.to_string(),
        messages: prepared.messages.clone(),
        idempotency,
        lease: ctx.pipeline.lease(&ctx.clock),
    };
    match ctx.pipeline.writer.outbound(request).await? {
        OutboundResult::Accepted { due_now } => {
            let live = prepared.messages.iter().filter(|m| m.mode == "live").count();
            ctx.runtime.usage.admitted_sends(tenant_id, live as i64);
            for item in due_now {
                ctx.pipeline.enqueue_send(item);
            }
            if prepared.messages.iter().any(|m| m.scheduled_at.is_some()) {
                ctx.pipeline.sweeper.now();
            }
            Ok(Some(()))
        }
        OutboundResult::InsufficientBalance { balance, needed } => {
            Err(SendError::InsufficientBalance { balance, needed })
        }
        OutboundResult::Duplicate => Ok(None),
    }
}

/// The profile of `tenant_id` from the directory.
pub fn tenant(ctx: &Context, tenant_id: &str) -> Option<Arc<TenantProfile>> {
    ctx.directory.snapshot().tenants.get(tenant_id).cloned()
}
