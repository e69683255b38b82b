//! Many tenants on one engine: their own plugins for the same keyword,
//! isolation of plugins, kv, messages and opt-outs, the admin API and its
//! audit log, per-tenant quotas, and fair scheduling between tenants.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use switchboard::clock::Clock;
use switchboard::pipeline::Notification;

const OTHER_NUMBER: &str = "+15550000001";

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_with_the_same_keyword_get_their_own_plugins_reply() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let (_bakery, bakery_key) = h.tenant("Bakery", OTHER_NUMBER).await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let manifest = manifest.replace("Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.", "The bakery opens at 6am.");
    let (status, body) = h.deploy(&bakery_key, &manifest, &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    h.inbound(CUSTOMER, "HOURS").await;
    h.inbound_to(OTHER_NUMBER, CUSTOMER, "hours").await;
    let mut replies: Vec<(String, String)> = h.sent(2).await.into_iter().map(|s| (s.from, s.body)).collect();
    replies.sort();
    assert_eq!(
        replies,
        [
            (NUMBER.to_string(), "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.".to_string()),
            (OTHER_NUMBER.to_string(), "The bakery opens at 6am.".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_key_cannot_touch_another_tenants_plugins_kv_messages_or_opt_outs() {
    let h = harness().plugins(&["chaos", "keyword-reply"]).start().await;
    let (_b, b_key) = h.tenant("Other", OTHER_NUMBER).await;
    let (manifest, wasm) = plugin_files("chaos");
    assert_eq!(h.deploy(&b_key, &manifest, &wasm).await.0, StatusCode::CREATED);
    let as_b = |method: Method, uri: &str, body: Option<Value>| {
        let b_key = b_key.clone();
        let uri = uri.to_string();
        let h = &h;
        async move { h.call(method, &uri, body, Some(&b_key)).await }
    };

    // Plugins: B sees only its own, and A's plugins do not exist for it.
    let (_, list) = as_b(Method::GET, "/v1/plugins", None).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chaos"]);
    for (method, uri) in [
        (Method::GET, "/v1/plugins/keyword-reply"),
        (Method::POST, "/v1/plugins/keyword-reply/disable"),
        (Method::POST, "/v1/plugins/keyword-reply/rollback"),
        (Method::GET, "/v1/plugins/keyword-reply/invocations"),
        (Method::GET, "/v1/plugins/keyword-reply/logs"),
    ] {
        let (status, body) = as_b(method.clone(), uri, None).await;
        assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND"), "{method} {uri}");
    }
    let (status, _) = as_b(Method::POST, "/v1/events/keyword-reply", Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // kv: both tenants' chaos plugins count on their own.
    h.inbound(CUSTOMER, "COUNT").await;
    h.sent(1).await;
    h.inbound(CUSTOMER, "COUNT").await;
    h.sent(2).await;
    h.inbound_to(OTHER_NUMBER, CUSTOMER, "COUNT").await;
    let sent = h.sent(3).await;
    assert_eq!((sent[2].from.as_str(), sent[2].body.as_str()), (OTHER_NUMBER, "count 1"));
    // B disabling its chaos leaves A's running.
    assert_eq!(as_b(Method::POST, "/v1/plugins/chaos/disable", None).await.0, StatusCode::OK);
    h.inbound(CUSTOMER, "COUNT").await;
    assert_eq!(h.sent(4).await[3].body, "count 3");

    // Messages: A's are not B's to read, and B cannot send as A.
    let a_message = h.inbound(CUSTOMER, "HOURS").await;
    let (status, _) = as_b(Method::GET, &format!("/v1/messages/{a_message}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = as_b(Method::GET, "/v1/messages?limit=200", None).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|m| m["to"] == OTHER_NUMBER || m["from"] == OTHER_NUMBER));
    let (status, body) =
        as_b(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "from": NUMBER, "message": "hi"}))).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "SENDER_NOT_ALLOWED"));

    // Opt-outs: a STOP to A's number is A's alone.
    let mut watch = h.watch();
    let stop = h.inbound(CUSTOMER, "STOP").await;
    let reply = h.replies(&stop).await;
    watch.message_status(reply[0]["id"].as_str().unwrap(), "sent").await;
    assert_eq!(h.get("/v1/opt-outs").await["data"].as_array().unwrap().len(), 1);
    let (_, b_opt_outs) = as_b(Method::GET, "/v1/opt-outs", None).await;
    assert_eq!(b_opt_outs["data"], json!([]));
    let (status, body) = as_b(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "from B"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) =
        h.call(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "from A"})), Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "RECIPIENT_OPTED_OUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_manages_tenants_keys_numbers_and_limits_and_audits_every_action() {
    let h = harness().plugins(&[]).start().await;
    let (status, body) = h.call(Method::GET, "/admin/v1/tenants", None, Some("wrong-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = h.call(Method::GET, "/admin/v1/tenants", None, Some(&h.key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a tenant key is not an admin token");

    let (status, created) = h.admin(Method::POST, "/admin/v1/tenants", Some(json!({"name": "Acme"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (acme, first_key) = (created["id"].as_str().unwrap(), created["api_key"].as_str().unwrap());
    let (status, _) = h.call(Method::GET, "/v1/account", None, Some(first_key)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = h
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{acme}/numbers"),
            Some(json!({"number": "+1 555 000 0009", "connector": "nowhere"})),
        )
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("connector")), "{body}");
    let (status, body) = h
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{acme}/numbers"),
            Some(json!({"number": "+1 555 000 0009", "connector": "simulator"})),
        )
        .await;
    assert_eq!((status, body["number"].as_str()), (StatusCode::CREATED, Some("+15550000009")), "{body}");
    let (status, _) = h
        .admin(Method::POST, &format!("/admin/v1/tenants/{acme}/sender-ids"), Some(json!({"sender_id": "ACME"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, key) = h
        .admin(Method::POST, &format!("/admin/v1/tenants/{acme}/keys"), Some(json!({"mode": "test", "label": "ci"})))
        .await;
    assert_eq!((status, key["mode"].as_str()), (StatusCode::CREATED, Some("test")), "{key}");
    let (second_id, second_key) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    assert!(second_key.starts_with("sk_test_"));
    let (status, _) = h.admin(Method::DELETE, &format!("/admin/v1/tenants/{acme}/keys/{second_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.call(Method::GET, "/v1/account", None, Some(second_key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key stops working");

    let limits = json!({"quotas": {"sends_per_day": 100, "kv_keys": 50}, "requests_per_second": 20});
    let (status, body) = h.admin(Method::PUT, &format!("/admin/v1/tenants/{acme}/limits"), Some(limits)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"]["quotas"]["sends_per_day"], 100);
    let (status, body) = h
        .admin(Method::PUT, &format!("/admin/v1/tenants/{acme}/limits"), Some(json!({"quotas": {"kv_keys": 0}})))
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("quotas.kv_keys")));

    let (status, _) = h.admin(Method::POST, &format!("/admin/v1/tenants/{acme}/disable"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.call(Method::GET, "/v1/account", None, Some(first_key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "TENANT_DISABLED"));
    let (_, tenants) = h.admin(Method::GET, "/admin/v1/tenants", None).await;
    let acme_row = tenants["data"].as_array().unwrap().iter().find(|t| t["id"] == acme).unwrap().clone();
    assert_eq!(acme_row["status"], "disabled");
    assert_eq!(acme_row["numbers"], json!(["+15550000009"]));
    assert_eq!(acme_row["sender_ids"], json!(["ACME"]));
    h.admin(Method::POST, &format!("/admin/v1/tenants/{acme}/enable"), None).await;
    assert_eq!(h.call(Method::GET, "/v1/account", None, Some(first_key)).await.0, StatusCode::OK);

    let (_, connectors) = h.admin(Method::GET, "/admin/v1/connectors", None).await;
    let names: Vec<&str> = connectors["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"simulator") && names.contains(&"sandbox"), "{names:?}");

    // Newest first: who, what, which tenant, when.
    let (_, audit) = h.admin(Method::GET, "/admin/v1/audit?limit=100", None).await;
    let actions: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("admin", "tenant.enable"),
            ("admin", "tenant.disable"),
            ("admin", "tenant.limits"),
            ("admin", "key.revoke"),
            ("admin", "key.create"),
            ("admin", "sender_id.add"),
            ("admin", "number.add"),
            ("admin", "tenant.create"),
        ]
    );
    let entries = audit["data"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["target"] == acme && e["at"].as_str().unwrap().ends_with('Z')));
    assert_eq!(entries[4]["detail"]["key_id"], second_id);
    assert!(!audit.to_string().contains(second_key), "the audit log never holds a secret");

    // Tenants' own changes are audited too, with the key that made them.
    let (status, _) = h.call(Method::POST, "/v1/keys", Some(json!({"label": "rotation"})), Some(first_key)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, audit) = h.admin(Method::GET, "/admin/v1/audit?limit=1", None).await;
    let newest = &audit["data"][0];
    assert_eq!(newest["action"], "key.create");
    assert!(newest["actor"].as_str().unwrap().starts_with(&format!("tenant:{acme} (key key_")), "{newest}");
    assert!(audit["next_before"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_enforced_with_clear_errors() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.event_max_attempts = 1).start().await;
    let limits = json!({"quotas": {
        "sends_per_day": 6, "kv_keys": 3, "timers_pending": 2, "fuel": 20_000_000, "memory_bytes": 4_194_304
    }});
    let (status, body) = h.admin(Method::PUT, &format!("/admin/v1/tenants/{}/limits", h.tenant), Some(limits)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    h.inbound(CUSTOMER, "FILL").await;
    assert_eq!(h.sent(1).await[0].body, "filled 3: quota-exceeded: the tenant's kv quota of 3 keys is used up");
    h.inbound(CUSTOMER, "TIMERS").await;
    assert_eq!(
        h.sent(2).await[1].body,
        "scheduled 2: quota-exceeded: the tenant's quota of 2 pending timers is used up"
    );

    let mut watch = h.watch();
    let spin = h.inbound(CUSTOMER, "LOOP").await;
    watch.events_settled("dead", 1).await;
    let event = &h.get(&format!("/v1/messages/{spin}")).await["processing"][0];
    assert!(event["last_error"].as_str().unwrap().contains("all of its 20000000 fuel"), "{event}");
    let bomb = h.inbound(CUSTOMER, "BOMB").await;
    watch.events_settled("dead", 1).await;
    let event = &h.get(&format!("/v1/messages/{bomb}")).await["processing"][0];
    assert!(event["last_error"].as_str().unwrap().contains("the limit is 4194304"), "{event}");

    // Two replies so far; the API may send four more today.
    for i in 0..4 {
        h.post("/v1/messages", json!({"to": CUSTOMER, "message": format!("api {i}")}), StatusCode::ACCEPTED).await;
    }
    let (status, body) = h
        .call(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "one too many"})), Some(&h.key))
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::TOO_MANY_REQUESTS, "DAILY_QUOTA_EXCEEDED"), "{body}");
    assert_eq!(body["error"]["message"], "the tenant's quota of 6 messages per day is used up");
    // A plugin's send is refused with a typed error too (its reply is
    // refused as well, so the invocation fails).
    let notify = h.inbound(CUSTOMER, "NOTIFY +15557654321").await;
    watch.events_settled("dead", 1).await;
    let event = &h.get(&format!("/v1/messages/{notify}")).await["processing"][0];
    assert!(
        event["last_error"].as_str().unwrap().contains("quota exceeded: the tenant's quota of 6 messages per day"),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_over_the_per_minute_quota_wait_for_the_next_minute() {
    let clock = Clock::frozen(1_795_435_200_000); // 12:00:00 UTC
    let h = harness().plugins(&["keyword-reply"]).clock(clock.clone()).start().await;
    let limits = json!({"quotas": {"invocations_per_minute": 2}});
    h.admin(Method::PUT, &format!("/admin/v1/tenants/{}/limits", h.tenant), Some(limits)).await;
    let mut watch = h.watch();
    for _ in 0..3 {
        h.inbound(CUSTOMER, "HOURS").await;
    }
    let mut settled = Vec::new();
    while settled.len() < 3 {
        if let Notification::EventSettled { status, .. } =
            watch.until(|n| matches!(n, Notification::EventSettled { .. })).await
        {
            settled.push(status);
        }
    }
    settled.sort();
    assert_eq!(settled, ["done", "done", "retry"], "the third waits without using an attempt");
    assert_eq!(h.sent(2).await.len(), 2);
    clock.advance(std::time::Duration::from_secs(60));
    watch.events_settled("done", 1).await;
    h.sent(3).await;
    let records = h.get("/v1/plugins/keyword-reply/invocations").await;
    assert_eq!(records["data"].as_array().unwrap().len(), 3, "deferral is not an invocation: {records}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_plugin_loops_forever_does_not_delay_another_tenants_replies() {
    let h = harness()
        .plugins(&["chaos"])
        .settings(|s| {
            s.limits.concurrent_invocations = 4;
            s.limits.tenant_concurrent_invocations = 2;
            s.limits.fuel_per_invocation = u64::MAX / 2;
            s.limits.invocation_timeout_ms = 3_000;
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let (other, other_key) = h.tenant("Neighbour", OTHER_NUMBER).await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    assert_eq!(h.deploy(&other_key, &manifest, &wasm).await.0, StatusCode::CREATED);

    let mut watch = h.watch();
    for _ in 0..8 {
        h.inbound(CUSTOMER, "LOOP").await;
    }
    h.inbound_to(OTHER_NUMBER, CUSTOMER, "HOURS").await;
    // Eight loops would fill every slot for seconds; the neighbour's event
    // settles first all the same.
    let first = watch.until(|n| matches!(n, Notification::EventSettled { .. })).await;
    let Notification::EventSettled { tenant_id, status, .. } = first else { unreachable!() };
    assert_eq!((tenant_id.as_str(), status), (other.as_str(), "done"));
    assert_eq!(h.sent(1).await[0].from, OTHER_NUMBER);
}
