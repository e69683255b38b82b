//! A generic HTTP/JSON gateway: the common shape most REST SMS gateways
//! share. Sends `POST {url}` with `{"to", "from", "message"}` (field names
//! configurable), authenticated with a bearer token, basic auth or a
//! header, and reads the gateway's id from its JSON answer. Inbound and
//! status webhooks are JSON; when a `webhook_secret` is set they must carry
//! `X-SMS-Signature: <hex HMAC-SHA256(secret, raw body)>`.
//!
//! Our message id goes out as `Idempotency-Key`, so a gateway that honours
//! it drops the repeat of a send interrupted by a crash.

use super::gate::GateSettings;
use super::{
    Accepted, Connector, ConnectorError, Context, OutboundSms, ProviderReport, WebhookError, WebhookEvent, WebhookKind,
    WebhookReply, WebhookRequest, classify_http, retry_after,
};
use crate::connectors::InboundSms;
use crate::secrets::{self, Secret};
use crate::store::MessageStatus;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

pub const SIGNATURE_HEADER: &str = "x-sms-signature";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Where messages are POSTed (none: the connector only receives).
    pub url: Option<String>,
    #[serde(default)]
    pub auth: HttpAuth,
    #[serde(default)]
    pub fields: Fields,
    /// JSON pointer to the gateway's id in its answer.
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer to an error code in error answers.
    #[serde(default = "default_error_pointer")]
    pub error_code_pointer: String,
    /// Signs webhooks: unsigned or wrongly signed ones are refused.
    pub webhook_secret: Option<Secret>,
    /// Gateway status names → ours, on top of the usual ones.
    #[serde(default)]
    pub statuses: HashMap<String, String>,
    #[serde(default)]
    pub gate: GateSettings,
}

fn default_id_pointer() -> String {
    "/id".into()
}

fn default_error_pointer() -> String {
    "/error/code".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum HttpAuth {
    #[default]
    None,
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    Header {
        name: String,
        value: Secret,
    },
}

/// JSON field names, outbound and in webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fields {
    pub to: String,
    pub from: String,
    pub message: String,
    /// Also send our message id under this name.
    pub reference: Option<String>,
    /// The gateway's message id in webhooks.
    pub id: String,
    pub status: String,
    pub error_code: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            to: "to".into(),
            from: "from".into(),
            message: "message".into(),
            reference: None,
            id: "id".into(),
            status: "status".into(),
            error_code: "error_code".into(),
        }
    }
}

pub struct HttpGateway {
    name: String,
    settings: HttpSettings,
    /// `settings.url`, parsed once: parsing it for every send was ~3 % of
    /// the engine's CPU under load.
    url: Option<reqwest::Url>,
    ctx: Context,
    /// The built-in `generic` connector: takes unsigned inbound webhooks
    /// (for simulator numbers only; see `ingest`) and no reports.
    unsigned: bool,
}

