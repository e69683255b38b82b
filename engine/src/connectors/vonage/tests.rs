use super::*;
use crate::connectors::testing::*;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "a1b2c3d4";
const SECRET: &str = "vonage-api-secret-77";
const SIG_SECRET: &str = "vonage-sig-secret-42";

fn settings(base: &str, api_secret: bool) -> VonageSettings {
    VonageSettings {
        api_key: KEY.into(),
        api_secret: api_secret.then(|| Secret::new(SECRET)),
        signature_secret: Some(Secret::new(SIG_SECRET)),
        signature_method: SignatureMethod::Sha256,
        base_url: base.into(),
        unsigned_webhooks: false,
        gate: GateSettings::default(),
    }
}

fn connector(base: &str, api_secret: bool) -> Arc<dyn Connector> {
    Arc::new(Vonage::new("vg".into(), settings(base, api_secret), context(Some("https://sms.example.com"))).unwrap())
}

fn post(form: Vec<(&'static str, String)>) -> ExpectRequest {
    ExpectRequest {
        method: "POST",
        uri: "/sms/json".into(),
        headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
        form: Some(form),
        json: None,
    }
}

fn form(text: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("api_key", KEY.to_string()),
        ("api_secret", SECRET.to_string()),
        ("from", "15550000000".to_string()),
        ("to", "447911123456".to_string()),
        ("text", text.to_string()),
        ("client-ref", "msg_0001".to_string()),
        ("status-report-req", "1".to_string()),
        ("callback", "https://sms.example.com/v1/status/vg".to_string()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    f
}

#[test]
fn signatures_match_reference_values() {
    let params: Vec<(String, String)> = [
        ("api_key", "abc"),
        ("from", "ACME"),
        ("text", "Hi & bye=1"),
        ("timestamp", "1800000000"),
        ("to", "15551234567"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Computed independently with Python's hashlib/hmac.
    assert_eq!(signature(SignatureMethod::Md5hash, "sigsecret", &params), "69cd7309a770071abc0b2469cb322c93");
    assert_eq!(
        signature(SignatureMethod::Sha256, "sigsecret", &params),
        "DA791B03A13A05A7AA7FC493806FFC76EB717C4B5CFE2E6BC22F3E6A0CA5F87F"
    );
}

#[tokio::test]
async fn outgoing() {
    let long = "a".repeat(200);
    let cases = vec![
        OutgoingCase {
            label: "one part",
            sms: sms("+447911123456", "Hello"),
            replies: vec![Reply::json(
                200,
                r#"{"message-count":"1","messages":[{"to":"447911123456","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14","message-price":"0.03","network":"23410"}]}"#,
            )],
            requests: vec![post(form("Hello", &[]))],
            outcome: Ok(Accepted { provider_ids: vec!["0A0000000123ABCD1".into()] }),
        },
        OutgoingCase {
            label: "a long text comes back as two parts",
            sms: sms("+447911123456", &long),
            replies: vec![Reply::json(
                200,
                r#"{"message-count":"2","messages":[{"to":"447911123456","message-id":"0A01","status":"0"},{"to":"447911123456","message-id":"0A02","status":"0"}]}"#,
            )],
            requests: vec![post(form(&long, &[]))],
            outcome: Ok(Accepted { provider_ids: vec!["0A01".into(), "0A02".into()] }),
        },
        OutgoingCase {
            label: "unicode texts say so",
            sms: sms("+447911123456", "Привет"),
            replies: vec![Reply::json(200, r#"{"message-count":"1","messages":[{"message-id":"0A03","status":"0"}]}"#)],
            requests: vec![post(form("Привет", &[("type", "unicode")]))],
            outcome: Ok(Accepted { provider_ids: vec!["0A03".into()] }),
        },
        OutgoingCase {
            label: "throttled (status 1)",
            sms: sms("+447911123456", "Hello"),
            replies: vec![Reply::json(
                200,
                r#"{"message-count":"1","messages":[{"status":"1","error-text":"Throughput Rate Exceeded"}]}"#,
            )],
            requests: vec![post(form("Hello", &[]))],
            outcome: Err(ConnectorError::Throttled {
                message: "vonage 1: Throughput Rate Exceeded".into(),
                retry_after: None,
            }),
        },
        OutgoingCase {
            label: "invalid credentials (status 4) are permanent",
            sms: sms("+447911123456", "Hello"),
            replies: vec![Reply::json(
                200,
                r#"{"message-count":"1","messages":[{"status":"4","error-text":"Bad Credentials"}]}"#,
            )],
            requests: vec![post(form("Hello", &[]))],
            outcome: Err(ConnectorError::Permanent {
                code: "AUTH_FAILED".into(),
                message: "vonage 4: Bad Credentials".into(),
            }),
        },
        OutgoingCase {
            label: "an HTTP 500 is transient",
            sms: sms("+447911123456", "Hello"),
            replies: vec![Reply::json(500, "")],
            requests: vec![post(form("Hello", &[]))],
            outcome: Err(ConnectorError::Transient { message: "vonage answered 500".into(), retry_after: None }),
        },
    ];
    run_outgoing(cases, |base| connector(base, true), &[SECRET, SIG_SECRET]).await;

    // Without an api_secret, requests are signed.
    let timestamp = (NOW / 1000).to_string();
    let mut signed_form: Vec<(String, String)> = form("Hello", &[("timestamp", &timestamp)])
        .into_iter()
        .filter(|(k, _)| *k != "api_secret")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let sig = signature(SignatureMethod::Sha256, SIG_SECRET, &signed_form);
    signed_form.push(("sig".into(), sig));
    let expected: Vec<(&'static str, String)> =
        signed_form.into_iter().map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v)).collect();
    let signed = vec![OutgoingCase {
        label: "a signed request carries timestamp and sig, never the secret",
        sms: sms("+447911123456", "Hello"),
        replies: vec![Reply::json(200, r#"{"message-count":"1","messages":[{"message-id":"0A04","status":"0"}]}"#)],
        requests: vec![post(expected)],
        outcome: Ok(Accepted { provider_ids: vec!["0A04".into()] }),
    }];
    run_outgoing(signed, |base| connector(base, false), &[SIG_SECRET]).await;
}

/// A signed webhook query string.
fn signed_query(pairs: &[(&str, &str)], timestamp: i64) -> String {
    let mut params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    params.push(("timestamp".into(), timestamp.to_string()));
    let sig = signature(SignatureMethod::Sha256, SIG_SECRET, &params);
    params.push(("sig".into(), sig));
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn incoming() {
    let now_s = NOW / 1000;
    let inbound = [
        ("msisdn", "447700900001"),
        ("to", "15550000000"),
        ("messageId", "0B01"),
        ("text", "Hours?"),
        ("type", "text"),
    ];
    let part = [
        ("msisdn", "447700900001"),
        ("to", "15550000000"),
        ("messageId", "0B02"),
        ("text", "second half"),
        ("concat", "true"),
        ("concat-ref", "77"),
        ("concat-total", "2"),
        ("concat-part", "2"),
    ];
    let dlr =
        [("msisdn", "447911123456"), ("to", "ACME"), ("messageId", "0A02"), ("status", "delivered"), ("err-code", "0")];
    let failed = [("messageId", "0A03"), ("status", "rejected"), ("err-code", "6")];
    let buffered = [("messageId", "0A03"), ("status", "buffered"), ("err-code", "0")];
    let url = |path: &str, q: String| leak(format!("https://sms.example.com{path}?{q}"));
    let cases = vec![
        IncomingCase {
            label: "a signed inbound SMS (GET)",
            kind: WebhookKind::Inbound,
            url: url("/v1/inbound/vg", signed_query(&inbound, now_s)),
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Ok(WebhookEvent::Inbound(InboundSms {
                from: "+447700900001".into(),
                to: "+15550000000".into(),
                body: "Hours?".into(),
                connector: "vg".into(),
                provider_id: Some("0B01".into()),
            })),
            reply: Some(WebhookReply::empty()),
        },
        IncomingCase {
            label: "one part of a concatenated SMS",
            kind: WebhookKind::Inbound,
            url: url("/v1/inbound/vg", signed_query(&part, now_s)),
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Ok(WebhookEvent::InboundPart(InboundPart {
                from: "+447700900001".into(),
                to: "+15550000000".into(),
                reference: "77".into(),
                total: 2,
                part: 2,
                text: "second half".into(),
                provider_id: Some("0B02".into()),
            })),
            reply: None,
        },
        IncomingCase {
            label: "a delivery receipt (POST form)",
            kind: WebhookKind::Status,
            url: "https://sms.example.com/v1/status/vg",
            method: "POST",
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
            body: signed_query(&dlr, now_s),
            outcome: Ok(WebhookEvent::Status(ProviderReport {
                connector: "vg".into(),
                provider_id: "0A02".into(),
                status: MessageStatus::Delivered,
                error_code: None,
                at: NOW,
            })),
            reply: None,
        },
        IncomingCase {
            label: "a rejected message with its error code (JSON)",
            kind: WebhookKind::Status,
            url: "https://sms.example.com/v1/status/vg",
            method: "POST",
            headers: vec![("content-type", "application/json".into())],
            body: {
                let q = signed_query(&failed, now_s);
                let m: serde_json::Map<String, serde_json::Value> =
                    form_pairs(q.as_bytes()).into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                serde_json::Value::Object(m).to_string()
            },
            outcome: Ok(WebhookEvent::Status(ProviderReport {
                connector: "vg".into(),
                provider_id: "0A03".into(),
                status: MessageStatus::Failed,
                error_code: Some("6".into()),
                at: NOW,
            })),
            reply: None,
        },
        IncomingCase {
            label: "intermediate receipts are ignored",
            kind: WebhookKind::Status,
            url: url("/v1/status/vg", signed_query(&buffered, now_s)),
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Ok(WebhookEvent::Ignored),
            reply: None,
        },
        IncomingCase {
            label: "a wrong signature is refused",
            kind: WebhookKind::Inbound,
            url: url("/v1/inbound/vg", signed_query(&inbound, now_s).replace("Hours", "Free")),
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "an old signed request is a replay",
            kind: WebhookKind::Inbound,
            url: url("/v1/inbound/vg", signed_query(&inbound, now_s - 3600)),
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "an unsigned request is refused when a signature secret is set",
            kind: WebhookKind::Inbound,
            url: "https://sms.example.com/v1/inbound/vg?msisdn=447700900001&to=15550000000&text=hi",
            method: "GET",
            headers: vec![],
            body: String::new(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
    ];
    let c = connector("http://127.0.0.1:9", true);
    run_incoming(cases, c.as_ref(), &[SECRET, SIG_SECRET]);
    let _ = Duration::ZERO;
}
