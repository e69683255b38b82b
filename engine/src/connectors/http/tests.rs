use super::*;
use crate::connectors::testing::*;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "tok-secret-7f3a9";
const WEBHOOK_SECRET: &str = "whsec-generic-4c1d";

fn connector(base: &str, tweak: impl Fn(&mut HttpSettings)) -> Arc<dyn Connector> {
    let mut settings: HttpSettings = toml::from_str(&format!(
        "url = \"{base}/v1/sms\"\nauth = {{ bearer = \"{TOKEN}\" }}\nwebhook_secret = \"{WEBHOOK_SECRET}\""
    ))
    .unwrap();
    tweak(&mut settings);
    Arc::new(HttpGateway::new("gw".into(), settings, context(None)).unwrap())
}

fn post(json: serde_json::Value) -> ExpectRequest {
    ExpectRequest {
        method: "POST",
        uri: "/v1/sms".into(),
        headers: vec![
            ("authorization", format!("Bearer {TOKEN}")),
            ("idempotency-key", "msg_0001".into()),
            ("content-type", "application/json".into()),
        ],
        form: None,
        json: Some(json),
    }
}

#[tokio::test]
async fn outgoing() {
    let body = serde_json::json!({"to": "+15551234567", "from": "+15550000000", "message": "Hello"});
    let cases = vec![
        OutgoingCase {
            label: "accepted: the id comes from the answer",
            sms: sms("+15551234567", "Hello"),
            replies: vec![Reply::json(200, r#"{"id":"gw-1","status":"queued"}"#)],
            requests: vec![post(body.clone())],
            outcome: Ok(Accepted { provider_ids: vec!["gw-1".into()] }),
        },
        OutgoingCase {
            label: "a 400 with an error code is permanent",
            sms: sms("+15551234567", "Hello"),
            replies: vec![Reply::json(400, r#"{"error":{"code":"INVALID_NUMBER","message":"bad destination"}}"#)],
            requests: vec![post(body.clone())],
            outcome: Err(ConnectorError::Permanent {
                code: "INVALID_NUMBER".into(),
                message: "gateway answered 400: bad destination".into(),
            }),
        },
        OutgoingCase {
            label: "a 401 without a code is permanent with the HTTP status",
            sms: sms("+15551234567", "Hello"),
            replies: vec![Reply::json(401, "{}")],
            requests: vec![post(body.clone())],
            outcome: Err(ConnectorError::Permanent {
                code: "HTTP_401".into(),
                message: "gateway answered 401: no error message".into(),
            }),
        },
        OutgoingCase {
            label: "a 503 is transient",
            sms: sms("+15551234567", "Hello"),
            replies: vec![Reply::json(503, r#"{"message":"maintenance"}"#)],
            requests: vec![post(body.clone())],
            outcome: Err(ConnectorError::Transient {
                message: "gateway answered 503: maintenance".into(),
                retry_after: None,
            }),
        },
        OutgoingCase {
            label: "a 429 throttles for Retry-After",
            sms: sms("+15551234567", "Hello"),
            replies: vec![Reply {
                status: 429,
                headers: vec![("retry-after", "7"), ("content-type", "application/json")],
                body: "{}".into(),
            }],
            requests: vec![post(body.clone())],
            outcome: Err(ConnectorError::Throttled {
                message: "gateway answered 429: no error message".into(),
                retry_after: Some(Duration::from_secs(7)),
            }),
        },
    ];
    run_outgoing(cases, |base| connector(base, |_| {}), &[TOKEN, WEBHOOK_SECRET]).await;

    // Field names, id location and auth are configurable.
    let custom = vec![OutgoingCase {
        label: "custom fields, basic auth, nested numeric id",
        sms: sms("+447911123456", "Grüße 😀"),
        replies: vec![Reply::json(201, r#"{"data":{"id":42}}"#)],
        requests: vec![ExpectRequest {
            method: "POST",
            uri: "/v1/sms".into(),
            headers: vec![("authorization", "Basic dXNlcjpwYXNzLXNlY3JldC0x".into())],
            form: None,
            json: Some(serde_json::json!({
                "msisdn": "+447911123456", "sender": "+15550000000", "text": "Grüße 😀", "ref": "msg_0001"
            })),
        }],
        outcome: Ok(Accepted { provider_ids: vec!["42".into()] }),
    }];
    run_outgoing(
        custom,
        |base| {
            connector(base, |s| {
                s.auth = HttpAuth::Basic { username: "user".into(), password: Secret::new("pass-secret-1") };
                s.fields.to = "msisdn".into();
                s.fields.from = "sender".into();
                s.fields.message = "text".into();
                s.fields.reference = Some("ref".into());
                s.id_pointer = "/data/id".into();
            })
        },
        &["pass-secret-1"],
    )
    .await;
}

fn signed(body: &str) -> Vec<(&'static str, String)> {
    vec![("x-sms-signature", signature(WEBHOOK_SECRET, body.as_bytes())), ("content-type", "application/json".into())]
}

#[tokio::test]
async fn incoming() {
    let inbound = r#"{"from":"+15551234567","to":"+15550000000","message":"HOURS","id":"in-9"}"#;
    let status = r#"{"id":"gw-1","status":"UNDELIV","error_code":"34"}"#;
    let cases = vec![
        IncomingCase {
            label: "a signed inbound message",
            kind: WebhookKind::Inbound,
            url: "https://sms.example.com/v1/inbound/gw",
            method: "POST",
            headers: signed(inbound),
            body: inbound.into(),
            outcome: Ok(WebhookEvent::Inbound(InboundSms {
                from: "+15551234567".into(),
                to: "+15550000000".into(),
                body: "HOURS".into(),
                connector: "gw".into(),
                provider_id: Some("in-9".into()),
            })),
            reply: Some(WebhookReply::empty()),
        },
        IncomingCase {
            label: "a wrong signature is refused",
            kind: WebhookKind::Inbound,
            url: "https://sms.example.com/v1/inbound/gw",
            method: "POST",
            headers: vec![("x-sms-signature", signature("not-the-secret", inbound.as_bytes()))],
            body: inbound.into(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "a missing signature is refused",
            kind: WebhookKind::Status,
            url: "https://sms.example.com/v1/status/gw",
            method: "POST",
            headers: vec![],
            body: status.into(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "a status report, gateway words mapped to ours",
            kind: WebhookKind::Status,
            url: "https://sms.example.com/v1/status/gw",
            method: "POST",
            headers: signed(status),
            body: status.into(),
            outcome: Ok(WebhookEvent::Status(ProviderReport {
                connector: "gw".into(),
                provider_id: "gw-1".into(),
                status: MessageStatus::Undelivered,
                error_code: Some("34".into()),
                at: NOW,
            })),
            reply: None,
        },
        IncomingCase {
            label: "an unknown status is a clear error",
            kind: WebhookKind::Status,
            url: "https://sms.example.com/v1/status/gw",
            method: "POST",
            headers: signed(r#"{"id":"gw-1","status":"teleported"}"#),
            body: r#"{"id":"gw-1","status":"teleported"}"#.into(),
            outcome: Err(WebhookError::Invalid {
                code: "INVALID_FIELD",
                message: "unknown status \"teleported\" (map it under `statuses`)".into(),
                field: Some("status".into()),
            }),
            reply: None,
        },
        IncomingCase {
            label: "a missing field is named",
            kind: WebhookKind::Inbound,
            url: "https://sms.example.com/v1/inbound/gw",
            method: "POST",
            headers: signed(r#"{"to":"+15550000000","message":"x"}"#),
            body: r#"{"to":"+15550000000","message":"x"}"#.into(),
            outcome: Err(WebhookError::Invalid {
                code: "INVALID_FIELD",
                message: "missing field `from`".into(),
                field: Some("from".into()),
            }),
            reply: None,
        },
    ];
    let c = connector("http://127.0.0.1:9", |_| {});
    run_incoming(cases, c.as_ref(), &[TOKEN, WEBHOOK_SECRET]);
}
