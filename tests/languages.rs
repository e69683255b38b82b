//! The same bot written in Rust, JavaScript and Python
//! (`examples/visit-bot-{rs,js,py}`), each built by its language's pinned
//! toolchain (`make guests`), deployed and driven end to end: the exact SMS
//! at the simulator, the kv state, and the follow-up timer firing.
//!
//! The JavaScript and Python components import the whole WIT world; their
//! manifests grant only what they use, and they deploy.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use switchboard::pipeline::Notification;

const HOUR: Duration = Duration::from_secs(3600);

async fn the_visit_bot_counts_answers_and_follows_up(plugin: &'static str) {
    let h = harness().plugins(&[plugin]).start().await;
    let mut watch = h.watch();
    h.inbound(CUSTOMER, "VISIT").await;
    let first = &h.sent(1).await[0];
    assert_eq!((first.to.as_str(), first.from.as_str()), (CUSTOMER, NUMBER));
    assert_eq!(first.body, "Welcome! This is visit #1.");
    h.inbound(CUSTOMER, "visit!").await;
    assert_eq!(h.sent(2).await[1].body, "Welcome! This is visit #2.");
    h.inbound(CUSTOMER, "VISITS").await;
    assert_eq!(h.sent(3).await[2].body, "You have visited 2 time(s).");

    // The count is the plugin's kv, and one follow-up is pending (the
    // second visit moved the first one's).
    let snapshot = h.app.engine.directory.snapshot();
    let plugin_id = snapshot.plugin_names[&(h.tenant.clone(), plugin.to_string())].clone();
    let db = &h.app.engine.db;
    let count = db.kv_get(&h.tenant, &plugin_id, &format!("visits:{CUSTOMER}")).await.unwrap().expect("count");
    assert_eq!(count.value, b"2");
    assert!(db.timer_pending(&h.tenant, &plugin_id, &format!("followup:{CUSTOMER}")).await.unwrap());

    // Every reply's outcome is recorded before the clock jumps: an hour's
    // jump would expire the dispatcher's lease on a reply still in flight,
    // and it would be offered to the carrier again.
    for _ in 0..3 {
        watch.until(|n| matches!(n, Notification::MessageStatus { status, .. } if status == "delivered")).await;
    }

    // An hour later (the configured `followup_after_s`) the follow-up goes out.
    h.clock.advance(HOUR);
    let followup = &h.sent(4).await[3];
    assert_eq!((followup.to.as_str(), followup.from.as_str()), (CUSTOMER, NUMBER));
    assert_eq!(followup.body, "Thanks for visiting! Text VISIT next time you drop by.");
    assert!(!db.timer_pending(&h.tenant, &plugin_id, &format!("followup:{CUSTOMER}")).await.unwrap());
    let invocations = h.get(&format!("/v1/plugins/{plugin}/invocations?limit=10")).await;
    let outcomes: Vec<_> = invocations["data"].as_array().unwrap().iter().map(|r| r["outcome"].clone()).collect();
    assert_eq!(outcomes, vec![json!("ok"); 4], "{invocations}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_visit_bot_counts_answers_and_follows_up() {
    the_visit_bot_counts_answers_and_follows_up("visit-bot-rs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_visit_bot_counts_answers_and_follows_up() {
    the_visit_bot_counts_answers_and_follows_up("visit-bot-js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_visit_bot_counts_answers_and_follows_up() {
    the_visit_bot_counts_answers_and_follows_up("visit-bot-py").await;
}

/// Deployed through the API, a component that imports the whole world
/// names what its manifest leaves out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_importing_the_whole_world_deploys_with_only_what_it_uses_granted() {
    let h = harness().plugins(&[]).start().await;
    for plugin in ["visit-bot-js", "visit-bot-py"] {
        let (manifest, wasm) = plugin_files(plugin);
        let (status, body) = h.deploy(&h.key, &manifest, &wasm).await;
        assert_eq!(status, axum::http::StatusCode::CREATED, "{body}");
        assert_eq!(body["capabilities"], json!(["messaging", "kv", "timers", "config"]));
        assert_eq!(body["ungranted_imports"], json!(["http"]), "{plugin}");
    }
}
