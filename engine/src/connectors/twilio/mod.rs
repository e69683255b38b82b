//! Twilio Programmable Messaging.
//!
//! Sends with `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! (form-encoded, HTTP basic auth with the account SID and auth token),
//! asking for status callbacks at `<public_base_url>/v1/status/{name}`.
//! Inbound messages and status callbacks are verified with
//! `X-Twilio-Signature`: base64 HMAC-SHA1, keyed by the auth token, over the
//! URL Twilio called followed by every POST parameter's name and value in
//! sorted order; for JSON bodies the URL carries `bodySHA256` and only the
//! URL is signed. Proxies add or drop the default port, so the URL is tried
//! both ways. Inbound webhooks are answered with empty TwiML.

pub mod twiml;
pub mod wire;

use super::gate::GateSettings;
use super::http::request_error;
use super::{
    Accepted, Connector, ConnectorError, Context, OutboundSms, ProviderReport, WebhookError, WebhookEvent, WebhookKind,
    WebhookReply, WebhookRequest, classify_http, form_pairs, form_value, retry_after,
};
use crate::connectors::InboundSms;
use crate::secrets::{self, Secret};
use crate::store::MessageStatus;
use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Secret,
    /// Send through a Messaging Service instead of the `From` number.
    pub messaging_service_sid: Option<String>,
    /// The API's base URL (tests point it at a mock).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub gate: GateSettings,
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

pub struct Twilio {
    name: String,
    settings: TwilioSettings,
    ctx: Context,
}

impl Twilio {
    pub fn new(name: String, settings: TwilioSettings, ctx: Context) -> Result<Self, String> {
        if !settings.account_sid.starts_with("AC") {
            return Err("account_sid must start with AC".into());
        }
        crate::net::parse_http_url(&settings.base_url).map_err(|e| e.to_string())?;
        Ok(Twilio { name, settings, ctx })
    }

    fn verify(&self, req: &WebhookRequest<'_>) -> Result<Vec<(String, String)>, WebhookError> {
        let presented =
            req.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).ok_or(WebhookError::BadSignature)?;
        let is_json = req.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
        let (signed, params) = if is_json {
            // The body is covered by its hash in the signed URL.
            let claimed = form_pairs(req.query.as_bytes())
                .into_iter()
                .find(|(k, _)| k == "bodySHA256")
                .map(|(_, v)| v)
                .ok_or(WebhookError::BadSignature)?;
            let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(req.body));
            if !secrets::constant_time_eq(actual.as_bytes(), claimed.to_ascii_lowercase().as_bytes()) {
                return Err(WebhookError::BadSignature);
            }
            let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(req.body).unwrap_or_default();
            let fields = doc
                .into_iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k, text)
                })
                .collect();
            (Vec::new(), fields)
        } else {
            let pairs = form_pairs(req.body);
            (pairs.clone(), pairs)
        };
        let token = self.settings.auth_token.expose();
        let valid = url_variants(req.url)
            .iter()
            .any(|url| secrets::constant_time_eq(signature(token, url, &signed).as_bytes(), presented.as_bytes()));
        if valid { Ok(params) } else { Err(WebhookError::BadSignature) }
    }
}

/// `X-Twilio-Signature` for a request to `url` with form `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL as given, and with its default port added or removed.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else { return out };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let (authority, tail) = rest.find(['/', '?']).map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
    match authority.rsplit_once(':') {
        Some((host, port)) if port == default_port => out.push(format!("{scheme}://{host}{tail}")),
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    out
}

/// Twilio's error code → ours.
fn our_code(twilio_code: i64) -> &'static str {
    match twilio_code {
        21211 | 21214 | 21217 | 21401 | 21421 | 21614 => "INVALID_NUMBER",
        21610 => "RECIPIENT_OPTED_OUT",
        21212 | 21606 | 21659 | 21660 => "INVALID_SENDER",
        20003 | 20005 => "AUTH_FAILED",
        21408 | 21612 => "DESTINATION_NOT_ALLOWED",
        21602 | 21617 => "INVALID_MESSAGE",
        _ => "CARRIER_REJECTED",
    }
}

fn status_of(twilio: &str) -> Option<MessageStatus> {
    Some(match twilio {
        "sent" => MessageStatus::Sent,
        "delivered" | "read" => MessageStatus::Delivered,
        "undelivered" => MessageStatus::Undelivered,
        "failed" => MessageStatus::Failed,
        "canceled" => MessageStatus::Cancelled,
        _ => return None, // queued, accepted, scheduled, sending, receiving, received
    })
}

fn required(params: &[(String, String)], name: &str) -> Result<String, WebhookError> {
    form_value(params, name).map(str::to_string).ok_or_else(|| WebhookError::Invalid {
        code: "INVALID_FIELD",
        message: format!("missing parameter {name}"),
        field: Some(name.to_string()),
    })
}

#[async_trait]
impl Connector for Twilio {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
        let s = &self.settings;
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", s.base_url.trim_end_matches('/'), s.account_sid);
        let mut form: Vec<(&str, String)> = vec![("To", sms.to.clone()), ("Body", sms.body.clone())];
        match &s.messaging_service_sid {
            Some(service) => form.push(("MessagingServiceSid", service.clone())),
            None => form.push(("From", sms.from.clone())),
        }
        if let Some(base) = &self.ctx.public_base_url {
            form.push(("StatusCallback", format!("{}/v1/status/{}", base.trim_end_matches('/'), self.name)));
        }
        let response = self
            .ctx
            .http
            .post(url)
            .basic_auth(&s.account_sid, Some(s.auth_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::transient(request_error(&e)))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let sid = answer["sid"].as_str().ok_or_else(|| ConnectorError::transient("Twilio's answer has no sid"))?;
            return Ok(Accepted { provider_ids: vec![sid.to_string()] });
        }
        let code = answer["code"].as_i64().unwrap_or(0);
        let message = format!("twilio {code}: {}", answer["message"].as_str().unwrap_or("no message"));
        Err(classify_http(status, wait, our_code(code).to_string(), message))
    }

    fn webhook(
        &self,
        kind: WebhookKind,
        req: &WebhookRequest<'_>,
    ) -> Result<(WebhookEvent, WebhookReply), WebhookError> {
        let params = self.verify(req)?;
        match kind {
            WebhookKind::Inbound => {
                let sms = InboundSms {
                    from: required(&params, "From")?,
                    to: required(&params, "To")?,
                    body: form_value(&params, "Body").unwrap_or_default().to_string(),
                    connector: self.name.clone(),
                    provider_id: form_value(&params, "MessageSid").map(str::to_string),
                };
                Ok((WebhookEvent::Inbound(sms), WebhookReply { content_type: "text/xml", body: EMPTY_TWIML.into() }))
            }
            WebhookKind::Status => {
                let sid = required(&params, "MessageSid")?;
                let raw = required(&params, "MessageStatus")?;
                let event = match status_of(&raw) {
                    None => WebhookEvent::Ignored,
                    Some(status) => WebhookEvent::Status(ProviderReport {
                        connector: self.name.clone(),
                        provider_id: sid,
                        status,
                        error_code: form_value(&params, "ErrorCode").filter(|c| !c.is_empty()).map(str::to_string),
                        at: self.ctx.clock.now_ms(),
                    }),
                };
                Ok((event, WebhookReply::empty()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
