//! Vonage (formerly Nexmo) SMS API.
//!
//! Sends with `POST /sms/json` (form-encoded): credentials as `api_key` and
//! `api_secret`, or, when only a signature secret is configured, a signed
//! request (`timestamp` and `sig`). Long texts come back as several
//! message ids, one per part; reports arrive per part. Inbound messages
//! (`msisdn`, `to`, `text`) and delivery receipts (`messageId`, `status`,
//! `err-code`) arrive as GET query, form or JSON; concatenated inbound
//! parts (`concat-ref`, `concat-total`, `concat-part`) are reassembled
//! before plugins see them. With a signature secret, webhooks must be
//! signed (`sig`) and recent (`timestamp` within five minutes).

use super::gate::GateSettings;
use super::http::request_error;
use super::{
    Accepted, Connector, ConnectorError, Context, InboundPart, OutboundSms, ProviderReport, WebhookError, WebhookEvent,
    WebhookKind, WebhookReply, WebhookRequest, classify_http, form_pairs, form_value, retry_after,
};
use crate::connectors::InboundSms;
use crate::secrets::{self, Secret};
use crate::sms::encoding::Encoding;
use crate::store::MessageStatus;
use async_trait::async_trait;
use serde::Deserialize;

/// How far a signed webhook's `timestamp` may be from now.
const SIGNATURE_WINDOW_S: i64 = 300;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageSettings {
    pub api_key: String,
    pub api_secret: Option<Secret>,
    /// Signs requests (when there is no api_secret) and verifies webhooks.
    pub signature_secret: Option<Secret>,
    #[serde(default)]
    pub signature_method: SignatureMethod,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Take webhooks without a signature. Off by default: without a
    /// `signature_secret`, webhooks are refused (anyone could post a STOP
    /// for a real recipient otherwise).
    #[serde(default)]
    pub unsigned_webhooks: bool,
    #[serde(default)]
    pub gate: GateSettings,
}

fn default_base_url() -> String {
    "https://rest.nexmo.com".into()
}

/// The signing algorithm chosen in the Vonage dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    #[default]
    Md5hash,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

pub struct Vonage {
    name: String,
    settings: VonageSettings,
    ctx: Context,
}

/// Vonage's signature over `params` (any `sig` among them is skipped):
/// `&name=value` pairs in name order, `&` and `=` in values replaced by
/// `_`; then MD5 of that plus the secret (`md5hash`, lower-case hex) or
/// its HMAC keyed by the secret (upper-case hex).
pub fn signature(method: SignatureMethod, secret: &str, params: &[(String, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort();
    let mut text = String::new();
    for (k, v) in sorted {
        text.push('&');
        text.push_str(k);
        text.push('=');
        text.push_str(&v.replace(['&', '='], "_"));
    }
    macro_rules! hmac_hex {
        ($d:ty) => {{
            let mut mac = Hmac::<$d>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(text.as_bytes());
            hex::encode_upper(mac.finalize().into_bytes())
        }};
    }
    match method {
        SignatureMethod::Md5hash => {
            use md5::Digest;
            hex::encode(md5::Md5::digest(format!("{text}{secret}").as_bytes()))
        }
        SignatureMethod::Md5 => hmac_hex!(md5::Md5),
        SignatureMethod::Sha1 => hmac_hex!(sha1::Sha1),
        SignatureMethod::Sha256 => hmac_hex!(sha2::Sha256),
        SignatureMethod::Sha512 => hmac_hex!(sha2::Sha512),
    }
}

/// Vonage's status code → ours (permanent ones).
fn our_code(status: &str) -> &'static str {
    match status {
        "2" | "3" | "22" | "23" => "INVALID_REQUEST",
        "4" | "8" | "11" | "14" | "32" => "AUTH_FAILED",
        "6" | "29" => "DESTINATION_NOT_ALLOWED",
        "7" => "RECIPIENT_BLOCKED",
        "9" => "CARRIER_QUOTA",
        "12" => "INVALID_MESSAGE",
        "15" => "INVALID_SENDER",
        "33" => "INVALID_NUMBER",
        _ => "CARRIER_REJECTED",
    }
}

fn status_of(vonage: &str) -> Option<MessageStatus> {
    Some(match vonage {
        "delivered" => MessageStatus::Delivered,
        "expired" => MessageStatus::Expired,
        "failed" | "rejected" => MessageStatus::Failed,
        _ => return None, // accepted, buffered, unknown
    })
}

/// Numbers go without `+`; alphanumeric senders as they are.
fn bare(number: &str) -> String {
    number.strip_prefix('+').unwrap_or(number).to_string()
}

fn plus(number: &str) -> String {
    if number.starts_with('+') { number.to_string() } else { format!("+{number}") }
}

impl Vonage {
    pub fn new(name: String, settings: VonageSettings, ctx: Context) -> Result<Self, String> {
        if settings.api_secret.is_none() && settings.signature_secret.is_none() {
            return Err("needs api_secret or signature_secret".into());
        }
        crate::net::parse_http_url(&settings.base_url).map_err(|e| e.to_string())?;
        Ok(Vonage { name, settings, ctx })
    }

    /// The webhook's parameters, from the query, a form or a JSON body.
    fn params(req: &WebhookRequest<'_>) -> Vec<(String, String)> {
        let mut params = form_pairs(req.query.as_bytes());
        let is_json = req.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
        if is_json {
            let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(req.body).unwrap_or_default();
            params.extend(doc.into_iter().map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k, text)
            }));
        } else if !req.body.is_empty() {
            params.extend(form_pairs(req.body));
        }
        params
    }

    fn verify(&self, params: &[(String, String)]) -> Result<(), WebhookError> {
        let Some(secret) = &self.settings.signature_secret else {
            return if self.settings.unsigned_webhooks { Ok(()) } else { Err(WebhookError::BadSignature) };
        };
        let sig = form_value(params, "sig").ok_or(WebhookError::BadSignature)?;
        let expected = signature(self.settings.signature_method, secret.expose(), params);
        if !secrets::constant_time_eq(expected.to_ascii_lowercase().as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
            return Err(WebhookError::BadSignature);
        }
        // A valid but old signature is a replay.
        let timestamp: i64 =
            form_value(params, "timestamp").and_then(|t| t.parse().ok()).ok_or(WebhookError::BadSignature)?;
        if (self.ctx.clock.now_ms() / 1000 - timestamp).abs() > SIGNATURE_WINDOW_S {
            return Err(WebhookError::BadSignature);
        }
        Ok(())
    }
}

