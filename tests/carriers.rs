//! The delivery pipeline against local fake carriers speaking the carriers'
//! wire formats: failover, circuit breaker, Retry-After, rate limits,
//! SMPP (concatenation, receipts, throttling, a dropped link, MO),
//! signed Twilio and Vonage webhooks, and Twilio requests checked against
//! Twilio's own OpenAPI description.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::carrier::{Answer, FakeGateway};
use common::smsc::Smsc;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::clock::Clock;
use switchboard::connectors::ConnectorSettings;
use switchboard::pipeline::Notification;
use switchboard::tenancy::{Route, Strategy};

fn connector(toml_text: &str) -> ConnectorSettings {
    toml::from_str(toml_text).expect("connector settings")
}

fn route(connectors: &[&str]) -> Route {
    Route {
        prefix: String::new(),
        connectors: connectors.iter().map(|c| c.to_string()).collect(),
        strategy: Strategy::Priority,
    }
}

/// Sends one message through the API; returns its id.
async fn send(h: &Harness, to: &str, text: &str) -> String {
    let a = h.post("/v1/messages", json!({"to": to, "message": text}), StatusCode::ACCEPTED).await;
    a["id"].as_str().unwrap().to_string()
}

async fn message(h: &Harness, id: &str) -> Value {
    h.get(&format!("/v1/messages/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_carrier_fails_over_to_the_next() {
    let clock = Clock::system();
    let a = FakeGateway::start("a", clock.clone(), |_| Answer::Status(500)).await;
    let b = FakeGateway::start("b", clock.clone(), |_| Answer::Accept).await;
    let (ta, tb) = (a.connector_toml(""), b.connector_toml(""));
    let h = harness()
        .plugins(&[])
        .clock(clock)
        .settings(move |s| {
            s.connectors.insert("a".into(), connector(&ta));
            s.connectors.insert("b".into(), connector(&tb));
            s.routes = vec![route(&["a", "b"])];
        })
        .start()
        .await;
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "Your parcel is on its way").await;
    watch.message_status(&id, "sent").await;
    let m = message(&h, &id).await;
    assert_eq!(m["connector"], "b");
    assert_eq!(m["provider_id"], "b-0");
    let hit = &b.hits()[0];
    assert_eq!(hit.body, json!({"to": CUSTOMER, "from": NUMBER, "message": "Your parcel is on its way"}));
    assert_eq!(hit.headers["authorization"], "Bearer gateway-token");
    assert_eq!(hit.headers["idempotency-key"], id.as_str());
    assert_eq!(a.hits().len(), 1, "tried first, failed over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_after_repeated_failures_and_recovers_after_its_cool_down() {
    let clock = Clock::system();
    // a fails three times, then works.
    let a = FakeGateway::start("a", clock.clone(), |n| if n < 3 { Answer::Status(503) } else { Answer::Accept }).await;
    let b = FakeGateway::start("b", clock.clone(), |_| Answer::Accept).await;
    let ta = a.connector_toml("[gate]\ncircuit_failures = 3\ncircuit_cooldown_ms = 60000");
    let tb = b.connector_toml("");
    let h = harness()
        .plugins(&[])
        .clock(clock)
        .settings(move |s| {
            s.connectors.insert("a".into(), connector(&ta));
            s.connectors.insert("b".into(), connector(&tb));
            s.routes = vec![route(&["a", "b"])];
        })
        .start()
        .await;
    let mut watch = h.watch();
    let mut via = Vec::new();
    for i in 0..5 {
        let id = send(&h, CUSTOMER, &format!("message {i}")).await;
        watch.message_status(&id, "sent").await;
        via.push(message(&h, &id).await["connector"].as_str().unwrap().to_string());
    }
    assert_eq!(via, ["b", "b", "b", "b", "b"]);
    assert_eq!(a.hits().len(), 3, "after three failures the open circuit keeps messages away from a");

    // After the cool-down one probe goes to a; it succeeds and closes the circuit.
    h.clock.advance(Duration::from_secs(60));
    for i in 5..7 {
        let id = send(&h, CUSTOMER, &format!("message {i}")).await;
        watch.message_status(&id, "sent").await;
        assert_eq!(message(&h, &id).await["connector"], "a");
    }
    assert_eq!(a.hits().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured() {
    let clock = Clock::system();
    let a =
        FakeGateway::start("a", clock.clone(), |n| if n == 0 { Answer::RetryAfter(7) } else { Answer::Accept }).await;
    let ta = a.connector_toml("");
    let h = harness()
        .plugins(&[])
        .clock(clock)
        .settings(move |s| {
            s.connectors.insert("a".into(), connector(&ta));
            s.routes = vec![route(&["a"])];
            s.limits.send_retry_base_ms = 10;
        })
        .start()
        .await;
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "throttled").await;
    let Notification::SendRetry { at, .. } = watch.until(|n| matches!(n, Notification::SendRetry { .. })).await else {
        unreachable!()
    };
    let refused_at = a.hits()[0].clock_ms;
    assert!(at - refused_at >= 7_000, "retried {} ms after the 429, not the 7 s the carrier asked", at - refused_at);
    h.clock.advance(Duration::from_secs(7));
    watch.message_status(&id, "sent").await;
    let hits = a.wait_hits(2).await;
    assert!(hits[1].clock_ms - hits[0].clock_ms >= 7_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_rate_stays_within_5_percent_of_the_connector_limit() {
    const LIMIT: f64 = 400.0;
    let clock = Clock::system();
    let a = FakeGateway::start("a", clock.clone(), |_| Answer::Accept).await;
    let ta = a.connector_toml(&format!("[gate]\nrate_per_second = {LIMIT}"));
    let h = harness()
        .plugins(&[])
        .clock(clock)
        .settings(move |s| {
            s.connectors.insert("a".into(), connector(&ta));
            s.routes = vec![route(&["a"])];
        })
        .start()
        .await;
    for batch in 0..2 {
        let to: Vec<String> = (0..1000).map(|i| format!("+1555{:07}", 3_000_000 + batch * 1000 + i)).collect();
        h.post("/v1/messages", json!({"to": to, "message": "rate"}), StatusCode::ACCEPTED).await;
    }
    let hits = a.wait_hits(2000).await;
    let span = hits.last().unwrap().at.duration_since(hits[0].at).as_secs_f64();
    let rate = (hits.len() - 1) as f64 / span;
    eprintln!("measured {rate:.1} messages/s for a limit of {LIMIT}");
    assert!(rate <= LIMIT * 1.05 && rate >= LIMIT * 0.95, "{rate:.1} messages/s for a limit of {LIMIT}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_cost_routes_pick_the_cheaper_connector() {
    let clock = Clock::system();
    let dear = FakeGateway::start("dear", clock.clone(), |_| Answer::Accept).await;
    let cheap = FakeGateway::start("cheap", clock.clone(), |_| Answer::Accept).await;
    let (td, tc) = (
        dear.connector_toml("[gate.prices]\n\"+44\" = \"0.05\""),
        cheap.connector_toml("[gate.prices]\n\"+44\" = \"0.03\"\n\"+1\" = \"0.09\""),
    );
    let h = harness()
        .plugins(&[])
        .clock(clock)
        .settings(move |s| {
            s.connectors.insert("dear".into(), connector(&td));
            s.connectors.insert("cheap".into(), connector(&tc));
        })
        .start()
        .await;
    let routes = json!({"routes": [{"prefix": "", "connectors": ["dear", "cheap"], "strategy": "least_cost"}]});
    let (s, _) = h.call(Method::PUT, "/v1/routes", Some(routes), Some(&h.key)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) =
        h.call(Method::PUT, "/v1/routes", Some(json!({"routes": [{"connectors": ["nope"]}]})), Some(&h.key)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("UNKNOWN_CONNECTOR")));
    let mut watch = h.watch();
    let uk = send(&h, "+447911123456", "cheap to the UK").await;
    // dear has no +1 price, so it comes last there.
    let us = send(&h, CUSTOMER, "cheap to the US").await;
    watch.message_statuses(&[(&uk, "sent"), (&us, "sent")]).await;
    assert_eq!(message(&h, &uk).await["connector"], "cheap");
    assert_eq!(message(&h, &us).await["connector"], "cheap");
}

async fn smpp_harness(smsc: &Smsc, extra: &str) -> Harness {
    let t = smsc.connector_toml(extra);
    harness()
        .plugins(&["keyword-reply"])
        .settings(move |s| {
            s.connectors.insert("smsc".into(), connector(&t));
            s.routes = vec![route(&["smsc"])];
            s.limits.send_retry_base_ms = 10;
            s.limits.send_retry_max_ms = 20;
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_long_messages_go_as_concatenated_parts_and_receipts_mark_them_delivered() {
    let smsc = Smsc::start().await;
    let h = smpp_harness(&smsc, "").await;
    let mut watch = h.watch();
    let text = format!("{} {}", "Your appointment is confirmed.".repeat(6), "See you soon!");
    let id = send(&h, "+447911123456", &text).await;
    watch.message_status(&id, "delivered").await;

    let parts = smsc.wait_accepted(2).await;
    assert_eq!(parts.len(), 2);
    let (r1, t1, s1) = parts[0].concat().expect("a UDH");
    let (r2, t2, s2) = parts[1].concat().expect("a UDH");
    assert_eq!((r1, t1, s1, t2, s2), (r2, 2, 1, 2, 2));
    assert_eq!(parts.iter().map(|p| p.text()).collect::<String>(), text);
    assert!(parts.iter().all(|p| p.data_coding == 0 && p.destination == "447911123456" && p.source == "15550000000"));
    let m = message(&h, &id).await;
    assert_eq!(m["segments"], 2);
    let part_states: Vec<&str> = m["parts"].as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert_eq!(part_states, ["delivered", "delivered"]);

    // Unicode goes as UCS-2.
    let id = send(&h, "+447911123456", "Привет 😀").await;
    watch.message_status(&id, "delivered").await;
    let last = smsc.submits().pop().unwrap();
    assert_eq!((last.data_coding, last.text().as_str()), (8, "Привет 😀"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_throttling_slows_down_and_retries() {
    let smsc = Smsc::start().await;
    smsc.throttle_next(1);
    let h = smpp_harness(&smsc, "").await;
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "after a pause").await;
    watch.until(|n| matches!(n, Notification::SendRetry { message_id, .. } if *message_id == id)).await;
    h.clock.advance(Duration::from_secs(2));
    watch.message_status(&id, "delivered").await;
    assert_eq!(smsc.submits().len(), 2, "one throttled, one accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_smpp_link_mid_window_loses_nothing() {
    let smsc = Smsc::start().await;
    let h = smpp_harness(&smsc, "window = 5").await;
    smsc.wait_bound().await;
    smsc.drop_connection_after(3);
    let mut watch = h.watch();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(send(&h, CUSTOMER, &format!("in flight {i}")).await);
    }
    let wanted: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "delivered")).collect();
    watch.message_statuses(&wanted).await;
    assert_eq!(smsc.binds(), 2, "reconnected once");
    let delivered: Vec<String> = smsc.submits().iter().filter(|s| s.message_id.is_some()).map(|s| s.text()).collect();
    for i in 0..3 {
        assert!(delivered.contains(&format!("in flight {i}")), "{delivered:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_mo_messages_reach_plugins_and_replies_go_back_over_smpp() {
    let smsc = Smsc::start().await;
    let t = smsc.connector_toml("");
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(move |s| s.connectors.insert("smsc".into(), connector(&t)).map(|_| ()).unwrap_or(()))
        .start()
        .await;
    h.app.control.add_number(&h.tenant, "+15550004444", "smsc", false).await.unwrap();
    smsc.wait_bound().await;
    smsc.deliver_mo("15557654321", "15550004444", "HOURS");
    let replies = smsc.wait_accepted(1).await;
    assert_eq!(replies[0].destination, "15557654321");
    assert_eq!(replies[0].source, "15550004444");
    assert_eq!(replies[0].text(), "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");

    // Shutting down unbinds.
    h.app.shutdown().await;
    assert_eq!(smsc.unbinds(), 1);
}

fn twilio_settings(base: &str) -> String {
    format!(
        "kind = \"twilio\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"{TWILIO_TOKEN}\"\nbase_url = \"{base}\""
    )
}

const TWILIO_TOKEN: &str = "twilio-e2e-token";
const PUBLIC: &str = "https://sms.example.com";

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

async fn signed_twilio_post(h: &Harness, path: &str, pairs: &[(&str, &str)], token: &str) -> (StatusCode, String) {
    let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = switchboard::connectors::twilio::signature(token, &format!("{PUBLIC}{path}"), &params);
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(form(pairs)))
        .unwrap();
    let (status, body) = raw(&h.app, req).await;
    (status, body.as_str().map(str::to_string).unwrap_or_else(|| body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_webhooks_are_verified_and_a_good_one_reaches_the_keyword_plugin() {
    let t = twilio_settings("http://127.0.0.1:9");
    let h = harness()
        .plugins(&["keyword-reply"])
        .number_on("twilio")
        .settings(move |s| {
            s.connectors.insert("twilio".into(), connector(&t));
            // Replies leave through the simulator, where the test sees them.
            s.routes = vec![route(&["simulator"])];
            s.public_base_url = Some(PUBLIC.into());
        })
        .start()
        .await;
    let pairs = [("From", CUSTOMER), ("To", NUMBER), ("Body", "HOURS"), ("MessageSid", "SM1"), ("NumMedia", "0")];
    let (status, body) = signed_twilio_post(&h, "/v1/inbound/twilio", &pairs, "not-the-token").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("INVALID_SIGNATURE"));
    assert_eq!(h.get("/v1/messages").await["data"], json!([]), "nothing accepted");

    let (status, body) = signed_twilio_post(&h, "/v1/inbound/twilio", &pairs, TWILIO_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, switchboard::connectors::twilio::EMPTY_TWIML);
    let sent = h.sent(1).await;
    assert_eq!(
        (sent[0].to.as_str(), sent[0].body.as_str()),
        (CUSTOMER, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_status_callbacks_update_messages_sent_through_twilio() {
    let twilio = common::carrier::FakeTwilio::start().await;
    let t = twilio_settings(&twilio.url);
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.connectors.insert("twilio".into(), connector(&t));
            s.routes = vec![route(&["twilio"])];
            s.public_base_url = Some(PUBLIC.into());
        })
        .start()
        .await;
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "via Twilio").await;
    watch.message_status(&id, "sent").await;
    let sid = message(&h, &id).await["provider_id"].as_str().unwrap().to_string();
    let request = &twilio.requests()[0];
    assert_eq!(request.get("StatusCallback").map(String::as_str), Some("https://sms.example.com/v1/status/twilio"));
    let (status, _) = signed_twilio_post(
        &h,
        "/v1/status/twilio",
        &[("MessageSid", &sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")],
        TWILIO_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let m = message(&h, &id).await;
    assert_eq!((m["status"].as_str(), m["error_code"].as_str()), (Some("undelivered"), Some("30003")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_requests_validate_against_twilios_openapi_description() {
    let prism = common::prism::Prism::start(&workspace().join("tests/fixtures/twilio_api_v2010_messages.json")).await;
    // Prism refuses what the description does not allow (a negative control).
    let refused = reqwest::Client::new()
        .post(format!("{}/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json", prism.url))
        .basic_auth("AC0123456789abcdef0123456789abcdef", Some("x"))
        .form(&[("Bogus", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);

    let t = twilio_settings(&prism.url);
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.connectors.insert("twilio".into(), connector(&t));
            s.routes = vec![route(&["twilio"])];
            s.public_base_url = Some(PUBLIC.into());
        })
        .start()
        .await;
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "Checked against the contract ✓").await;
    watch.message_status(&id, "sent").await;
    assert!(message(&h, &id).await["provider_id"].as_str().unwrap().starts_with("SM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_concatenated_inbound_parts_are_reassembled_before_plugins_see_them() {
    let t = "kind = \"vonage\"\napi_key = \"k\"\napi_secret = \"vonage-secret\"\nunsigned_webhooks = true";
    let h = harness()
        .plugins(&["keyword-reply"])
        .number_on("vonage")
        .settings(move |s| {
            s.connectors.insert("vonage".into(), connector(t));
            s.routes = vec![route(&["simulator"])];
        })
        .start()
        .await;
    let part = |n: &str, text: &str| {
        format!(
            "/v1/inbound/vonage?msisdn=15551234567&to=15550000000&messageId=0B0{n}&text={}&concat=true&concat-ref=12&concat-total=2&concat-part={n}",
            text.replace(' ', "+")
        )
    };
    let (s, first) = h.call(Method::GET, &part("2", "se tell me"), None, None).await;
    assert_eq!((s, first["status"].as_str()), (StatusCode::OK, Some("part_stored")));
    assert!(h.sim().sent().is_empty(), "no plugin sees half a message");
    let (s, whole) = h.call(Method::GET, &part("1", "HOURS plea"), None, None).await;
    assert_eq!((s, whole["status"].as_str()), (StatusCode::OK, Some("received")));
    let id = whole["id"].as_str().unwrap();
    assert_eq!(message(&h, id).await["message"], "HOURS please tell me");
    assert_eq!(h.sent(1).await[0].body, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
    // The same part again (a carrier retry) does not make a second message:
    // it is answered as the message it was part of.
    let (s, again) = h.call(Method::GET, &part("1", "HOURS plea"), None, None).await;
    assert_eq!((s, again["status"].as_str(), again["id"].as_str()), (StatusCode::OK, Some("duplicate"), Some(id)));
    assert_eq!(h.get("/v1/messages?direction=inbound").await["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_overtakes_the_carriers_answer_is_applied() {
    let early = common::carrier::EarlyReporter::start().await;
    let t = format!(
        "kind = \"http\"\nurl = \"{}/sms\"\nwebhook_secret = \"{}\"",
        early.url,
        common::carrier::GATEWAY_SECRET
    );
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.connectors.insert("early".into(), connector(&t));
            s.routes = vec![route(&["early"])];
        })
        .start()
        .await;
    let base = h.serve().await;
    early.report_to(&format!("{base}/v1/status/early"));
    let mut watch = h.watch();
    let id = send(&h, CUSTOMER, "fast carrier").await;
    watch.message_status(&id, "delivered").await;
    let m = message(&h, &id).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["provider_id"], "early-1");
}
