//! A number's inbound webhook app (Twilio's `SmsUrl`): an inbound message
//! to the number is POSTed to the app as Twilio's form, signed with
//! `X-Twilio-Signature` under the tenant's Twilio-style credential, and the
//! `<Message>`s of the TwiML it answers are sent as replies, committed with
//! the event exactly as a plugin's sends are (same checks, same exactly-once
//! commit). A failed call (no answer, not 2xx, TwiML that cannot be read)
//! is retried like a failed plugin invocation, then dead-lettered.

use super::Context;
use super::worker::{Unrunnable, active_tenant, next_retry};
use crate::connectors::twilio::{self, twiml, wire};
use crate::net;
use crate::runtime::HostMessage;
use crate::runtime::InvocationContext;
use crate::secrets::KeyMode;
use crate::store::{Completion, Effects, EventRow, InvocationRecord};
use std::time::{Duration, Instant};

/// Calls the app for one inbound message; its replies are the effects.
pub(super) async fn attempt(
    ctx: &Context,
    event: &EventRow,
) -> Result<(Completion, Option<InvocationRecord>), Unrunnable> {
    let snapshot = ctx.directory.snapshot();
    let tenant = active_tenant(&snapshot, &event.tenant_id)?;
    let inbound: serde_json::Value =
        serde_json::from_str(&event.payload).map_err(|e| Unrunnable::Dead(format!("corrupt payload: {e}")))?;
    let text = |k: &str| inbound[k].as_str().unwrap_or_default().to_string();
    let (message_id, from, to, body) = (text("id"), text("from"), text("to"), text("body"));
    let url = tenant
        .sender(&to)
        .and_then(|s| s.sms_url.clone())
        .ok_or_else(|| Unrunnable::Dead(format!("{} no longer has an sms_url", crate::phone::Masked(&to))))?;
    // The tenant's Twilio-style credential signs the request (the first by
    // account SID when there are several, for the event's mode).
    let mode = if event.mode == "test" { "test" } else { "live" };
    let credential = snapshot
        .api_keys
        .values()
        .filter(|k| k.tenant_id == event.tenant_id && k.mode == mode)
        .filter_map(|k| k.twilio.as_ref())
        .min_by(|a, b| a.account_sid.cmp(&b.account_sid))
        .cloned()
        .ok_or_else(|| {
            Unrunnable::Dead(format!(
                "no {mode} Twilio-style credential signs requests to the sms_url: create one with \
                 `switchboard key create --twilio`"
            ))
        })?;
    let token = ctx
        .sealer
        .open(&credential.sealed_token)
        .and_then(|t| String::from_utf8(t).ok())
        .ok_or_else(|| Unrunnable::Dead("the credential's token cannot be opened with this node's key".into()))?;
    drop(snapshot);
    let segments = crate::sms::encoding::analyze(&body, crate::sms::encoding::EncodingChoice::Auto)
        .map_or(1, |a| a.segments as u32);
    let fields = wire::inbound_request(&credential.account_sid, &message_id, &from, &to, &body, segments);
    let started_at = ctx.clock.now_ms();
    let started = Instant::now();
    let answer = call(ctx, &url, &token, &fields).await;
    let duration_us = started.elapsed().as_micros() as i64;
    let record = |outcome: &'static str, error: Option<String>, logs| InvocationRecord {
        tenant_id: event.tenant_id.clone(),
        plugin_id: event.plugin_id.clone(),
        version_id: String::new(),
        event_id: event.id.clone(),
        trigger: "inbound",
        started_at,
        duration_us,
        fuel_used: 0,
        memory_peak: 0,
        outcome,
        error,
        logs,
        recording: None,
        canary: false,
    };
    let replies = match answer {
        Ok(replies) => replies,
        Err(error) => {
            tracing::warn!(event_id = %event.id, error = %error, "webhook app call failed");
            let completion = Completion::Failed { error: error.clone(), retry_at: next_retry(ctx, event) };
            return Ok((completion, Some(record("error", Some(error), Vec::new()))));
        }
    };
    let messages = replies
        .into_iter()
        .map(|r| HostMessage {
            to: r.to.unwrap_or_else(|| from.clone()),
            from: r.from.or(Some(to.clone())),
            body: r.body,
        })
        .collect();
    let invocation = InvocationContext {
        tenant,
        event_id: event.id.clone(),
        reply_to: Some((message_id, from.clone())),
        mode: if mode == "test" { KeyMode::Test } else { KeyMode::Live },
        tape: crate::runtime::tape::Tape::off(),
    };
    let (sends, refused) = ctx.runtime.host_sends(invocation, messages).await.map_err(Unrunnable::Retry)?;
    let logs = refused
        .into_iter()
        .map(|reason| crate::store::LogLine {
            level: "warn",
            message: format!("reply not sent: {reason}"),
            at: ctx.clock.now_ms(),
        })
        .collect();
    let effects = Effects { sends, ..Effects::default() };
    Ok((Completion::Succeeded(effects), Some(record("ok", None, logs))))
}

/// POSTs the inbound form to the app and reads the TwiML it answers.
async fn call(ctx: &Context, url: &str, token: &str, fields: &[(String, String)]) -> Result<Vec<twiml::Reply>, String> {
    let parsed = net::parse_http_url(url).map_err(|e| format!("sms_url: {e}"))?;
    net::check_literal(&parsed, ctx.webhooks_allow_private_addresses).map_err(|e| format!("sms_url: {e}"))?;
    // Connects only to the addresses its resolver vetted (see `net`).
    let http = ctx.apps_http.get_or_init(|| {
        net::guarded_client(ctx.dns.resolver(ctx.webhooks_allow_private_addresses))
            .timeout(Duration::from_millis(ctx.limits.webhook_timeout_ms))
            .build()
            .expect("HTTP client")
    });
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut response = http
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(twilio::SIGNATURE_HEADER, twilio::signature(token, url, fields))
        .header("user-agent", concat!("Switchboard-Apps/", env!("CARGO_PKG_VERSION")))
        .body(body)
        .send()
        .await
        .map_err(|e| match net::refused_by_resolver(&e) {
            Some(refused) => format!("sms_url: {refused}"),
            None if e.is_timeout() => "the sms_url timed out".to_string(),
            None => format!("the sms_url could not be reached: {}", e.without_url()),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the sms_url answered HTTP {}", status.as_u16()));
    }
    // Bounded before it is parsed.
    let mut xml = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the sms_url's answer: {e}"))? {
        if xml.len() + chunk.len() > twiml::MAX_TWIML_BYTES {
            return Err(format!("the sms_url's answer is over {} bytes", twiml::MAX_TWIML_BYTES));
        }
        xml.extend_from_slice(&chunk);
    }
    let xml = String::from_utf8(xml).map_err(|_| "the sms_url's answer is not UTF-8".to_string())?;
    twiml::replies(&xml)
}
