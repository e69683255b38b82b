//! The HTTP API's errors, authentication, tenant isolation and paging.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use switchboard::secrets::KeyMode;

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inbound_webhooks_get_clear_errors_and_persist_nothing() {
    let h = harness().start().await;
    let post = |body: &'static str, content_type: &'static str| {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/inbound/generic")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        raw(&h.app, req)
    };
    let (s, b) = post("{not json", "application/json").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_JSON", None);
    let (s, b) = post(r#"{"to":"+15550000000","message":"HOURS"}"#, "application/json").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("from"));
    let (s, b) = post(r#"{"from":"+15551234567","to":"+15550000000","message":7}"#, "application/json").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("message"));
    let (s, b) = post(r#"{"from":"hello","to":"+15550000000","message":"HOURS"}"#, "application/json").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PHONE_NUMBER", Some("from"));
    let (s, b) = post(r#"{"from":"+15551234567","to":"+15559990000","message":"HOURS"}"#, "application/json").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "UNKNOWN_NUMBER", Some("to"));
    let (s, b) = post("from=1", "application/x-www-form-urlencoded").await;
    assert_error(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", None);

    let page = h.get("/v1/messages").await;
    assert_eq!(page["data"], json!([]), "nothing was persisted");
    assert!(h.sim().sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_and_checked() {
    let h = harness().plugins(&[]).start().await;
    let (s, b) = h.call(Method::GET, "/v1/messages", None, None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    let (s, b) = h.call(Method::GET, "/v1/messages", None, Some("sk_live_notarealkey")).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    let req = Request::builder().uri("/v1/messages").header("x-api-key", &h.key).body(Body::empty()).unwrap();
    let (s, _) = raw(&h.app, req).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = h.call(Method::GET, "/v1/nothing-here", None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_a_deployed_plugin_and_a_subscribed_event() {
    let h = harness().start().await;
    let (s, b) = h.call(Method::POST, "/v1/events/nope", Some(json!({"name": "x"})), Some(&h.key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND", None);
    let (s, b) = h
        .call(Method::POST, "/v1/events/order-notifications", Some(json!({"name": "invoice.paid"})), Some(&h.key))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "EVENT_NOT_SUBSCRIBED", Some("name"));
    let (s, b) =
        h.call(Method::POST, "/v1/events/order-notifications", Some(json!({"payload": {}})), Some(&h.key)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("name"));
    let (s, b) = h.call(Method::GET, "/v1/plugins/order-notifications/events/evt_unknown", None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "EVENT_NOT_FOUND", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_read_another_tenants_messages_or_events() {
    let h = harness().start().await;
    let other = h.app.control.create_tenant("Other").await.unwrap();
    h.app.control.add_number(&other, "+15550001111", "simulator", true).await.unwrap();
    let other_key = h.app.control.create_api_key(&other, KeyMode::Live, None).await.unwrap();

    let mut watch = h.watch();
    let inbound = h.inbound(CUSTOMER, "HOURS").await;
    let sent = h.sent(1).await;
    let event = h.event("order-notifications", "order.created", json!({"id": "1", "phone": CUSTOMER})).await;
    watch.events_settled("done", 2).await;

    for uri in [
        format!("/v1/messages/{inbound}"),
        format!("/v1/messages/{}", sent[0].message_id),
        format!("/v1/plugins/order-notifications/events/{event}"),
    ] {
        let (s, b) = h.call(Method::GET, &uri, None, Some(&other_key)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {b}");
    }
    let (s, page) = h.call(Method::GET, "/v1/messages", None, Some(&other_key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["data"], json!([]));
    // The other tenant has no plugin of that name either.
    let (s, _) = h
        .call(Method::POST, "/v1/events/order-notifications", Some(json!({"name": "order.created"})), Some(&other_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_lists_filter_and_page_with_cursors() {
    let h = harness().plugins(&[]).start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(h.inbound(&format!("+1555123000{i}"), "hello").await);
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/messages?direction=inbound&limit=2".to_string();
    loop {
        let page = h.get(&uri).await;
        for m in page["data"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/messages?direction=inbound&limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");

    let page = h.get("/v1/messages?from=%2B15551230003").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let page = h.get("/v1/messages?status=received").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    let hour_ago = (h.clock.now() - chrono::Duration::hours(1)).to_rfc3339().replace('+', "%2B");
    let in_an_hour = (h.clock.now() + chrono::Duration::hours(1)).to_rfc3339().replace('+', "%2B");
    assert_eq!(
        h.get(&format!("/v1/messages?since={hour_ago}&until={in_an_hour}")).await["data"].as_array().unwrap().len(),
        5
    );
    assert_eq!(h.get(&format!("/v1/messages?since={in_an_hour}")).await["data"], json!([]));
    let page = h.get("/v1/messages?direction=outbound").await;
    assert_eq!(page["data"], json!([]));
    let (s, b) = h.call(Method::GET, "/v1/messages?direction=sideways", None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("direction"));
    let (s, b) = h.call(Method::GET, "/v1/messages?since=yesterday", None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("since"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_what_their_text_contains() {
    let h = harness().plugins(&[]).start().await;
    let refund = h.inbound("+15551230001", "Where is my REFUND?").await;
    let percent = h.inbound("+15551230002", "100% sure, order_7").await;
    h.inbound("+15551230003", "hello").await;
    let found = |uri: &'static str| {
        let h = &h;
        async move {
            let page = h.get(uri).await;
            page["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("/v1/messages?text=refund").await, vec![refund.clone()], "ignoring case");
    assert_eq!(found("/v1/messages?text=my%20Refund&direction=inbound").await, vec![refund]);
    // LIKE's wildcards match only themselves.
    assert_eq!(found("/v1/messages?text=100%25").await, vec![percent.clone()]);
    assert_eq!(found("/v1/messages?text=order_").await, vec![percent]);
    assert_eq!(found("/v1/messages?text=%25").await.len(), 1);
    assert_eq!(found("/v1/messages?text=_").await.len(), 1);
    assert_eq!(found("/v1/messages?text=nothing%20like%20it").await, Vec::<String>::new());
    let long = format!("/v1/messages?text={}", "x".repeat(101));
    let (s, b) = h.call(Method::GET, &long, None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("text"));
    let (s, b) = h.call(Method::GET, "/v1/messages?text=", None, Some(&h.key)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("text"));
}
