//! Twilio's vocabulary, shared by the connector and the Twilio-compatible
//! API: account SIDs and auth tokens, message SIDs, status names, error
//! codes, dates (RFC 2822) and the status callback's form fields.

use crate::clock::Millis;
use crate::store::MessageStatus;

pub const API_VERSION: &str = "2010-04-01";

/// `AC` and 32 hex digits.
pub fn new_account_sid() -> String {
    format!("AC{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// 32 hex digits (128 random bits), the shape of Twilio's auth tokens.
pub fn new_auth_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn is_account_sid(s: &str) -> bool {
    is_sid(s, "AC")
}

/// A message's SID: our id `msg_<32 hex>` becomes `SM<32 hex>`.
pub fn message_sid(id: &str) -> String {
    match id.strip_prefix("msg_") {
        Some(hex) if hex.len() == 32 => format!("SM{hex}"),
        _ => id.to_string(),
    }
}

/// Our message id for a SID (`SM` or `MM` and 32 hex digits).
pub fn message_id(sid: &str) -> Option<String> {
    (is_sid(sid, "SM") || is_sid(sid, "MM")).then(|| format!("msg_{}", sid[2..].to_ascii_lowercase()))
}

/// The status Twilio would show for ours.
pub fn status(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Received => "received",
        MessageStatus::Queued => "queued",
        MessageStatus::Scheduled => "scheduled",
        MessageStatus::Sending => "sending",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Undelivered => "undelivered",
        MessageStatus::Failed | MessageStatus::Expired => "failed",
        MessageStatus::Cancelled => "canceled",
    }
}

/// Twilio's error code for a message's error: a carrier's numeric code as
/// it is, an expired message or one whose validity period ended
/// (`VALIDITY_EXPIRED`) 30036, anything else 30008 (unknown error).
pub fn error_code(status: MessageStatus, ours: Option<&str>) -> Option<i64> {
    if status == MessageStatus::Expired {
        return Some(30036);
    }
    let code = ours?;
    if code == "VALIDITY_EXPIRED" {
        return Some(30036);
    }
    Some(code.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or(30008))
}

/// `Tue, 01 Dec 2026 09:00:00 +0000`, as Twilio writes dates.
pub fn rfc2822(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// The form fields of a status callback, as Twilio posts them.
pub fn status_callback(
    account_sid: &str,
    message_id: &str,
    status: MessageStatus,
    error_code: Option<&str>,
    from: &str,
    to: &str,
) -> Vec<(String, String)> {
    let sid = message_sid(message_id);
    let status = self::status(status);
    let mut fields = vec![
        ("AccountSid".to_string(), account_sid.to_string()),
        ("ApiVersion".to_string(), API_VERSION.to_string()),
        ("From".to_string(), from.to_string()),
        ("MessageSid".to_string(), sid.clone()),
        ("MessageStatus".to_string(), status.to_string()),
        ("SmsSid".to_string(), sid),
        ("SmsStatus".to_string(), status.to_string()),
        ("To".to_string(), to.to_string()),
    ];
    if let Some(code) = error_code.and_then(|c| self::error_code(MessageStatus::Failed, Some(c))) {
        fields.push(("ErrorCode".to_string(), code.to_string()));
    }
    fields
}

/// The form fields of an inbound message as Twilio posts it to a number's
/// webhook app (`SmsUrl`).
pub fn inbound_request(
    account_sid: &str,
    message_id: &str,
    from: &str,
    to: &str,
    body: &str,
    segments: u32,
) -> Vec<(String, String)> {
    let sid = message_sid(message_id);
    [
        ("AccountSid", account_sid),
        ("ApiVersion", API_VERSION),
        ("Body", body),
        ("From", from),
        ("MessageSid", &sid),
        ("NumMedia", "0"),
        ("NumSegments", &segments.to_string()),
        ("SmsMessageSid", &sid),
        ("SmsSid", &sid),
        ("SmsStatus", "received"),
        ("To", to),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_and_ids_map_both_ways() {
        let id = "msg_0193a1b2c3d4e5f60718293a4b5c6d7e";
        let sid = message_sid(id);
        assert_eq!(sid, "SM0193a1b2c3d4e5f60718293a4b5c6d7e");
        assert_eq!(message_id(&sid).as_deref(), Some(id));
        assert_eq!(message_id("SMnothex"), None);
        assert_eq!(message_id("AC0193a1b2c3d4e5f60718293a4b5c6d7e"), None);
        assert!(is_account_sid(&new_account_sid()));
        assert_eq!(new_auth_token().len(), 32);
    }

    #[test]
    fn dates_are_rfc_2822_in_utc() {
        assert_eq!(rfc2822(1_764_579_600_000), "Mon, 01 Dec 2025 09:00:00 +0000");
    }

    #[test]
    fn error_codes_are_numbers() {
        assert_eq!(error_code(MessageStatus::Failed, Some("30003")), Some(30003));
        assert_eq!(error_code(MessageStatus::Failed, Some("REJECTED")), Some(30008));
        assert_eq!(error_code(MessageStatus::Expired, None), Some(30036));
        assert_eq!(error_code(MessageStatus::Failed, Some("VALIDITY_EXPIRED")), Some(30036));
        assert_eq!(error_code(MessageStatus::Delivered, None), None);
    }
}
