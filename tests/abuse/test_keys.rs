//! Edge 3: test keys are a sandbox. They read, and send through the
//! sandbox; anything that changes live configuration is 403 `TEST_KEY`;
//! events and made-up inbound messages they cause run the plugins in test
//! mode, whose sends are free test messages that never reach a carrier.

use super::*;
use serde_json::json;
use switchboard::secrets::KeyMode;

async fn test_key(h: &Harness) -> String {
    h.app.control.create_api_key(&h.tenant, KeyMode::Test, Some("ci")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_key_cannot_change_live_configuration() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let key = test_key(&h).await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let (status, answer) = h.deploy(&key, &manifest.replace("0.1.0", "0.1.1"), &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "TEST_KEY"), "deploy: {answer}");
    let refused: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/v1/numbers", Some(json!({"number": "+15550001234"}))),
        (Method::POST, "/v1/sender-ids", Some(json!({"sender_id": "Acme"}))),
        (Method::DELETE, "/v1/sender-ids/Acme", None),
        (Method::POST, "/v1/templates", Some(json!({"name": "t", "body": "hi"}))),
        (Method::DELETE, "/v1/templates/t", None),
        (Method::PUT, "/v1/account/webhook", Some(json!({"url": "https://hooks.example.com/x"}))),
        (Method::POST, "/v1/account/webhook/secret", None),
        (Method::POST, "/v1/keys", Some(json!({"mode": "test"}))),
        (Method::DELETE, "/v1/keys/key_x", None),
        (Method::PUT, "/v1/routes", Some(json!({"routes": []}))),
        (Method::POST, "/v1/plugins/keyword-reply/rollback", Some(json!({}))),
        (Method::POST, "/v1/plugins/keyword-reply/disable", None),
        (Method::POST, "/v1/plugins/keyword-reply/enable", None),
        (Method::PUT, "/v1/plugins/keyword-reply/config", Some(json!({"config": {"replies": {}}}))),
        (Method::PUT, "/v1/compliance", Some(json!({}))),
        (Method::POST, "/v1/opt-outs", Some(json!({"recipients": [CUSTOMER]}))),
    ];
    for (method, uri, body) in refused {
        let (status, answer) = h.call(method.clone(), uri, body, Some(&key)).await;
        assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "TEST_KEY"), "{method} {uri}: {answer}");
    }
    // Reading works.
    for uri in ["/v1/numbers", "/v1/plugins", "/v1/account", "/v1/routes", "/v1/compliance", "/v1/messages"] {
        let (status, answer) = h.call(Method::GET, uri, None, Some(&key)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {answer}");
    }
    assert_eq!(h.get("/v1/plugins").await["data"][0]["status"], "active", "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_posted_with_a_test_key_runs_its_plugin_in_test_mode() {
    let h =
        harness().plugins(&["order-notifications"]).settings(|s| s.pricing.per_segment = "0.05".into()).start().await;
    h.app.control.credit(&h.tenant, 10_000_000, "test").await.unwrap();
    let key = test_key(&h).await;
    let mut watch = h.watch();
    let body = json!({"name": "order.shipped", "payload": {"id": "7", "phone": CUSTOMER, "tracking_url": "https://t.example/7"}});
    let (status, answer) = h.call(Method::POST, "/v1/events/order-notifications", Some(body), Some(&key)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let sent = tokio::time::timeout(GUARD, h.sandbox().wait_for(1)).await.expect("the sandbox got the send");
    assert_eq!(sent[0].to, CUSTOMER);
    let id = sent[0].message_id.clone();
    watch.message_status(&id, "delivered").await;
    let m = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!((m["mode"].as_str(), m["price"].as_str()), (Some("test"), Some("0.00")), "{m}");
    assert!(h.sim().sent().is_empty(), "no live connector saw it");
    assert_eq!(h.get("/v1/account").await["balance"], "10.00", "nothing charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_inbound_runs_plugins_in_test_mode_and_changes_no_consent() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let key = test_key(&h).await;
    let body = json!({"from": CUSTOMER, "to": NUMBER, "message": "HOURS"});
    let (status, answer) = h.call(Method::POST, "/v1/sandbox/inbound", Some(body), Some(&key)).await;
    assert_eq!((status, answer["mode"].as_str()), (StatusCode::OK, Some("test")), "{answer}");
    let reply = tokio::time::timeout(GUARD, h.sandbox().wait_for(1)).await.unwrap().remove(0);
    assert_eq!(reply.body, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
    let body = json!({"from": CUSTOMER, "to": NUMBER, "message": "STOP"});
    let (status, _) = h.call(Method::POST, "/v1/sandbox/inbound", Some(body), Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::timeout(GUARD, h.sandbox().wait_for(2)).await.unwrap();
    assert_eq!(h.get("/v1/opt-outs").await["data"], json!([]), "a made-up STOP opts no one out");
    assert!(h.sim().sent().is_empty());
    // Only the tenant's own numbers.
    let body = json!({"from": CUSTOMER, "to": "+15559990000", "message": "HOURS"});
    let (status, answer) = h.call(Method::POST, "/v1/sandbox/inbound", Some(body), Some(&key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, "UNKNOWN_NUMBER"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_key_cannot_cancel_a_live_message() {
    let h = harness().plugins(&[]).start().await;
    let key = test_key(&h).await;
    let at = (h.clock.now() + chrono::Duration::hours(2)).to_rfc3339();
    let m = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "later", "schedule_time": at}), StatusCode::ACCEPTED)
        .await;
    let id = m["id"].as_str().unwrap();
    let (status, answer) = h.call(Method::DELETE, &format!("/v1/messages/{id}"), None, Some(&key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "TEST_KEY"), "{answer}");
    assert_eq!(h.get(&format!("/v1/messages/{id}")).await["status"], "scheduled");
}
