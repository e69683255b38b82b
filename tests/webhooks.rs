//! Signed delivery webhooks (received by a real HTTP server in the test),
//! rate limits, and the OpenAPI description.

mod common;

use axum::http::{HeaderMap, Method, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A webhook receiver: answers 500 to its first `failures` requests, then 200.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    arrived: Arc<Notify>,
    failures: usize,
}

impl Receiver {
    async fn start(failures: usize) -> (Receiver, String) {
        let r = Receiver { got: Arc::default(), arrived: Arc::default(), failures };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Receiver>, headers: HeaderMap, body: String| async move {
                    let n = {
                        let mut got = s.got.lock().unwrap();
                        got.push((headers, body));
                        got.len()
                    };
                    s.arrived.notify_waiters();
                    if n <= s.failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app.with_state(state)).await.unwrap() });
        (r, url)
    }

    /// Waits until `n` requests arrived.
    async fn requests(&self, n: usize) -> Vec<(HeaderMap, String)> {
        tokio::time::timeout(GUARD, async {
            loop {
                let notified = self.arrived.notified();
                {
                    let got = self.got.lock().unwrap();
                    if got.len() >= n {
                        return got.clone();
                    }
                }
                notified.await;
            }
        })
        .await
        .expect("webhooks arrived")
    }
}

