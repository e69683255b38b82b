//! The SMS gateway API over HTTP: sending (single, bulk, batch), encodings,
//! idempotency, numbers and sender IDs, templates, scheduling, balance,
//! sandbox keys, keys, usage.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::billing::PricingSettings;
use switchboard::secrets::{KeyMode, Secret};

fn error_of(body: &Value) -> (&str, Option<&str>) {
    (body["error"]["code"].as_str().unwrap_or(""), body["error"]["field"].as_str())
}

async fn gateway() -> Harness {
    harness().plugins(&[]).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_queued_sent_and_delivered_with_its_history() {
    let h = gateway().await;
    let mut watch = h.watch();
    let answer =
        h.post("/v1/messages", json!({"to": CUSTOMER, "message": "Your code is 1234"}), StatusCode::ACCEPTED).await;
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["segments"], 1);
    assert_eq!(answer["encoding"], "gsm7");
    let id = answer["id"].as_str().unwrap();
    watch.message_status(id, "delivered").await;
    let sent = h.sim().sent();
    assert_eq!(
        (sent[0].to.as_str(), sent[0].from.as_str(), sent[0].body.as_str()),
        (CUSTOMER, NUMBER, "Your code is 1234")
    );
    let m = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["mode"], "live");
    let history: Vec<&str> = m["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "sending", "sent", "delivered"]);
    assert!(m["history"].as_array().unwrap().iter().all(|h| h["at"].as_str().unwrap().ends_with('Z')));
}

