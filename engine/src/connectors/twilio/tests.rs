use super::*;
use crate::connectors::testing::*;
use std::sync::Arc;
use std::time::Duration;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "tw-token-secret-9d2e";
const PUBLIC: &str = "https://sms.example.com";

fn connector(base: &str, service: Option<&str>) -> Arc<dyn Connector> {
    let settings = TwilioSettings {
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        messaging_service_sid: service.map(str::to_string),
        base_url: base.into(),
        gate: GateSettings::default(),
    };
    Arc::new(Twilio::new("tw".into(), settings, context(Some(PUBLIC))).unwrap())
}

fn create(form: Vec<(&'static str, String)>) -> ExpectRequest {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    ExpectRequest {
        method: "POST",
        uri: format!("/2010-04-01/Accounts/{SID}/Messages.json"),
        headers: vec![
            ("authorization", format!("Basic {basic}")),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        form: Some(form),
        json: None,
    }
}

fn standard_form(body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("To", "+15551234567".into()),
        ("From", "+15550000000".into()),
        ("Body", body.into()),
        ("StatusCallback", format!("{PUBLIC}/v1/status/tw")),
    ]
}

#[tokio::test]
async fn outgoing() {
    let created =
        r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","num_segments":"1","error_code":null}"#;
    let cases = vec![
        OutgoingCase {
            label: "created: the message SID is the provider id",
            sms: sms("+15551234567", "Hello & welcome"),
            replies: vec![Reply::json(201, created)],
            requests: vec![create(standard_form("Hello & welcome"))],
            outcome: Ok(Accepted { provider_ids: vec!["SM0123456789abcdef0123456789abcdef".into()] }),
        },
        OutgoingCase {
            label: "an invalid number is permanent, mapped to our code",
            sms: sms("+15551234567", "Hi"),
            replies: vec![Reply::json(
                400,
                r#"{"code":21211,"message":"The 'To' number +15551234567 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
            )],
            requests: vec![create(standard_form("Hi"))],
            outcome: Err(ConnectorError::Permanent {
                code: "INVALID_NUMBER".into(),
                message: "twilio 21211: The 'To' number +15551234567 is not a valid phone number.".into(),
            }),
        },
        OutgoingCase {
            label: "bad credentials are permanent",
            sms: sms("+15551234567", "Hi"),
            replies: vec![Reply::json(401, r#"{"code":20003,"message":"Authenticate","status":401}"#)],
            requests: vec![create(standard_form("Hi"))],
            outcome: Err(ConnectorError::Permanent {
                code: "AUTH_FAILED".into(),
                message: "twilio 20003: Authenticate".into(),
            }),
        },
        OutgoingCase {
            label: "too many requests throttles for Retry-After",
            sms: sms("+15551234567", "Hi"),
            replies: vec![Reply {
                status: 429,
                headers: vec![("content-type", "application/json"), ("retry-after", "3")],
                body: r#"{"code":20429,"message":"Too Many Requests","status":429}"#.into(),
            }],
            requests: vec![create(standard_form("Hi"))],
            outcome: Err(ConnectorError::Throttled {
                message: "twilio 20429: Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(3)),
            }),
        },
        OutgoingCase {
            label: "a server error is transient",
            sms: sms("+15551234567", "Hi"),
            replies: vec![Reply::json(503, r#"{"code":20500,"message":"Internal Server Error","status":503}"#)],
            requests: vec![create(standard_form("Hi"))],
            outcome: Err(ConnectorError::Transient {
                message: "twilio 20500: Internal Server Error".into(),
                retry_after: None,
            }),
        },
    ];
    run_outgoing(cases, |base| connector(base, None), &[TOKEN]).await;

    let service = vec![OutgoingCase {
        label: "through a Messaging Service",
        sms: sms("+15551234567", "Hi"),
        replies: vec![Reply::json(201, created)],
        requests: vec![create(vec![
            ("To", "+15551234567".into()),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef".into()),
            ("Body", "Hi".into()),
            ("StatusCallback", format!("{PUBLIC}/v1/status/tw")),
        ])],
        outcome: Ok(Accepted { provider_ids: vec!["SM0123456789abcdef0123456789abcdef".into()] }),
    }];
    run_outgoing(service, |base| connector(base, Some("MG0123456789abcdef0123456789abcdef")), &[TOKEN]).await;
}

#[test]
fn signature_matches_twilios_published_example() {
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    );
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn signed(url: &str, pairs: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vec![
        (SIGNATURE_HEADER, signature(TOKEN, url, &params)),
        ("content-type", "application/x-www-form-urlencoded".into()),
    ]
}

#[test]
fn incoming() {
    let inbound: &[(&str, &str)] = &[
        ("ToCountry", "US"),
        ("SmsMessageSid", "SMaaaa"),
        ("NumMedia", "0"),
        ("From", "+15551234567"),
        ("To", "+15550000000"),
        ("Body", "Hours please"),
        ("MessageSid", "SMaaaa"),
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
    ];
    let url = "https://sms.example.com/v1/inbound/tw";
    let inbound_event = Ok(WebhookEvent::Inbound(InboundSms {
        from: "+15551234567".into(),
        to: "+15550000000".into(),
        body: "Hours please".into(),
        connector: "tw".into(),
        provider_id: Some("SMaaaa".into()),
    }));
    let status_url = "https://sms.example.com/v1/status/tw";
    let status = |s: &'static str, code: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("MessageSid", "SMbbbb"), ("MessageStatus", s), ("ErrorCode", code), ("AccountSid", SID)]
    };
    let json_body = r#"{"MessageSid":"SMbbbb","MessageStatus":"delivered"}"#;
    let json_url: &'static str = Box::leak(
        format!(
            "{status_url}?bodySHA256={}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(json_body.as_bytes()))
        )
        .into_boxed_str(),
    );
    let cases = vec![
        IncomingCase {
            label: "a signed inbound SMS, answered with empty TwiML",
            kind: WebhookKind::Inbound,
            url,
            method: "POST",
            headers: signed(url, inbound),
            body: form_body(inbound),
            outcome: inbound_event.clone(),
            reply: Some(WebhookReply { content_type: "text/xml", body: EMPTY_TWIML.into() }),
        },
        IncomingCase {
            label: "signed with the default port while the request URL has none",
            kind: WebhookKind::Inbound,
            url,
            method: "POST",
            headers: signed("https://sms.example.com:443/v1/inbound/tw", inbound),
            body: form_body(inbound),
            outcome: inbound_event,
            reply: None,
        },
        IncomingCase {
            label: "a tampered body fails the signature",
            kind: WebhookKind::Inbound,
            url,
            method: "POST",
            headers: signed(url, inbound),
            body: form_body(&[("From", "+15551234567"), ("To", "+15550000000"), ("Body", "Send me everything")]),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "another account's token fails the signature",
            kind: WebhookKind::Inbound,
            url,
            method: "POST",
            headers: vec![(SIGNATURE_HEADER, signature("other-token", url, &[]))],
            body: form_body(inbound),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "a missing signature is refused",
            kind: WebhookKind::Inbound,
            url,
            method: "POST",
            headers: vec![],
            body: form_body(inbound),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
        IncomingCase {
            label: "status callback: undelivered with Twilio's error code",
            kind: WebhookKind::Status,
            url: status_url,
            method: "POST",
            headers: signed(status_url, &status("undelivered", "30003")),
            body: form_body(&status("undelivered", "30003")),
            outcome: Ok(WebhookEvent::Status(ProviderReport {
                connector: "tw".into(),
                provider_id: "SMbbbb".into(),
                status: MessageStatus::Undelivered,
                error_code: Some("30003".into()),
                at: NOW,
            })),
            reply: Some(WebhookReply::empty()),
        },
        IncomingCase {
            label: "status callback: intermediate statuses are ignored",
            kind: WebhookKind::Status,
            url: status_url,
            method: "POST",
            headers: signed(status_url, &status("sending", "")),
            body: form_body(&status("sending", "")),
            outcome: Ok(WebhookEvent::Ignored),
            reply: None,
        },
        IncomingCase {
            label: "a JSON body is covered by bodySHA256 in the signed URL",
            kind: WebhookKind::Status,
            url: json_url,
            method: "POST",
            headers: vec![
                (SIGNATURE_HEADER, signature(TOKEN, json_url, &[])),
                ("content-type", "application/json".into()),
            ],
            body: json_body.into(),
            outcome: Ok(WebhookEvent::Status(ProviderReport {
                connector: "tw".into(),
                provider_id: "SMbbbb".into(),
                status: MessageStatus::Delivered,
                error_code: None,
                at: NOW,
            })),
            reply: None,
        },
        IncomingCase {
            label: "a JSON body that does not match bodySHA256 is refused",
            kind: WebhookKind::Status,
            url: json_url,
            method: "POST",
            headers: vec![
                (SIGNATURE_HEADER, signature(TOKEN, json_url, &[])),
                ("content-type", "application/json".into()),
            ],
            body: r#"{"MessageSid":"SMbbbb","MessageStatus":"failed"}"#.into(),
            outcome: Err(WebhookError::BadSignature),
            reply: None,
        },
    ];
    let c = connector("http://127.0.0.1:9", None);
    run_incoming(cases, c.as_ref(), &[TOKEN]);
}