fn required(params: &[(String, String)], name: &str) -> Result<String, WebhookError> {
    form_value(params, name).map(str::to_string).ok_or_else(|| WebhookError::Invalid {
        code: "INVALID_FIELD",
        message: format!("missing parameter {name}"),
        field: Some(name.to_string()),
    })
}

fn number_param(params: &[(String, String)], name: &str) -> Result<u8, WebhookError> {
    required(params, name)?.parse().map_err(|_| WebhookError::Invalid {
        code: "INVALID_FIELD",
        message: format!("{name} must be a small number"),
        field: Some(name.to_string()),
    })
}

#[async_trait]
impl Connector for Vonage {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
        let s = &self.settings;
        let mut form: Vec<(String, String)> = vec![
            ("api_key".into(), s.api_key.clone()),
            ("from".into(), bare(&sms.from)),
            ("to".into(), bare(&sms.to)),
            ("text".into(), sms.body.clone()),
            ("client-ref".into(), sms.message_id.clone()),
            ("status-report-req".into(), "1".into()),
        ];
        if sms.encoding == Encoding::Ucs2 {
            form.push(("type".into(), "unicode".into()));
        }
        if let Some(base) = &self.ctx.public_base_url {
            form.push(("callback".into(), format!("{}/v1/status/{}", base.trim_end_matches('/'), self.name)));
        }
        match (&s.api_secret, &s.signature_secret) {
            (Some(secret), _) => form.push(("api_secret".into(), secret.expose().to_string())),
            (None, Some(sig_secret)) => {
                form.push(("timestamp".into(), (self.ctx.clock.now_ms() / 1000).to_string()));
                let sig = signature(s.signature_method, sig_secret.expose(), &form);
                form.push(("sig".into(), sig));
            }
            (None, None) => unreachable!("checked at construction"),
        }
        let url = format!("{}/sms/json", s.base_url.trim_end_matches('/'));
        let response = self
            .ctx
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::transient(request_error(&e)))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(classify_http(status, wait, format!("HTTP_{status}"), format!("vonage answered {status}")));
        }
        let parts = answer["messages"].as_array().cloned().unwrap_or_default();
        if parts.is_empty() {
            return Err(ConnectorError::transient("Vonage's answer lists no messages"));
        }
        let mut ids = Vec::with_capacity(parts.len());
        for part in &parts {
            let code = part["status"].as_str().unwrap_or("5");
            if code != "0" {
                let message = format!("vonage {code}: {}", part["error-text"].as_str().unwrap_or("no error text"));
                return Err(match code {
                    "1" => ConnectorError::Throttled { message, retry_after: wait },
                    "5" | "10" => ConnectorError::Transient { message, retry_after: wait },
                    _ => ConnectorError::Permanent { code: our_code(code).to_string(), message },
                });
            }
            let id =
                part["message-id"].as_str().ok_or_else(|| ConnectorError::transient("a part has no message-id"))?;
            ids.push(id.to_string());
        }
        Ok(Accepted { provider_ids: ids })
    }

    fn webhook(
        &self,
        kind: WebhookKind,
        req: &WebhookRequest<'_>,
    ) -> Result<(WebhookEvent, WebhookReply), WebhookError> {
        let params = Self::params(req);
        self.verify(&params)?;
        let event = match kind {
            WebhookKind::Inbound => {
                let from = plus(&required(&params, "msisdn")?);
                let to = plus(&required(&params, "to")?);
                let text = form_value(&params, "text").unwrap_or_default().to_string();
                let provider_id = form_value(&params, "messageId").map(str::to_string);
                if form_value(&params, "concat") == Some("true") {
                    WebhookEvent::InboundPart(InboundPart {
                        from,
                        to,
                        reference: required(&params, "concat-ref")?,
                        total: number_param(&params, "concat-total")?,
                        part: number_param(&params, "concat-part")?,
                        text,
                        provider_id,
                    })
                } else {
                    WebhookEvent::Inbound(InboundSms {
                        from,
                        to,
                        body: text,
                        connector: self.name.clone(),
                        provider_id,
                    })
                }
            }
            WebhookKind::Status => {
                let id = required(&params, "messageId")?;
                match status_of(&required(&params, "status")?) {
                    None => WebhookEvent::Ignored,
                    Some(status) => WebhookEvent::Status(ProviderReport {
                        connector: self.name.clone(),
                        provider_id: id,
                        status,
                        error_code: form_value(&params, "err-code")
                            .filter(|c| !c.is_empty() && *c != "0")
                            .map(str::to_string),
                        at: self.ctx.clock.now_ms(),
                    }),
                }
            }
        };
        Ok((event, WebhookReply::empty()))
    }
}

#[cfg(test)]
mod tests;