/// A message can be answered twice in one batch of carrier answers (its
/// lease lapsed while the first answer waited to be recorded, and it was
/// sent again). The batch is recorded, once per message, the later answer
/// standing: a batch the store refused would be offered again and again, and
/// no later answer on the node recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_answered_twice_in_one_batch_is_recorded_once() {
    use switchboard::store::{Lease, SendOutcome, SendResult};
    let h = gateway().await;
    let mut watch = h.watch();
    let answer = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "twice"}), StatusCode::ACCEPTED).await;
    let id = answer["id"].as_str().unwrap().to_string();
    watch.message_status(&id, "delivered").await;
    let answered = |provider_id: &str| SendResult {
        message_id: id.clone(),
        connector: "simulator".into(),
        outcome: SendOutcome::Sent { provider_ids: vec![provider_id.into()] },
        at: h.clock.now_ms(),
    };
    let lease = Lease { owner: "test".into(), until: 0 };
    h.app
        .engine
        .db
        .record_send_results(&[answered("SIM-FIRST"), answered("SIM-SECOND")], &lease)
        .await
        .expect("the batch is recorded");
    let m = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!((m["provider_id"].as_str(), m["status"].as_str()), (Some("SIM-SECOND"), Some("delivered")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_and_encoding_follow_gsm_03_38() {
    let h = gateway().await;
    let cases: Vec<(String, &str, u64)> = vec![
        ("a".repeat(160), "gsm7", 1),
        ("a".repeat(161), "gsm7", 2),
        ("€".repeat(80), "gsm7", 1),
        ("€".repeat(81), "gsm7", 2),
        (format!("{}{{", "a".repeat(159)), "gsm7", 2),
        ("я".repeat(70), "ucs2", 1),
        ("я".repeat(71), "ucs2", 2),
        ("😀".repeat(35), "ucs2", 1),
        ("😀".repeat(36), "ucs2", 2),
        (format!("{}😀", "a".repeat(69)), "ucs2", 2),
    ];
    for (text, encoding, segments) in cases {
        let a = h.post("/v1/messages", json!({"to": CUSTOMER, "message": text}), StatusCode::ACCEPTED).await;
        assert_eq!(
            (a["encoding"].as_str().unwrap(), a["segments"].as_u64().unwrap()),
            (encoding, segments),
            "{} chars",
            text.chars().count()
        );
    }
    let a = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "plain", "encoding": "unicode"}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(a["encoding"], "ucs2");
    let e = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "hi 😀", "encoding": "gsm7"}), StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(error_of(&e), ("INVALID_ENCODING", Some("message")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_send_reaches_a_thousand_recipients_in_one_call() {
    let h = gateway().await;
    let recipients: Vec<String> = (0..1000).map(|i| format!("+1555{:07}", 2_000_000 + i)).collect();
    let a = h
        .post("/v1/messages", json!({"to": recipients, "message": "Store closes early today"}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(a["count"], 1000);
    assert_eq!(a["ids"].as_array().unwrap().len(), 1000);
    let batch = a["batch_id"].as_str().unwrap();
    let sent = h.sent(1000).await;
    let mut to: Vec<&str> = sent.iter().map(|s| s.to.as_str()).collect();
    to.sort();
    assert_eq!(to, recipients.iter().map(String::as_str).collect::<Vec<_>>());
    let page = h.get(&format!("/v1/messages?batch_id={batch}&limit=200")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 200);
    assert!(page["next_cursor"].is_string());
    let e = h.post("/v1/messages", json!({"to": [CUSTOMER, "nope"], "message": "x"}), StatusCode::BAD_REQUEST).await;
    assert_eq!(error_of(&e), ("INVALID_PHONE_NUMBER", Some("to[1]")));
    let too_many: Vec<String> = (0..1001).map(|i| format!("+1555{:07}", i)).collect();
    let e = h.post("/v1/messages", json!({"to": too_many, "message": "x"}), StatusCode::BAD_REQUEST).await;
    assert_eq!(error_of(&e), ("TOO_MANY_RECIPIENTS", Some("to")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sends_personalised_messages_all_or_nothing() {
    let h = gateway().await;
    let e = h
        .post(
            "/v1/messages/batch",
            json!({"messages": [{"to": CUSTOMER, "message": "Hi Ann"}, {"to": "12", "message": "Hi Bob"}]}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e), ("INVALID_PHONE_NUMBER", Some("messages[1].to")));
    assert_eq!(h.get("/v1/messages").await["data"], json!([]), "nothing queued");

    let a = h
        .post(
            "/v1/messages/batch",
            json!({"messages": [{"to": CUSTOMER, "message": "Hi Ann"}, {"to": "+15557654321", "message": "Hi Bob", "reference": "bob"}]}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(a["count"], 2);
    let sent = h.sent(2).await;
    let mut got: Vec<(String, String)> = sent.iter().map(|s| (s.to.clone(), s.body.clone())).collect();
    got.sort();
    assert_eq!(got, [(CUSTOMER.to_string(), "Hi Ann".to_string()), ("+15557654321".to_string(), "Hi Bob".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_return_the_first_result() {
    let h = gateway().await;
    let body = json!({"to": CUSTOMER, "message": "Only once"});
    let key_header = [("idempotency-key", "order-42-shipped")];
    let (s1, _, first) = h.call_with(Method::POST, "/v1/messages", Some(body.clone()), &h.key, &key_header).await;
    let (s2, headers, second) =
        h.call_with(Method::POST, "/v1/messages", Some(body.clone()), &h.key, &key_header).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first, second);
    assert_eq!(headers["idempotent-replayed"], "true");
    h.sent(1).await;
    assert_eq!(h.get("/v1/messages").await["data"].as_array().unwrap().len(), 1);
    let (s3, _, e) = h
        .call_with(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "Other"})), &h.key, &key_header)
        .await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&e), ("IDEMPOTENCY_KEY_REUSED", Some("Idempotency-Key")));

    // Concurrent retries with one key still queue one message.
    let key_header = [("idempotency-key", "concurrent")];
    let tries = (0..8).map(|_| h.call_with(Method::POST, "/v1/messages", Some(body.clone()), &h.key, &key_header));
    let answers = futures::future::join_all(tries).await;
    let ids: std::collections::HashSet<&str> = answers.iter().map(|(_, _, a)| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(h.get("/v1/messages").await["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_must_be_one_of_the_tenants_numbers_or_sender_ids() {
    let h = gateway().await;
    let e = h
        .post("/v1/messages", json!({"to": CUSTOMER, "from": "+15559999999", "message": "x"}), StatusCode::FORBIDDEN)
        .await;
    assert_eq!(error_of(&e), ("SENDER_NOT_ALLOWED", Some("from")));
    let e =
        h.post("/v1/messages", json!({"to": CUSTOMER, "from": "ACME", "message": "x"}), StatusCode::FORBIDDEN).await;
    assert_eq!(error_of(&e), ("SENDER_NOT_ALLOWED", Some("from")));

    for bad in ["", "TWELVECHARSX", "12345", "AC-ME"] {
        let e = h.post("/v1/sender-ids", json!({"sender_id": bad}), StatusCode::BAD_REQUEST).await;
        assert_eq!(error_of(&e), ("INVALID_SENDER_ID", Some("sender_id")), "{bad:?}");
    }
    // Asked for, then approved by the operator.
    h.post("/v1/sender-ids", json!({"sender_id": "ACME"}), StatusCode::ACCEPTED).await;
    h.post("/v1/sender-ids", json!({"sender_id": "ACME"}), StatusCode::CONFLICT).await;
    let (s, _) = h.admin(Method::POST, &format!("/admin/v1/tenants/{}/sender-ids/ACME/approve", h.tenant), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    h.post("/v1/messages", json!({"to": CUSTOMER, "from": "ACME", "message": "From a name"}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(h.sent(1).await[0].from, "ACME");

    h.post("/v1/numbers", json!({"number": "+1 555 000 2222"}), StatusCode::CREATED).await;
    let e = h.post("/v1/numbers", json!({"number": NUMBER}), StatusCode::CONFLICT).await;
    assert_eq!(error_of(&e), ("NUMBER_TAKEN", Some("number")));
    let senders = h.get("/v1/numbers").await;
    assert_eq!(senders["sender_ids"], json!(["ACME"]));
    let numbers: Vec<&str> =
        senders["numbers"].as_array().unwrap().iter().map(|n| n["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, [NUMBER, "+15550002222"]);
    h.post("/v1/messages", json!({"to": CUSTOMER, "from": "+15550002222", "message": "x"}), StatusCode::ACCEPTED).await;

    let (s, _) = h.call(Method::DELETE, "/v1/sender-ids/ACME", None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    h.post("/v1/messages", json!({"to": CUSTOMER, "from": "ACME", "message": "x"}), StatusCode::FORBIDDEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_lookup_validates_and_describes() {
    let h = gateway().await;
    let uk = h.get("/v1/numbers/%2B447400123456").await;
    assert_eq!(uk["valid"], true);
    assert_eq!(uk["e164"], "+447400123456");
    assert_eq!(uk["country"], "GB");
    assert_eq!(uk["country_code"], 44);
    assert_eq!(uk["type"], "mobile");
    let us = h.get("/v1/numbers/+1%20(202)%20555-0123").await;
    assert_eq!(us["e164"], "+12025550123");
    assert_eq!(us["country_code"], 1);
    let bad = h.get("/v1/numbers/12").await;
    assert_eq!((bad["valid"].as_bool(), bad["possible"].as_bool()), (Some(false), Some(false)));
    assert!(bad.get("e164").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_fill_placeholders_and_refuse_missing_ones() {
    let h = gateway().await;
    let t = h
        .post(
            "/v1/templates",
            json!({"name": "otp", "body": "Hi {{name}}, your code is {{ code }}."}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(t["variables"], json!(["name", "code"]));
    let e = h.post("/v1/templates", json!({"name": "bad name", "body": "x"}), StatusCode::BAD_REQUEST).await;
    assert_eq!(error_of(&e).1, Some("name"));
    let e = h.post("/v1/templates", json!({"name": "broken", "body": "Hi {{name"}), StatusCode::BAD_REQUEST).await;
    assert_eq!(error_of(&e), ("INVALID_TEMPLATE", Some("body")));

    h.post(
        "/v1/messages",
        json!({"to": CUSTOMER, "template": {"name": "otp", "vars": {"name": "Ann", "code": 4711}}}),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(h.sent(1).await[0].body, "Hi Ann, your code is 4711.");
    let e = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "template": {"name": "otp", "vars": {"name": "Ann"}}}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e), ("TEMPLATE_VARIABLE_MISSING", Some("template.vars.code")));
    let e =
        h.post("/v1/messages", json!({"to": CUSTOMER, "template": {"name": "nope"}}), StatusCode::BAD_REQUEST).await;
    assert_eq!(error_of(&e), ("TEMPLATE_NOT_FOUND", Some("template.name")));
    let e = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "x", "template": {"name": "otp"}}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e).0, "INVALID_FIELD");

    assert_eq!(h.get("/v1/templates").await["data"].as_array().unwrap().len(), 1);
    assert_eq!(h.get("/v1/templates/otp").await["body"], "Hi {{name}}, your code is {{ code }}.");
    let (s, _) = h.call(Method::DELETE, "/v1/templates/otp", None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.call(Method::GET, "/v1/templates/otp", None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_wait_survive_a_restart_and_can_be_cancelled() {
    let h = gateway().await;
    let now = h.clock.now();
    let e = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "x", "schedule_time": (now - chrono::Duration::minutes(1)).to_rfc3339()}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e), ("INVALID_SCHEDULE_TIME", Some("schedule_time")));
    let e = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "x", "schedule_time": (now + chrono::Duration::days(367)).to_rfc3339()}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e), ("INVALID_SCHEDULE_TIME", Some("schedule_time")));
    let e = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "x", "schedule_time": "tomorrow"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_of(&e), ("INVALID_SCHEDULE_TIME", Some("schedule_time")));

    let at = |hours| (now + chrono::Duration::hours(hours)).to_rfc3339();
    let kept = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "See you at 5", "schedule_time": at(1)}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(kept["status"], "scheduled");
    let dropped = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "Never", "schedule_time": at(1)}), StatusCode::ACCEPTED)
        .await;
    let dropped_id = dropped["id"].as_str().unwrap();
    let (s, cancelled) = h.call(Method::DELETE, &format!("/v1/messages/{dropped_id}"), None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let (s, again) = h.call(Method::DELETE, &format!("/v1/messages/{dropped_id}"), None, Some(&h.key)).await;
    assert_eq!((s, error_of(&again).0), (StatusCode::CONFLICT, "MESSAGE_NOT_CANCELLABLE"));

    let h = h.restart().await;
    let mut watch = h.watch();
    h.clock.advance(Duration::from_secs(3601));
    let kept_id = kept["id"].as_str().unwrap();
    watch.message_status(kept_id, "delivered").await;
    let sent = h.sim().sent();
    assert_eq!(sent.len(), 1, "the cancelled message never left");
    assert_eq!(sent[0].body, "See you at 5");
    let view = h.get(&format!("/v1/messages/{kept_id}")).await;
    let history: Vec<String> =
        view["history"].as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(history, ["scheduled", "sending", "sent", "delivered"], "{view}");
    let (s, e) = h.call(Method::DELETE, &format!("/v1/messages/{kept_id}"), None, Some(&h.key)).await;
    assert_eq!((s, error_of(&e).0), (StatusCode::CONFLICT, "MESSAGE_NOT_CANCELLABLE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balance_pays_for_sends_and_refuses_overdrafts() {
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(|s| {
            s.admin_token = Some(Secret::new("operator-token"));
            s.pricing = PricingSettings { per_segment: "0.01".into(), ..Default::default() };
            s.pricing.prefixes.insert("+44".into(), "0.05".into());
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let e = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "x"}), StatusCode::PAYMENT_REQUIRED).await;
    assert_eq!(error_of(&e).0, "INSUFFICIENT_BALANCE");

    let (s, e) = h
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/credits", h.tenant),
            Some(json!({"amount": "1"})),
            Some("wrong"),
        )
        .await;
    assert_eq!((s, error_of(&e).0), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    let (s, b) = h
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/credits", h.tenant),
            Some(json!({"amount": "0.07", "note": "top-up"})),
            Some("operator-token"),
        )
        .await;
    assert_eq!((s, b["balance"].as_str()), (StatusCode::OK, Some("0.07")));

    // 2 segments to +1 cost 0.02; 1 segment to +44 costs 0.05; then 0.00 is left.
    let a = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "a".repeat(161)}), StatusCode::ACCEPTED).await;
    assert_eq!(a["price"], "0.02");
    let a = h.post("/v1/messages", json!({"to": "+447911123456", "message": "hi"}), StatusCode::ACCEPTED).await;
    assert_eq!(a["price"], "0.05");
    let e = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "one more"}), StatusCode::PAYMENT_REQUIRED).await;
    assert_eq!(error_of(&e).0, "INSUFFICIENT_BALANCE");
    let account = h.get("/v1/account").await;
    assert_eq!((account["balance"].as_str(), account["currency"].as_str()), (Some("0.00"), Some("USD")));

    // A plugin's reply is refused too: the plugin sees quota-exceeded.
    let mut watch = h.watch();
    h.inbound(CUSTOMER, "HOURS").await;
    let Some(switchboard::pipeline::Notification::EventSettled { event_id, .. }) = Some(
        watch.until(|n| matches!(n, switchboard::pipeline::Notification::EventSettled { status: "dead", .. })).await,
    ) else {
        unreachable!()
    };
    let event = h.get(&format!("/v1/plugins/keyword-reply/events/{event_id}")).await;
    assert!(event["last_error"].as_str().unwrap().contains("insufficient balance"), "{event}");

    let ledger = h.get("/v1/account/ledger").await;
    let amounts: Vec<&str> = ledger["data"].as_array().unwrap().iter().map(|l| l["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["-0.05", "-0.02", "0.07"]);
    assert_eq!(ledger["data"][2]["note"], "top-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_scheduled_message_refunds_it() {
    let h = harness()
        .plugins(&[])
        .settings(|s| s.pricing = PricingSettings { per_segment: "0.10".into(), ..Default::default() })
        .start()
        .await;
    h.app.control.credit(&h.tenant, 1_000_000, "start").await.unwrap();
    let at = (h.clock.now() + chrono::Duration::hours(2)).to_rfc3339();
    let a = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "later", "schedule_time": at}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(h.get("/v1/account").await["balance"], "0.90");
    let (s, _) =
        h.call(Method::DELETE, &format!("/v1/messages/{}", a["id"].as_str().unwrap()), None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get("/v1/account").await["balance"], "1.00");
    let kinds: Vec<String> = h.get("/v1/account/ledger").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["refund", "debit", "credit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_keys_send_only_to_the_sandbox_whose_magic_numbers_simulate_outcomes() {
    let h = harness()
        .plugins(&[])
        .settings(|s| s.pricing = PricingSettings { per_segment: "0.01".into(), ..Default::default() })
        .start()
        .await;
    let test_key = h.app.control.create_api_key(&h.tenant, KeyMode::Test, Some("ci")).await.unwrap();
    assert!(test_key.starts_with("sk_test_"));
    let mut watch = h.watch();
    let send = |to: &'static str| {
        let key = test_key.clone();
        let h = &h;
        async move {
            let (s, _, a) =
                h.call_with(Method::POST, "/v1/messages", Some(json!({"to": to, "message": "test"})), &key, &[]).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{a}");
            assert_eq!(a["price"], "0.00", "test messages are free");
            a["id"].as_str().unwrap().to_string()
        }
    };
    let delivered = send("+15550100001").await;
    let undelivered = send("+15550100002").await;
    let invalid = send("+15550100003").await;
    watch.message_statuses(&[(&delivered, "delivered"), (&undelivered, "undelivered"), (&invalid, "failed")]).await;
    let get = |id: String| {
        let h = &h;
        async move { h.get(&format!("/v1/messages/{id}")).await }
    };
    assert_eq!(get(undelivered).await["error_code"], "30003");
    let failed = get(invalid).await;
    assert_eq!(
        (failed["error_code"].as_str(), failed["mode"].as_str(), failed["connector"].as_str()),
        (Some("21211"), Some("test"), Some("sandbox"))
    );
    assert!(h.sim().sent().is_empty(), "nothing reached a real connector");
    assert_eq!(h.sandbox().sent().len(), 2);
    let page = h.get("/v1/messages?mode=test").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    // A test key cannot mint live keys.
    let (s, _, e) = h.call_with(Method::POST, "/v1/keys", Some(json!({"mode": "live"})), &test_key, &[]).await;
    assert_eq!((s, error_of(&e).0), (StatusCode::FORBIDDEN, "TEST_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_revoked_keys_stop_working() {
    let h = gateway().await;
    let created = h.post("/v1/keys", json!({"label": "new"}), StatusCode::CREATED).await;
    let new_key = created["key"].as_str().unwrap().to_string();
    let keys = h.get("/v1/keys").await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
    assert!(!keys.to_string().contains(&new_key), "secrets are never listed");
    let old_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _, _) = h.call_with(Method::DELETE, &format!("/v1/keys/{old_id}"), None, &new_key, &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.call(Method::GET, "/v1/messages", None, Some(&h.key)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = h.call_with(Method::GET, "/v1/messages", None, &new_key, &[]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_reports_usage_per_day() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let mut watch = h.watch();
    let a = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "я".repeat(150)}), StatusCode::ACCEPTED).await;
    watch.message_status(a["id"].as_str().unwrap(), "delivered").await;
    h.inbound(CUSTOMER, "HOURS").await;
    h.sent(2).await;
    let account = h.get("/v1/account?days=1").await;
    let today = h.clock.now().format("%Y-%m-%d").to_string();
    let usage = account["usage"].as_array().unwrap();
    assert!(usage.iter().all(|u| u["date"] == today.as_str()));
    let inbound = usage.iter().find(|u| u["direction"] == "inbound").unwrap();
    assert_eq!((inbound["messages"].as_i64(), inbound["status"].as_str()), (Some(1), Some("received")));
    let outbound: i64 =
        usage.iter().filter(|u| u["direction"] == "outbound").map(|u| u["messages"].as_i64().unwrap()).sum();
    let segments: i64 =
        usage.iter().filter(|u| u["direction"] == "outbound").map(|u| u["segments"].as_i64().unwrap()).sum();
    assert_eq!((outbound, segments), (2, 3 + 1));
    let (s, e) = h.call(Method::GET, "/v1/account?days=0", None, Some(&h.key)).await;
    assert_eq!((s, error_of(&e)), (StatusCode::BAD_REQUEST, ("INVALID_PARAMETER", Some("days"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_see_or_cancel_another_tenants_messages() {
    let h = gateway().await;
    let other = h.app.control.create_tenant("Other").await.unwrap();
    h.app.control.add_number(&other, "+15550003333", "simulator", true).await.unwrap();
    let other_key = h.app.control.create_api_key(&other, KeyMode::Live, None).await.unwrap();
    let at = (h.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let mine = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "mine", "schedule_time": at}), StatusCode::ACCEPTED)
        .await;
    let id = mine["id"].as_str().unwrap();
    h.post("/v1/templates", json!({"name": "private", "body": "secret"}), StatusCode::CREATED).await;
    for (method, uri) in [
        (Method::GET, format!("/v1/messages/{id}")),
        (Method::DELETE, format!("/v1/messages/{id}")),
        (Method::GET, format!("/v1/messages/{id}/webhooks")),
        (Method::GET, "/v1/templates/private".to_string()),
    ] {
        let (s, _, b) = h.call_with(method.clone(), &uri, None, &other_key, &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}: {b}");
    }
    let (s, _, e) = h
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(json!({"to": CUSTOMER, "from": NUMBER, "message": "spoof"})),
            &other_key,
            &[],
        )
        .await;
    assert_eq!((s, error_of(&e).0), (StatusCode::FORBIDDEN, "SENDER_NOT_ALLOWED"));
    let (_, _, e) = h
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(json!({"to": CUSTOMER, "template": {"name": "private"}})),
            &other_key,
            &[],
        )
        .await;
    assert_eq!(error_of(&e).0, "TEMPLATE_NOT_FOUND");
    let (_, _, page) = h.call_with(Method::GET, "/v1/messages", None, &other_key, &[]).await;
    assert_eq!(page["data"], json!([]));
    assert_eq!(h.get(&format!("/v1/messages/{id}")).await["status"], "scheduled", "still scheduled");
}

/// Plugins' sends check a recently read balance; when it has since been
/// spent, the commit's debit refuses, the invocation runs again on the real
/// balance, and the plugin is refused. Exactly one reply is paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_spent_since_a_plugin_read_it_still_refuses_the_send() {
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(|s| {
            s.admin_token = Some(Secret::new("operator-token"));
            s.pricing = PricingSettings { per_segment: "0.01".into(), ..Default::default() };
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let (s, _) = h
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/credits", h.tenant),
            Some(json!({"amount": "0.01"})),
            Some("operator-token"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let mut watch = h.watch();
    h.inbound(CUSTOMER, "HOURS").await;
    watch.until(|n| matches!(n, switchboard::pipeline::Notification::EventSettled { status: "done", .. })).await;
    h.inbound(CUSTOMER, "HOURS").await;
    let Some(switchboard::pipeline::Notification::EventSettled { event_id, .. }) = Some(
        watch.until(|n| matches!(n, switchboard::pipeline::Notification::EventSettled { status: "dead", .. })).await,
    ) else {
        unreachable!()
    };
    let event = h.get(&format!("/v1/plugins/keyword-reply/events/{event_id}")).await;
    assert!(event["last_error"].as_str().unwrap().contains("insufficient balance"), "{event}");
    let ledger = h.get("/v1/account/ledger").await;
    let amounts: Vec<&str> = ledger["data"].as_array().unwrap().iter().map(|l| l["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["-0.01", "0.01"]);
    assert_eq!(h.get("/v1/account").await["balance"], "0.00");
}

/// A send request as the API hands it to the store: one message of `price`
/// micros, scheduled an hour ahead (so that it stays in the outbox).
fn send_request(h: &Harness, price: i64, key: Option<&str>) -> switchboard::store::OutboundRequest {
    use switchboard::store::*;
    let now = h.app.engine.clock.now_ms();
    OutboundRequest {
        tenant_id: h.tenant.clone(),
        messages: vec![NewMessage {
            status: MessageStatus::Scheduled,
            scheduled_at: Some(now + 3_600_000),
            price,
            ..new_message(h, Direction::Outbound)
        }],
        idempotency: key.map(|k| IdempotencyRecord {
            key: k.into(),
            request_hash: format!("hash of {k}"),
            status: 202,
            response: "{}".into(),
        }),
        lease: Lease { owner: "node".into(), until: 0 },
    }
}

/// The store writes a batch of send requests at once when none of them is
/// refused, and request by request when one is (a key used twice, a debit
/// the balance cannot cover): each request gets the answer it would get
/// alone, and the ledger records every debit with the balance after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_sends_is_written_at_once_or_request_by_request_with_the_same_answers() {
    use switchboard::store::OutboundResult;
    let h = harness().plugins(&[]).settings(|s| s.admin_token = Some(Secret::new("operator-token"))).start().await;
    let (s, b) = h
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/credits", h.tenant),
            Some(json!({"amount": "0.10"})),
            Some("operator-token"),
        )
        .await;
    assert_eq!((s, b["balance"].as_str()), (StatusCode::OK, Some("0.10")), "{b}");
    let db = &h.app.engine.db;
    let accepted = |r: &OutboundResult| matches!(r, OutboundResult::Accepted { .. });

    // Nothing refused: all accepted, 0.01 + 0.02 debited.
    let batch = [send_request(&h, 10_000, None), send_request(&h, 20_000, Some("k1"))];
    let results = db.insert_outbound(&batch).await.unwrap();
    assert!(results.iter().all(accepted), "{results:?}");

    // A key used twice in the batch, a key used before, and a debit over
    // what is left: each refused alone, the others accepted.
    let batch = [
        send_request(&h, 30_000, Some("k2")),
        send_request(&h, 10_000, Some("k2")),
        send_request(&h, 10_000, Some("k1")),
        send_request(&h, 50_000, None),
        send_request(&h, 20_000, None),
    ];
    let results = db.insert_outbound(&batch).await.unwrap();
    assert!(accepted(&results[0]), "{results:?}");
    assert!(matches!(results[1], OutboundResult::Duplicate), "{results:?}");
    assert!(matches!(results[2], OutboundResult::Duplicate), "{results:?}");
    assert!(
        matches!(results[3], OutboundResult::InsufficientBalance { balance: 40_000, needed: 50_000 }),
        "{results:?}"
    );
    assert!(accepted(&results[4]), "{results:?}");

    let ledger = h.get("/v1/account/ledger?limit=100").await;
    let mut debits: Vec<(String, String)> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "debit")
        .map(|e| (e["amount"].as_str().unwrap().to_string(), e["balance_after"].as_str().unwrap().to_string()))
        .collect();
    debits.sort_by(|a, b| b.1.cmp(&a.1));
    let expected = [("-0.01", "0.09"), ("-0.02", "0.07"), ("-0.03", "0.04"), ("-0.02", "0.02")];
    assert_eq!(debits, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(h.get("/v1/account").await["balance"], "0.02");
    let scheduled = h.get("/v1/messages?status=scheduled&limit=100").await;
    assert_eq!(scheduled["data"].as_array().unwrap().len(), 4, "{scheduled}");
}

/// One writer cycle commits every kind of work it holds: in one
/// transaction on SQLite, each kind in its own on PostgreSQL. A kind that
/// fails is undone alone (the whole kind, not only the item that failed)
/// while the others commit; alone in a SQLite cycle, its failure is the
/// cycle's. The writer answers the callers of a failed kind with the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cycle_commits_every_kind_it_holds_and_undoes_only_the_kind_that_failed() {
    use switchboard::store::cycle::{SendingMarks, WriteCycle};
    use switchboard::store::*;
    let h = gateway().await;
    let db = &h.app.engine.db;
    let lease = Lease { owner: "node".into(), until: 0 };
    let inbound = |message: NewMessage| NewInbound {
        message,
        events: vec![],
        lease: lease.clone(),
        consumes_parts: None,
        consent: None,
        confirmation: None,
        confirmations_per_hour: 0,
        provider_id: None,
    };
    let status_of = |id: String| {
        let h = &h;
        async move { h.call(Method::GET, &format!("/v1/messages/{id}"), None, Some(&h.key)).await.0 }
    };
    let taken = new_message(&h, Direction::Inbound);
    let results = db.insert_inbound(&[inbound(taken.clone())]).await.unwrap();
    assert_eq!(results, [InboundOutcome::Inserted { confirmed: false }]);

    // Inbound messages, one of them under an id already stored (the other
    // records its carrier id before that fails); a send; a mark for a
    // message no node holds.
    let fresh = NewMessage { connector: Some("simulator".into()), ..new_message(&h, Direction::Inbound) };
    let from_carrier = |message: NewMessage| NewInbound { provider_id: Some("carrier-1".into()), ..inbound(message) };
    let send = send_request(&h, 0, Some("cycle"));
    let cycle = WriteCycle {
        inbound: vec![from_carrier(fresh.clone()), inbound(taken.clone())],
        outbound: vec![send.clone()],
        sending: vec![SendingMarks { message_ids: vec!["msg_nobody".into()], at: 0, lease: lease.clone() }],
        ..Default::default()
    };
    let results = db.write_cycle(&cycle).await;
    // SQLite writes the kinds in one transaction; PostgreSQL each in its own.
    assert!(results.committed);
    assert_eq!(results.kinds_alone, !db.single_writer());
    assert!(results.inbound.is_err());
    assert!(matches!(results.outbound.as_deref(), Ok([OutboundResult::Accepted { .. }])));
    assert_eq!(results.sending.len(), 1);
    assert_eq!(results.sending[0].as_deref().ok(), Some(&[][..]));
    assert_eq!(status_of(fresh.id.clone()).await, StatusCode::NOT_FOUND, "undone with its kind");
    assert_eq!(status_of(send.messages[0].id.clone()).await, StatusCode::OK, "committed beside it");

    // Alone in its cycle, the failing kind fails the cycle (or, written
    // alone anyway, its own transaction).
    let cycle = WriteCycle { inbound: vec![from_carrier(fresh.clone()), inbound(taken.clone())], ..Default::default() };
    let results = db.write_cycle(&cycle).await;
    assert_eq!(results.committed, !db.single_writer());
    assert!(results.inbound.is_err());
    assert_eq!(status_of(fresh.id.clone()).await, StatusCode::NOT_FOUND);

    // The pipeline's writer: the error reaches the caller; what is right commits.
    let writer = &h.app.engine.pipeline.writer;
    assert!(writer.inbound(inbound(taken.clone())).await.is_err());
    // Nothing of the failed kind stayed behind: its carrier id is not taken.
    let again = NewMessage { connector: Some("simulator".into()), ..new_message(&h, Direction::Inbound) };
    assert_eq!(
        writer.inbound(from_carrier(again.clone())).await.unwrap(),
        InboundOutcome::Inserted { confirmed: false }
    );
    assert_eq!(status_of(again.id.clone()).await, StatusCode::OK);
    assert_eq!(status_of(fresh.id.clone()).await, StatusCode::NOT_FOUND);
}
