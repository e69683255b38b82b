//! Twilio's message resource, made from one of our messages.

use crate::billing::format_amount;
use crate::connectors::twilio::wire;
use crate::store::{MessageStatus, MessageView};
use serde::Serialize;

#[derive(Serialize)]
pub struct SubresourceUris {
    media: String,
    feedback: String,
}

/// `api.v2010.account.message`: every field Twilio's document lists.
#[derive(Serialize)]
pub struct MessageResource {
    pub account_sid: String,
    pub api_version: &'static str,
    pub body: String,
    pub date_created: String,
    pub date_sent: Option<String>,
    pub date_updated: String,
    pub direction: &'static str,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub from: String,
    pub messaging_service_sid: Option<String>,
    pub num_media: &'static str,
    pub num_segments: String,
    pub price: Option<String>,
    pub price_unit: String,
    pub sid: String,
    pub status: &'static str,
    pub subresource_uris: SubresourceUris,
    pub to: String,
    pub uri: String,
}

/// The path of a message resource.
fn message_uri(account_sid: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json")
}

impl MessageResource {
    pub fn of(m: &MessageView, account_sid: &str, currency: &str) -> Self {
        let status = MessageStatus::parse(&m.status).unwrap_or(MessageStatus::Queued);
        let sid = wire::message_sid(&m.id);
        let inbound = m.direction == "inbound";
        let direction = match (inbound, m.in_reply_to.is_some() || m.plugin.is_some()) {
            (true, _) => "inbound",
            (false, true) => "outbound-reply",
            (false, false) => "outbound-api",
        };
        // When it left for the carrier (inbound: when it arrived).
        let sent_at = if inbound {
            Some(m.created_at)
        } else {
            m.history.iter().find(|h| matches!(h.status.as_str(), "sent" | "delivered" | "undelivered")).map(|h| h.at)
        };
        let error_code = wire::error_code(status, m.error_code.as_deref());
        let uri = message_uri(account_sid, &sid);
        MessageResource {
            account_sid: account_sid.to_string(),
            api_version: wire::API_VERSION,
            body: m.body.clone(),
            date_created: wire::rfc2822(m.created_at),
            date_sent: sent_at.map(wire::rfc2822),
            date_updated: wire::rfc2822(m.updated_at),
            direction,
            error_code,
            error_message: error_code.map(|_| m.error_code.clone().unwrap_or_else(|| m.status.clone())),
            from: m.from.clone(),
            messaging_service_sid: None,
            num_media: "0",
            num_segments: m.segments.to_string(),
            price: (m.price > 0).then(|| format!("-{}", format_amount(m.price))),
            price_unit: currency.to_string(),
            subresource_uris: SubresourceUris {
                media: uri.replace(".json", "/Media.json"),
                feedback: uri.replace(".json", "/Feedback.json"),
            },
            sid,
            status: wire::status(status),
            to: m.to.clone(),
            uri,
        }
    }
}
