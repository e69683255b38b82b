//! Signed status webhooks: each status change of a message with a webhook
//! URL (its own, or its tenant's) is a durable delivery row, POSTed with
//! `X-Switchboard-Signature` (or, for a message sent through the
//! Twilio-compatible API with a `StatusCallback`, as Twilio's form with
//! `X-Twilio-Signature`) and retried with exponential backoff and jitter
//! until a 2xx or until the retry window (24 h by default) closes.

use super::Context;
use crate::clock::Millis;
use crate::connectors::twilio;
use crate::net;
use crate::secrets;
use crate::store::{MessageStatus, WebhookAttempt, WebhookDelivery};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
const CLAIM_BATCH: u32 = 128;
const POLL: Duration = Duration::from_secs(5);

pub async fn run(ctx: Arc<Context>) {
    // Connects only to the addresses its resolver vetted (see `net`).
    let allow_private = ctx.webhooks_allow_private_addresses;
    let http = net::guarded_client(ctx.dns.resolver(allow_private))
        .timeout(Duration::from_millis(ctx.limits.webhook_timeout_ms))
        .build()
        .expect("HTTP client");
    let permits = Arc::new(Semaphore::new(64));
    loop {
        let now = ctx.clock.now_ms();
        // What is due is read first, on a reader: the claim is a write on
        // the one writer connection, and most wake-ups (every message that
        // reached the carrier wakes this loop) find nothing due, since most
        // tenants have no webhook URL.
        let due = ctx.db.next_webhook_due().await;
        let claim_now = match &due {
            Ok(Some(t)) => *t <= now,
            Ok(None) => false,
            Err(_) => true,
        };
        let mut next = now + POLL.as_millis() as i64;
        if claim_now {
            if deliver_due(&ctx, &http, &permits, now).await {
                continue;
            }
            if let Ok(Some(t)) = ctx.db.next_webhook_due().await {
                next = next.min(t);
            }
        } else if let Ok(Some(t)) = due {
            next = next.min(t);
        }
        ctx.pipeline.webhooks.sleep_until(&ctx.clock, next.max(now + 1)).await;
    }
}

/// Claims the deliveries due at `now` (a batch), attempts them and records
/// the attempts. True when the batch was full: more may be due.
async fn deliver_due(ctx: &Arc<Context>, http: &reqwest::Client, permits: &Arc<Semaphore>, now: Millis) -> bool {
    let claimed = match ctx.db.claim_webhooks(&ctx.pipeline.lease(&ctx.clock), now, CLAIM_BATCH).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "could not claim webhooks");
            Vec::new()
        }
    };
    let full = claimed.len() == CLAIM_BATCH as usize;
    let secrets = tenant_secrets(ctx, &claimed).await;
    let mut running = Vec::with_capacity(claimed.len());
    for delivery in claimed {
        let secret = secrets.get(&delivery.tenant_id).cloned().flatten();
        let (ctx, http, permit) = (ctx.clone(), http.clone(), permits.clone().acquire_owned().await);
        running.push(tokio::spawn(async move {
            let attempt = deliver(&ctx, &http, &delivery, secret.as_deref()).await;
            drop(permit);
            attempt
        }));
    }
    let mut attempts = Vec::with_capacity(running.len());
    for r in running {
        if let Ok(a) = r.await {
            attempts.push(a);
        }
    }
    if !attempts.is_empty()
        && let Err(e) = ctx.db.record_webhook_attempts(&attempts).await
    {
        // The leases lapse and the deliveries are attempted again.
        tracing::error!(error = %e, "could not record webhook attempts");
    }
    full
}

/// Each tenant's signing secret, opened once per batch.
async fn tenant_secrets(ctx: &Context, deliveries: &[WebhookDelivery]) -> HashMap<String, Option<String>> {
    let mut out = HashMap::new();
    for d in deliveries {
        if out.contains_key(&d.tenant_id) {
            continue;
        }
        let secret = match ctx.db.account(&d.tenant_id).await {
            Ok(Some(a)) => a.webhook_secret.and_then(|s| ctx.sealer.open(&s)).and_then(|s| String::from_utf8(s).ok()),
            _ => None,
        };
        out.insert(d.tenant_id.clone(), secret);
    }
    out
}

/// A Twilio-style account's auth token, opened from the directory.
fn twilio_token(ctx: &Context, account_sid: &str) -> Option<String> {
    let snapshot = ctx.directory.snapshot();
    let hash = snapshot.twilio_accounts.get(account_sid)?;
    let sealed = &snapshot.api_keys.get(hash)?.twilio.as_ref()?.sealed_token;
    ctx.sealer.open(sealed).and_then(|t| String::from_utf8(t).ok())
}

