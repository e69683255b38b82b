//! What a plugin author looks at once a plugin runs: its kv and pending
//! timers (read-only, paged, per tenant), its dead letters and their
//! retry on the version that failed (or another, when asked), and a
//! deploy of exactly the active version, which changes nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_kv_and_timers_are_readable_paged_and_only_by_its_tenant() {
    let h = harness().plugins(&["chaos"]).start().await;
    h.inbound(CUSTOMER, "COUNT").await;
    h.inbound(CUSTOMER, "COUNT").await;
    h.inbound(CUSTOMER, "TIMERS").await;
    let replies = h.sent(3).await;
    assert!(replies.iter().any(|m| m.body == "count 2"), "{replies:?}");
    assert!(replies.iter().any(|m| m.body == "scheduled 50: no quota"), "{replies:?}");

    let kv = h.get("/v1/plugins/chaos/kv").await;
    let entries = kv["data"].as_array().unwrap();
    let count = entries.iter().find(|e| e["key"] == "count").expect("the count key");
    assert_eq!((count["value"].as_str(), count["size_bytes"].as_i64()), (Some("2"), Some(1)), "{kv}");
    assert!(count["version"].as_i64().unwrap() >= 1 && count["updated_at"].is_string(), "{count}");
    let one = h.get("/v1/plugins/chaos/kv/count").await;
    assert_eq!(one["value"], "2", "{one}");
    let none = h.get("/v1/plugins/chaos/kv?prefix=nothing-here").await;
    assert_eq!(none["data"], json!([]), "{none}");
    let (status, body) = h.call(Method::GET, "/v1/plugins/chaos/kv/absent", None, Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "KEY_NOT_FOUND"), "{body}");

    // Pending timers, soonest first, in pages that end.
    let mut seen: Vec<Value> = Vec::new();
    let mut url = "/v1/plugins/chaos/timers?limit=20".to_string();
    loop {
        let page = h.get(&url).await;
        let rows = page["data"].as_array().unwrap();
        assert!(rows.len() <= 20, "{page}");
        seen.extend(rows.iter().cloned());
        match page["next_after"].as_str() {
            Some(next) => {
                url = format!(
                    "/v1/plugins/chaos/timers?limit=20&after={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                )
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 50, "{seen:?}");
    let keys: Vec<&str> = seen.iter().map(|t| t["key"].as_str().unwrap()).collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a timer was listed twice: {keys:?}");
    let due: Vec<&str> = seen.iter().map(|t| t["due_at"].as_str().unwrap()).collect();
    assert!(due.windows(2).all(|w| w[0] <= w[1]), "{due:?}");
    assert!(seen.iter().all(|t| t["payload"] == "later" && t["mode"] == "live"), "{seen:?}");
    let (status, body) = h.call(Method::GET, "/v1/plugins/chaos/timers?after=not-a-cursor", None, Some(&h.key)).await;
    assert_eq!(
        (status, error_code(&body), body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("after"))
    );

    // Read-only: no method writes through these paths.
    for (method, uri) in [
        (Method::PUT, "/v1/plugins/chaos/kv/count"),
        (Method::DELETE, "/v1/plugins/chaos/kv/count"),
        (Method::POST, "/v1/plugins/chaos/timers"),
    ] {
        let (status, body) = h.call(method, uri, Some(json!({"value": "9"})), Some(&h.key)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{uri}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert_eq!(h.get("/v1/plugins/chaos/kv/count").await["value"], "2");

    // Another tenant sees no such plugin; an unknown plugin is named.
    let (_, other_key) = h.tenant("Other", "+15550000099").await;
    for uri in ["/v1/plugins/chaos/kv", "/v1/plugins/chaos/kv/count", "/v1/plugins/chaos/timers"] {
        let (status, body) = h.call(Method::GET, uri, None, Some(&other_key)).await;
        assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND"), "{uri}: {body}");
    }
    let (status, _) = h.call(Method::GET, "/v1/plugins/chaos/kv", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let long = "k".repeat(2000);
    let (status, body) = h.call(Method::GET, &format!("/v1/plugins/chaos/kv?prefix={long}"), None, Some(&h.key)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("prefix")), "{body}");
}

/// A manifest that deploys the keyword-reply component under the chaos
/// plugin's name, answering FAIL: a "fixed" version of a failing bot.
fn fixed_chaos(version: &str) -> String {
    format!(
        "name = \"chaos\"\nversion = \"{version}\"\ncapabilities = [\"messaging\", \"config\"]\n\n\
         [triggers]\nkeywords = [\"FAIL\"]\n\n[config]\ndefault_reply = \"fixed\"\n\n[config.replies]\nFAIL = \"fixed\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_retried_on_the_version_that_failed_unless_asked_otherwise() {
    let h = harness()
        .plugins(&["chaos"])
        .settings(|s| {
            s.limits.event_max_attempts = 1;
            s.limits.plugin_suspend_after_failures = 100;
        })
        .start()
        .await;
    let mut watch = h.watch();
    h.inbound(CUSTOMER, "FAIL").await;
    let dead = watch.events_settled("dead", 1).await.remove(0);

    let list = h.get("/v1/plugins/chaos/events").await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!((rows[0]["id"].as_str(), rows[0]["status"].as_str()), (Some(dead.as_str()), Some("dead")));
    assert_eq!(rows[0]["last_error"], "plugin returned an error: deliberate failure");
    assert_eq!(rows[0]["version"], "0.1.0", "a failed event names the version it failed on: {list}");
    assert_eq!(h.get("/v1/plugins/chaos/events?status=pending").await["data"], json!([]));

    // A fix is deployed; the event is still bound to the version that failed.
    let (_, keyword_wasm) = plugin_files("keyword-reply");
    let (status, body) = h.deploy(&h.key, &fixed_chaos("0.2.0"), &keyword_wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let retried = h.post(&format!("/v1/plugins/chaos/events/{dead}/retry"), json!({}), StatusCode::ACCEPTED).await;
    assert_eq!(
        (retried["status"].as_str(), retried["version"].as_str()),
        (Some("pending"), Some("0.1.0")),
        "{retried}"
    );
    assert_eq!(watch.events_settled("dead", 1).await, [dead.clone()]);
    let records = h.get("/v1/plugins/chaos/invocations?limit=10").await;
    let versions: Vec<&str> =
        records["data"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["0.1.0", "0.1.0"], "the retry ran the version that failed: {records}");

    // Asked to, it runs the active version, which answers.
    let retried = h
        .post(&format!("/v1/plugins/chaos/events/{dead}/retry"), json!({"version": "active"}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(retried["version"], "0.2.0", "{retried}");
    assert_eq!(watch.events_settled("done", 1).await, [dead.clone()]);
    assert_eq!(h.sent(1).await[0].body, "fixed");
    let event = h.get(&format!("/v1/plugins/chaos/events/{dead}")).await;
    assert_eq!((event["status"].as_str(), event["attempts"].as_i64()), (Some("done"), Some(1)), "{event}");
    assert_eq!(h.get("/v1/plugins/chaos/events").await["data"], json!([]));

    // Only a dead letter can be retried; versions and events must exist.
    let uri = format!("/v1/plugins/chaos/events/{dead}/retry");
    let (status, body) = h.call(Method::POST, &uri, None, Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "EVENT_NOT_DEAD"), "{body}");
    let (status, body) = h.call(Method::POST, "/v1/plugins/chaos/events/evt_nope/retry", None, Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "EVENT_NOT_FOUND"), "{body}");
    let (status, body) =
        h.deploy(&h.key, &plugin_files("chaos").0.replace("0.1.0", "0.3.0"), &plugin_files("chaos").1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    h.inbound(CUSTOMER, "FAIL").await;
    let second = watch.events_settled("dead", 1).await.remove(0);
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/plugins/chaos/events/{second}/retry"),
            Some(json!({"version": "9.9"})),
            Some(&h.key),
        )
        .await;
    assert_eq!(
        (status, error_code(&body), body["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, "VERSION_NOT_FOUND", Some("version"))
    );
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/plugins/chaos/events/{second}/retry"),
            Some(json!({"versio": "0.2.0"})),
            Some(&h.key),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A test key cannot retry a live event; another tenant cannot see it.
    let (status, test_key) =
        h.call(Method::POST, "/v1/keys", Some(json!({"label": "t", "mode": "test"})), Some(&h.key)).await;
    assert_eq!(status, StatusCode::CREATED, "{test_key}");
    let test_key = test_key["key"].as_str().unwrap().to_string();
    let (status, body) =
        h.call(Method::POST, &format!("/v1/plugins/chaos/events/{second}/retry"), None, Some(&test_key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "TEST_KEY"), "{body}");
    let (_, other_key) = h.tenant("Other", "+15550000099").await;
    let (status, body) =
        h.call(Method::POST, &format!("/v1/plugins/chaos/events/{second}/retry"), None, Some(&other_key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND"), "{body}");

    // Each retry is in the audit log.
    let (_, audit) = h.admin(Method::GET, "/admin/v1/audit", None).await;
    let retries = audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "plugin.event.retry").count();
    assert_eq!(retries, 2, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_exactly_the_active_version_again_changes_nothing() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let (status, body) = h.deploy(&h.key, &manifest, &wasm).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["unchanged"].as_bool(), body["version"].as_str()), (Some(true), Some("0.1.0")), "{body}");
    assert_eq!(body["versions"].as_array().unwrap().len(), 1, "no new version: {body}");

    // The same version with anything different is refused.
    let edited = manifest.replace("Demo Store is open", "We are open");
    let (status, body) = h.deploy(&h.key, &edited, &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "VERSION_EXISTS"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("bump the version"), "{body}");

    // An earlier version deployed again, identical, is not made active silently.
    let v2 = edited.replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let (status, body) = h.deploy(&h.key, &v2, &wasm).await;
    assert_eq!((status, body["unchanged"].as_bool()), (StatusCode::CREATED, Some(false)), "{body}");
    let (status, body) = h.deploy(&h.key, &manifest, &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "VERSION_EXISTS"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("roll back"), "{body}");
    h.inbound(CUSTOMER, "HOURS").await;
    assert!(h.sent(1).await[0].body.starts_with("We are open"));

    // Only the real deploys are audited.
    let (_, audit) = h.admin(Method::GET, "/admin/v1/audit", None).await;
    let deploys = audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "plugin.deploy").count();
    assert_eq!(deploys, 1, "{audit}");
}