/// Verifies `X-Switchboard-Signature` as the README tells tenants to.
fn verify(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap_or_default()).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_webhooks_are_signed_and_retried_after_a_500() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            s.webhooks_allow_private_addresses = true;
            s.limits.webhook_retry_base_ms = 20;
        })
        .start()
        .await;
    let (receiver, url) = Receiver::start(1).await;
    let secret = h.post("/v1/account/webhook/secret", json!({}), StatusCode::CREATED).await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"));
    let a = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "Tracked", "webhook_url": url, "reference": "order-7"}),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = a["id"].as_str().unwrap();

    // sending (refused with 500, then retried), sent and delivered: four requests.
    let got = receiver.requests(4).await;
    for (headers, body) in &got {
        let sig = headers["x-switchboard-signature"].to_str().unwrap();
        assert!(verify(&secret, sig, body), "signature {sig} must verify");
        assert!(!verify("whsec_wrong", sig, body));
    }
    let payloads: Vec<Value> = got.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    assert!(payloads.iter().all(|p| p["id"] == id && p["reference"] == "order-7" && p["timestamp"].is_string()));
    let statuses: Vec<&str> = payloads.iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains(&"sending") && statuses.contains(&"sent") && statuses.contains(&"delivered"),
        "{statuses:?}"
    );
    let first = &payloads[0];
    assert_eq!(payloads.iter().filter(|p| *p == first).count(), 2, "the refused one was retried: {payloads:?}");

    // The attempts are visible through the API.
    let deliveries = tokio::time::timeout(GUARD, async {
        loop {
            let d = h.get(&format!("/v1/messages/{id}/webhooks")).await;
            if d["data"].as_array().unwrap().iter().all(|x| x["status"] == "delivered") {
                return d;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let attempts: Vec<Vec<Value>> =
        deliveries["data"].as_array().unwrap().iter().map(|d| d["attempts"].as_array().unwrap().clone()).collect();
    assert!(
        attempts.iter().any(|a| a.len() == 2 && a[0]["status_code"] == 500 && a[1]["status_code"] == 200),
        "{deliveries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_private_addresses_are_refused_by_default() {
    let h = harness().plugins(&[]).settings(|s| s.limits.webhook_retry_window_s = 0).start().await;
    let (receiver, url) = Receiver::start(0).await;
    let (s, b) = h.call(Method::PUT, "/v1/account/webhook", Some(json!({"url": url})), Some(&h.key)).await;
    assert_eq!((s, b["url"].as_str()), (StatusCode::OK, Some(url.as_str())));
    let (s, e) = h.call(Method::PUT, "/v1/account/webhook", Some(json!({"url": "ftp://x"})), Some(&h.key)).await;
    assert_eq!((s, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("url")));
    let a = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "x"}), StatusCode::ACCEPTED).await;
    let id = a["id"].as_str().unwrap();
    let failed = tokio::time::timeout(GUARD, async {
        loop {
            let d = h.get(&format!("/v1/messages/{id}/webhooks")).await;
            let all = d["data"].as_array().unwrap().clone();
            if all.len() == 3 && all.iter().all(|x| x["status"] == "failed") {
                return all;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(
        failed[0]["attempts"][0]["error"].as_str().unwrap().contains("private, local or special-purpose address"),
        "{failed:?}"
    );
    assert!(receiver.got.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_show_in_headers_and_answer_429() {
    let h = harness().plugins(&[]).start().await;
    let settings = switchboard::directory::TenantSettings { requests_per_second: Some(3), ..Default::default() };
    h.app.control.update_tenant_settings(&h.tenant, &settings).await.unwrap();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (s, headers, _) = h.call_with(Method::GET, "/v1/messages", None, &h.key, &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert!(headers.contains_key("x-ratelimit-reset"));
        remaining.push(headers["x-ratelimit-remaining"].to_str().unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let (s, headers, e) = h.call_with(Method::GET, "/v1/messages", None, &h.key, &[]).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED")));
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(headers["x-ratelimit-remaining"], "0");

    // A daily allowance too, shared by all of a tenant's keys.
    let (tenant, first) = h.tenant("Daily", "+15550008888").await;
    let second = h.app.control.create_api_key(&tenant, switchboard::secrets::KeyMode::Live, None).await.unwrap();
    let daily = switchboard::directory::TenantSettings { requests_per_day: Some(2), ..Default::default() };
    h.app.control.update_tenant_settings(&tenant, &daily).await.unwrap();
    for (key, want) in [(&first, StatusCode::OK), (&second, StatusCode::OK), (&first, StatusCode::TOO_MANY_REQUESTS)] {
        let (s, headers, _) = h.call_with(Method::GET, "/v1/account", None, key, &[]).await;
        assert_eq!(s, want);
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(headers["x-ratelimit-limit"], "2");
            let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=86_400).contains(&retry));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    // Every operation is called with a bad key: more failed authentications
    // than an address may make in a minute, so raise that limit here.
    let h = harness().plugins(&[]).settings(|s| s.limits.failed_auth_per_minute = 10_000).start().await;
    let (s, spec) = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let documented = [
        ("post", "/v1/messages"),
        ("get", "/v1/messages"),
        ("post", "/v1/messages/batch"),
        ("get", "/v1/messages/{id}"),
        ("delete", "/v1/messages/{id}"),
        ("get", "/v1/messages/{id}/webhooks"),
        ("get", "/v1/numbers"),
        ("post", "/v1/numbers"),
        ("get", "/v1/numbers/{number}"),
        ("post", "/v1/numbers/{number}/verify"),
        ("get", "/v1/sender-ids"),
        ("post", "/v1/sender-ids"),
        ("post", "/v1/sandbox/inbound"),
        ("delete", "/v1/sender-ids/{sender_id}"),
        ("get", "/v1/templates"),
        ("post", "/v1/templates"),
        ("get", "/v1/templates/{name}"),
        ("delete", "/v1/templates/{name}"),
        ("get", "/v1/account"),
        ("get", "/v1/account/ledger"),
        ("get", "/v1/account/region"),
        ("put", "/v1/account/region"),
        ("get", "/v1/account/webhook"),
        ("put", "/v1/account/webhook"),
        ("post", "/v1/account/webhook/secret"),
        ("get", "/v1/keys"),
        ("post", "/v1/keys"),
        ("delete", "/v1/keys/{id}"),
        ("get", "/v1/routes"),
        ("put", "/v1/routes"),
        ("post", "/v1/events/{plugin}"),
        ("get", "/v1/plugins"),
        ("post", "/v1/plugins"),
        ("get", "/v1/plugins/{name}"),
        ("get", "/v1/plugins/{name}/logs"),
        ("get", "/v1/plugins/{name}/invocations"),
        ("post", "/v1/plugins/{name}/rollback"),
        ("post", "/v1/plugins/{name}/disable"),
        ("post", "/v1/plugins/{name}/enable"),
        ("put", "/v1/plugins/{name}/config"),
        ("post", "/v1/plugins/{name}/canary/promote"),
        ("post", "/v1/plugins/{name}/canary/rollback"),
        ("post", "/v1/plugins/{name}/replays"),
        ("get", "/v1/plugins/{name}/replays"),
        ("get", "/v1/plugins/{name}/replays/{id}"),
        ("get", "/v1/opt-outs"),
        ("post", "/v1/opt-outs"),
        ("get", "/v1/compliance"),
        ("put", "/v1/compliance"),
        ("get", "/v1/plugins/{name}/events/{id}"),
        ("get", "/v1/plugins/{name}/events"),
        ("post", "/v1/plugins/{name}/events/{id}/retry"),
        ("get", "/v1/plugins/{name}/kv"),
        ("get", "/v1/plugins/{name}/kv/{key}"),
        ("get", "/v1/plugins/{name}/timers"),
        ("post", "/v1/inbound/{connector}"),
        ("get", "/v1/inbound/{connector}"),
        ("post", "/v1/status/{connector}"),
        ("get", "/v1/status/{connector}"),
        ("post", "/admin/v1/tenants/{id}/credits"),
        ("post", "/admin/v1/tenants"),
        ("get", "/admin/v1/tenants"),
        ("get", "/admin/v1/tenants/{id}"),
        ("post", "/admin/v1/tenants/{id}/disable"),
        ("post", "/admin/v1/tenants/{id}/enable"),
        ("put", "/admin/v1/tenants/{id}/limits"),
        ("post", "/admin/v1/tenants/{id}/keys"),
        ("delete", "/admin/v1/tenants/{id}/keys/{key_id}"),
        ("post", "/admin/v1/tenants/{id}/numbers"),
        ("post", "/admin/v1/tenants/{id}/sender-ids"),
        ("post", "/admin/v1/tenants/{id}/sender-ids/{sender_id}/approve"),
        ("post", "/admin/v1/tenants/{id}/sender-ids/{sender_id}/reject"),
        ("get", "/admin/v1/connectors"),
        ("get", "/admin/v1/queues"),
        ("get", "/admin/v1/audit"),
    ];
    let paths = spec["paths"].as_object().unwrap();
    for (method, path) in documented {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not in /openapi.json");
    }
    // And every described operation is served (not the fallback's NOT_FOUND).
    let mut operations = 0;
    for (path, item) in paths {
        for method in
            item.as_object().unwrap().keys().filter(|m| ["get", "post", "put", "delete"].contains(&m.as_str()))
        {
            operations += 1;
            let uri = path.replace('{', "x").replace('}', "");
            let (_, _, body) = h
                .call_with(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &uri,
                    None,
                    "sk_live_invalid",
                    &[],
                )
                .await;
            assert_ne!(body["error"]["message"], "no such endpoint", "{method} {path} is described but not served");
        }
        let schema_refs = item.to_string();
        assert!(!schema_refs.contains("\"$ref\":\"#/components/schemas/\""), "dangling schema reference in {path}");
    }
    assert_eq!(operations, documented.len(), "undocumented operations in the spec or the list above");
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}