/// The body, content type and signature header of a delivery: ours (JSON,
/// `X-Switchboard-Signature`), or for a message sent through the
/// Twilio-compatible API with its own `StatusCallback`, Twilio's (a form,
/// `X-Twilio-Signature` made with the account's auth token).
fn signed_request(
    ctx: &Context,
    d: &WebhookDelivery,
    secret: Option<&str>,
    at: i64,
) -> Result<(String, &'static str, &'static str, String), String> {
    let Some(account_sid) = &d.account_sid else {
        let secret = secret.ok_or("the tenant has no webhook signing secret")?;
        let signature = secrets::webhook_signature(secret, at / 1000, d.payload.as_bytes());
        return Ok((d.payload.clone(), "application/json", SIGNATURE_HEADER, signature));
    };
    let token = twilio_token(ctx, account_sid).ok_or("the Twilio-style credential was revoked")?;
    let payload: serde_json::Value = serde_json::from_str(&d.payload).map_err(|e| format!("corrupt payload: {e}"))?;
    let text = |k: &str| payload[k].as_str().unwrap_or_default().to_string();
    let status = MessageStatus::parse(&text("status")).ok_or("corrupt payload: status")?;
    let fields = twilio::wire::status_callback(
        account_sid,
        &text("id"),
        status,
        payload["error_code"].as_str(),
        &text("from"),
        &text("to"),
    );
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&fields).finish();
    let signature = twilio::signature(&token, &d.url, &fields);
    Ok((body, "application/x-www-form-urlencoded", twilio::SIGNATURE_HEADER, signature))
}

async fn deliver(ctx: &Context, http: &reqwest::Client, d: &WebhookDelivery, secret: Option<&str>) -> WebhookAttempt {
    // In the message's trace; the request carries this span's context on.
    let span = crate::telemetry::resume(d.trace_context.as_deref(), || {
        tracing::info_span!(
            "webhook.deliver",
            otel.kind = "client",
            http.request.method = "POST",
            messaging.message.id = %d.message_id,
            switchboard.attempt = d.attempts + 1,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    });
    let attempt = attempt_delivery(ctx, http, d, secret).instrument(span.clone()).await;
    match (attempt.status_code, &attempt.error) {
        (Some(code), _) => span.record("http.response.status_code", code),
        (None, Some(_)) => span.record("error.type", "request_failed"),
        (None, None) => &span,
    };
    attempt
}

async fn attempt_delivery(
    ctx: &Context,
    http: &reqwest::Client,
    d: &WebhookDelivery,
    secret: Option<&str>,
) -> WebhookAttempt {
    let started = Instant::now();
    let at = ctx.clock.now_ms();
    let outcome: Result<u16, String> = async {
        let url = net::parse_http_url(&d.url).map_err(|e| e.to_string())?;
        net::check_literal(&url, ctx.webhooks_allow_private_addresses).map_err(|e| e.to_string())?;
        let (body, content_type, signature_header, signature) = signed_request(ctx, d, secret, at)?;
        let mut request = http.post(url);
        // This span's context, or in an unsampled trace the stored one.
        if let Some(traceparent) = crate::telemetry::current().or_else(|| d.trace_context.clone()) {
            request = request.header(crate::telemetry::TRACEPARENT, traceparent);
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(signature_header, signature)
            .header("user-agent", concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .send()
            .await
            .map_err(|e| match net::refused_by_resolver(&e) {
                Some(refused) => refused,
                None if e.is_timeout() => "timed out".to_string(),
                None => format!("request failed: {}", e.without_url()),
            })?;
        Ok(response.status().as_u16())
    }
    .await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status_code, error) = match &outcome {
        Ok(code) => (Some(*code), None),
        Err(e) => (None, Some(e.clone())),
    };
    let delivered = matches!(status_code, Some(200..=299));
    let retry_at = if delivered {
        None
    } else {
        let limits = &ctx.limits;
        let exp = limits.webhook_retry_base_ms.saturating_mul(1u64 << d.attempts.min(20)).min(3_600_000);
        let jitter = rand::random_range(0..=exp / 4 + 1);
        let next = at + (exp + jitter) as i64;
        (next - d.created_at <= limits.webhook_retry_window_s as i64 * 1000).then_some(next)
    };
    ctx.metrics.webhook_attempt(match (delivered, retry_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "retry",
        (false, None) => "failed",
    });
    if !delivered {
        tracing::info!(delivery = %d.id, status = ?status_code, error = ?error, retry = retry_at.is_some(), "webhook not accepted");
    }
    WebhookAttempt { delivery_id: d.id.clone(), at, status_code, error, duration_ms, retry_at, delivered }
}
