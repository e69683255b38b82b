//! Edge 4: every tenant is bounded by default. Kv keys and bytes, pending
//! timers, sends per day and invocations per minute have defaults; one
//! invocation's kv writes, timers, sends and log bytes are capped. A timer
//! fork bomb, a kv flood and a log flood are stopped while another
//! tenant's replies keep coming.

use super::*;
use serde_json::json;
use switchboard::limits::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_has_safe_default_quotas() {
    let h = harness().plugins(&[]).start().await;
    let (status, t) = h.admin(Method::GET, &format!("/admin/v1/tenants/{}", h.tenant), None).await;
    assert_eq!(status, StatusCode::OK);
    let d = Limits::default();
    let q = &t["effective_quotas"];
    assert_eq!(q["sends_per_day"], d.tenant_sends_per_day, "{t}");
    assert_eq!(q["invocations_per_minute"], d.tenant_invocations_per_minute);
    assert_eq!(q["kv_keys"], d.tenant_kv_keys);
    assert_eq!(q["kv_bytes"], d.tenant_kv_bytes);
    assert_eq!(q["timers_pending"], d.tenant_timers_pending);
    // The operator raises one; the others keep their defaults.
    let body = json!({"quotas": {"sends_per_day": 50000}});
    let (status, t) = h.admin(Method::PUT, &format!("/admin/v1/tenants/{}/limits", h.tenant), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["effective_quotas"]["sends_per_day"], 50000);
    assert_eq!(t["effective_quotas"]["kv_keys"], d.tenant_kv_keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_daily_send_quota_holds_without_any_tenant_setting() {
    let h = harness().plugins(&[]).settings(|s| s.limits.tenant_sends_per_day = 3).start().await;
    for i in 0..3 {
        h.post("/v1/messages", json!({"to": CUSTOMER, "message": format!("m{i}")}), StatusCode::ACCEPTED).await;
    }
    let (status, answer) = h
        .call(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "one too many"})), Some(&h.key))
        .await;
    assert_eq!((status, code(&answer)), (StatusCode::TOO_MANY_REQUESTS, "DAILY_QUOTA_EXCEEDED"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fork_bomb_is_stopped_while_another_tenant_is_answered() {
    let h = harness()
        .plugins(&["chaos"])
        .settings(|s| {
            s.limits.tenant_timers_pending = 64;
            s.limits.event_max_attempts = 2;
        })
        .start()
        .await;
    let (other, other_key) = h.tenant("Bystander", "+15550006666").await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let (status, answer) = h.deploy(&other_key, &manifest, &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    h.inbound(CUSTOMER, "FORK").await;
    // The bomb hits its quota: an invocation fails on it...
    eventually("the fork bomb hits the pending-timer quota", || async {
        let records = h.get("/v1/plugins/chaos/invocations?limit=1000").await;
        records["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["error"].as_str().is_some_and(|e| e.contains("quota of 64 pending timers")))
    })
    .await;
    // ...and never holds more than it.
    let pending = h.app.engine.db.timers_pending(&h.tenant).await.unwrap();
    assert!(pending <= 64, "{pending} timers pending");
    // Meanwhile the other tenant's customers are answered.
    let mut replies = Vec::new();
    for i in 0..10 {
        let from = format!("+1555700{i:04}");
        replies.push(h.inbound_to("+15550006666", &from, "HOURS").await);
    }
    for id in &replies {
        eventually("the bystander's reply", || async {
            let (_, page) =
                h.call(Method::GET, &format!("/v1/messages?in_reply_to={id}"), None, Some(&other_key)).await;
            !page["data"].as_array().unwrap().is_empty()
        })
        .await;
    }
    assert!(h.app.engine.db.timers_pending(&h.tenant).await.unwrap() <= 64);
    assert!(!other.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_flood_is_stopped_by_the_per_invocation_write_cap() {
    let h = harness().plugins(&["chaos"]).start().await;
    h.inbound(CUSTOMER, "KVFLOOD").await;
    let reply = h.sent(1).await.remove(0);
    assert!(reply.body.contains("quota-exceeded"), "{}", reply.body);
    assert!(reply.body.contains("per invocation"), "{}", reply.body);
    let written: usize = reply.body.split_whitespace().nth(1).unwrap().trim_end_matches(':').parse().unwrap();
    let cap = Limits::default().kv_write_bytes_per_invocation / 60_000;
    assert!(written <= cap, "{written} values buffered, cap {cap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_flood_across_invocations_is_stopped_by_the_tenant_quota() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.tenant_kv_bytes = 300_000).start().await;
    let mut watch = h.watch();
    for _ in 0..3 {
        h.inbound(CUSTOMER, "KVFLOOD").await;
    }
    watch.events_settled("done", 3).await;
    let bodies: Vec<String> = h.sent(3).await.into_iter().map(|m| m.body).collect();
    assert!(bodies.iter().all(|b| b.contains("quota-exceeded")), "{bodies:?}");
    let (_, bytes) = h.app.engine.db.kv_usage(&h.tenant).await.unwrap();
    assert!(bytes <= 300_000, "{bytes} bytes kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_keeps_a_bounded_number_of_bytes() {
    let h = harness().plugins(&["chaos"]).start().await;
    h.inbound(CUSTOMER, "LOGFLOOD").await;
    assert_eq!(h.sent(1).await[0].body, "logged");
    let logs = h.get("/v1/plugins/chaos/logs?limit=1000").await;
    let lines = logs["data"].as_array().unwrap();
    let limits = Limits::default();
    assert!(lines.len() <= limits.log_lines_per_invocation + 1, "{} lines", lines.len());
    let bytes: usize = lines.iter().map(|l| l["message"].as_str().unwrap().len()).sum();
    assert!(bytes <= limits.log_bytes_per_invocation + 200, "{bytes} bytes kept");
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap().contains("more log lines dropped")));
}