impl HttpGateway {
    pub fn new(name: String, settings: HttpSettings, ctx: Context) -> Result<Self, String> {
        let url = match &settings.url {
            Some(url) => Some(crate::net::parse_http_url(url).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(HttpGateway { name, settings, url, ctx, unsigned: false })
    }

    /// This gateway as the built-in unsigned `generic` webhook.
    pub fn unsigned_generic(self) -> Self {
        HttpGateway { unsigned: true, ..self }
    }

    /// A configured gateway's webhooks must be signed: one without a
    /// `webhook_secret` takes none.
    fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        let Some(secret) = &self.settings.webhook_secret else {
            return if self.unsigned { Ok(()) } else { Err(WebhookError::BadSignature) };
        };
        let presented = req
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_start_matches("sha256="))
            .ok_or(WebhookError::BadSignature)?;
        let expected = signature(secret.expose(), req.body);
        if secrets::constant_time_eq(expected.as_bytes(), presented.to_ascii_lowercase().as_bytes()) {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    fn status(&self, raw: &str) -> Option<MessageStatus> {
        if let Some(ours) = self.settings.statuses.get(raw) {
            return MessageStatus::parse(ours);
        }
        Some(match raw.to_ascii_lowercase().as_str() {
            "delivered" | "delivrd" | "read" => MessageStatus::Delivered,
            "sent" | "accepted" | "acceptd" | "enroute" | "buffered" | "submitted" => MessageStatus::Sent,
            "undelivered" | "undeliv" | "undeliverable" => MessageStatus::Undelivered,
            "failed" | "rejected" | "rejectd" | "deleted" | "error" => MessageStatus::Failed,
            "expired" => MessageStatus::Expired,
            _ => return None,
        })
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`: the `X-SMS-Signature` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A required string field of a webhook document (ids may be numbers).
fn text_field(doc: &serde_json::Map<String, Value>, name: &str) -> Result<String, WebhookError> {
    id_field(doc, name, false)
}

fn id_field(doc: &serde_json::Map<String, Value>, name: &str, numbers_too: bool) -> Result<String, WebhookError> {
    match doc.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if numbers_too => Ok(n.to_string()),
        Some(_) => Err(WebhookError::Invalid {
            code: "INVALID_FIELD",
            message: format!("{name} must be a string"),
            field: Some(name.to_string()),
        }),
        None => Err(WebhookError::Invalid {
            code: "INVALID_FIELD",
            message: format!("missing field `{name}`"),
            field: Some(name.to_string()),
        }),
    }
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, WebhookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            Err(WebhookError::Invalid { code: "INVALID_FIELD", message: "expected a JSON object".into(), field: None })
        }
        Err(e) => {
            Err(WebhookError::Invalid { code: "INVALID_JSON", message: format!("invalid JSON: {e}"), field: None })
        }
    }
}

#[async_trait]
impl Connector for HttpGateway {
    fn name(&self) -> &str {
        &self.name
    }

    fn deduplicates_resends(&self) -> bool {
        true
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
        let Some(url) = &self.url else {
            return Err(ConnectorError::Permanent {
                code: "CONNECTOR_RECEIVE_ONLY".into(),
                message: format!("connector {} has no url to send to", self.name),
            });
        };
        let f = &self.settings.fields;
        let mut body = serde_json::Map::new();
        body.insert(f.to.clone(), Value::String(sms.to.clone()));
        body.insert(f.from.clone(), Value::String(sms.from.clone()));
        body.insert(f.message.clone(), Value::String(sms.body.clone()));
        if let Some(r) = &f.reference {
            body.insert(r.clone(), Value::String(sms.message_id.clone()));
        }
        let mut request = self.ctx.http.post(url.clone()).header("idempotency-key", &sms.message_id).json(&body);
        request = match &self.settings.auth {
            HttpAuth::None => request,
            HttpAuth::Bearer(token) => request.bearer_auth(token.expose()),
            HttpAuth::Basic { username, password } => request.basic_auth(username, Some(password.expose())),
            HttpAuth::Header { name, value } => request.header(name.as_str(), value.expose()),
        };
        let response = request.send().await.map_err(|e| ConnectorError::transient(request_error(&e)))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let code = answer
                .pointer(&self.settings.error_code_pointer)
                .or_else(|| answer.pointer("/code"))
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
                .unwrap_or_else(|| format!("HTTP_{status}"));
            let message = answer
                .pointer("/error/message")
                .or_else(|| answer.pointer("/message"))
                .and_then(Value::as_str)
                .unwrap_or("no error message")
                .to_string();
            return Err(classify_http(status, wait, code, format!("gateway answered {status}: {message}")));
        }
        let id =
            answer.pointer(&self.settings.id_pointer).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        let id = id.unwrap_or_else(|| {
            tracing::warn!(connector = %self.name, "gateway answer has no id; reports will need our message id");
            sms.message_id.clone()
        });
        Ok(Accepted { provider_ids: vec![id] })
    }

    fn webhook(
        &self,
        kind: WebhookKind,
        req: &WebhookRequest<'_>,
    ) -> Result<(WebhookEvent, WebhookReply), WebhookError> {
        if let Some(ct) = req.headers.get("content-type").and_then(|v| v.to_str().ok())
            && !ct.contains("json")
        {
            return Err(WebhookError::Invalid {
                code: "UNSUPPORTED_MEDIA_TYPE",
                message: "send a JSON body with content-type: application/json".into(),
                field: None,
            });
        }
        if self.unsigned && kind == WebhookKind::Status {
            return Err(WebhookError::NotSupported(kind));
        }
        self.verify(req)?;
        let doc = json_object(req.body)?;
        let f = &self.settings.fields;
        let event = match kind {
            WebhookKind::Inbound => WebhookEvent::Inbound(InboundSms {
                from: text_field(&doc, &f.from)?,
                to: text_field(&doc, &f.to)?,
                body: text_field(&doc, &f.message)?,
                connector: self.name.clone(),
                provider_id: id_field(&doc, &f.id, true).ok(),
            }),
            WebhookKind::Status => {
                let raw = text_field(&doc, &f.status)?;
                let status = self.status(&raw).ok_or_else(|| WebhookError::Invalid {
                    code: "INVALID_FIELD",
                    message: format!("unknown status {raw:?} (map it under `statuses`)"),
                    field: Some(f.status.clone()),
                })?;
                WebhookEvent::Status(ProviderReport {
                    connector: self.name.clone(),
                    provider_id: id_field(&doc, &f.id, true)?,
                    status,
                    error_code: text_field(&doc, &f.error_code).ok().filter(|c| !c.is_empty()),
                    at: self.ctx.clock.now_ms(),
                })
            }
        };
        Ok((event, WebhookReply::empty()))
    }
}

/// A transport error described without the URL's query (which could carry
/// credentials).
pub fn request_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let host = e.url().and_then(|u| u.host_str()).unwrap_or("carrier");
    format!("{kind} ({host})")
}

#[cfg(test)]
mod tests;
