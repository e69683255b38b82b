//! Changing a live bot safely: every invocation is recorded; a replay runs
//! the recordings against another version and reports what would change
//! without sending or writing anything; a canary takes some customers and
//! is rolled back by itself when it does worse. Runs on SQLite, and on
//! PostgreSQL in the PostgreSQL pass.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use switchboard::pipeline::Notification;

const HOUR: Duration = Duration::from_secs(3600);

/// Uploads a plugin with extra form fields (`activate`, `canary`...).
async fn deploy_with(h: &Harness, manifest: &str, wasm: &[u8], fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut parts: Vec<(&str, &[u8])> = vec![("manifest", manifest.as_bytes()), ("component", wasm)];
    parts.extend(fields.iter().map(|(k, v)| (*k, v.as_bytes())));
    let (content_type, body) = multipart(&parts);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/plugins")
        .header("authorization", format!("Bearer {}", h.key))
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    raw(&h.app, req).await
}

/// Starts a replay and waits for its report.
async fn replay(h: &Harness, plugin: &str, body: Value) -> Value {
    let started = h.post(&format!("/v1/plugins/{plugin}/replays"), body, StatusCode::ACCEPTED).await;
    let id = started["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/plugins/{plugin}/replays/{id}");
    eventually("the replay finished", || async {
        let r = h.get(&uri).await;
        assert_ne!(r["status"], "failed", "{r}");
        r["status"] == "done"
    })
    .await;
    let done = h.get(&uri).await;
    assert_eq!(done["done"], done["total"], "{done}");
    done["report"].clone()
}

fn phone(i: usize) -> String {
    format!("+1555700{i:04}")
}

/// A day of orders: each created, shipped and delivered, and some
/// customers asking STATUS. Returns the ids of the shipped events.
async fn a_day_of_orders(h: &Harness, orders: usize) -> BTreeSet<String> {
    let mut shipped = BTreeSet::new();
    for i in 0..orders {
        let order = json!({"id": format!("A{i}"), "phone": phone(i), "items": ["mug"], "total": 12.5});
        h.event("order-notifications", "order.created", order).await;
        let track = json!({"id": format!("A{i}"), "phone": phone(i), "tracking_url": format!("https://t.example/{i}")});
        shipped.insert(h.event("order-notifications", "order.shipped", track).await);
        h.event("order-notifications", "order.delivered", json!({"id": format!("A{i}"), "phone": phone(i)})).await;
        if i % 10 == 0 {
            h.inbound(&phone(i), "STATUS").await;
        }
    }
    // Each invocation sends one message, committed with it: once all are
    // sent, every invocation is recorded. (Too many notifications to
    // follow one by one.)
    h.sent(orders * 3 + orders.div_ceil(10)).await;
    shipped
}

/// Replay of a day's orders against a version that changes one template:
/// the report names exactly the shipped notifications, with their old and
/// new text, and nothing was sent or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_names_exactly_the_sends_a_new_template_changes_and_does_nothing() {
    let h = harness().settings(|s| s.limits.api_requests_per_second = 1_000_000).start().await;
    let orders = 700;
    let shipped = a_day_of_orders(&h, orders).await;
    let invocations = orders * 3 + orders.div_ceil(10);

    // 0.2.0 changes the shipped template; staged beside the active 0.1.0.
    let (manifest, wasm) = plugin_files("order-notifications");
    let new_text = "Good news: order #{id} is on its way! {tracking_url}";
    let changed = manifest
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"")
        .replace("\"Order #{id} has shipped! Track it: {tracking_url}\"", &format!("\"{new_text}\""));
    assert_ne!(changed, manifest);
    let (status, body) = deploy_with(&h, &changed, &wasm, &[("activate", "false")]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], "0.1.0", "staged: the active version stays");
    let versions: Vec<(&str, bool)> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(versions, [("0.1.0", true), ("0.2.0", false)]);

    let messages_before = h.get("/v1/messages?limit=1").await;
    let kv_before = h.get("/v1/plugins/order-notifications/kv?limit=1000").await;
    let sent_before = h.sim().sent().len();

    let report = replay(&h, "order-notifications", json!({"version": "0.2.0", "since": "24h"})).await;
    let totals = &report["totals"];
    assert_eq!(totals["replayed"], invocations, "{totals}");
    assert_eq!(totals["different"], orders, "{totals}");
    assert_eq!(totals["same"], invocations - orders, "{totals}");
    assert_eq!((totals["new_failures"].as_u64(), totals["not_replayable"].as_u64()), (Some(0), Some(0)));
    let results = report["results"].as_array().unwrap();
    let named: BTreeSet<String> = results.iter().map(|r| r["event_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(named, shipped, "exactly the shipped notifications");
    for r in results {
        assert_eq!(r["verdict"], "different");
        let sends = r["diff"]["sends"].as_array().unwrap();
        assert_eq!(sends.len(), 1, "{r}");
        let (was, now) = (&sends[0]["recorded"], &sends[0]["replayed"]);
        let order = was["body"].as_str().unwrap().split('#').nth(1).unwrap().split(' ').next().unwrap();
        let i: usize = order.trim_start_matches('A').parse().unwrap();
        assert_eq!(was["body"], format!("Order #A{i} has shipped! Track it: https://t.example/{i}"));
        assert_eq!(now["body"], format!("Good news: order #A{i} is on its way! https://t.example/{i}"));
        assert_eq!((&was["to"], &now["to"]), (&json!(phone(i)), &json!(phone(i))));
        assert!(r["diff"]["kv_writes"].is_null() && r["diff"]["timers"].is_null(), "{r}");
    }

    // Nothing was sent, written or queued.
    assert_eq!(h.sim().sent().len(), sent_before);
    assert_eq!(h.get("/v1/messages?limit=1").await, messages_before);
    assert_eq!(h.get("/v1/plugins/order-notifications/kv?limit=1000").await, kv_before);
    assert_eq!(h.get("/v1/plugins/order-notifications").await["version"], "0.1.0");

    // The replays list shows it; events can be chosen one by one too.
    let list = h.get("/v1/plugins/order-notifications/replays").await;
    assert_eq!(list["replays"][0]["status"], "done");
    let one: Vec<String> = shipped.iter().take(2).cloned().collect();
    let report = replay(&h, "order-notifications", json!({"version": "0.2.0", "events": one})).await;
    assert_eq!((report["totals"]["replayed"].as_u64(), report["totals"]["different"].as_u64()), (Some(2), Some(2)));

    // Refusals name their reason and field.
    let (status, body) = h
        .call(Method::POST, "/v1/plugins/order-notifications/replays", Some(json!({"version": "9.9.9"})), Some(&h.key))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("VERSION_NOT_FOUND")), "{body}");
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/plugins/order-notifications/replays",
            Some(json!({"version": "0.2.0", "since": "yesterday"})),
            Some(&h.key),
        )
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("since")), "{body}");
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/plugins/order-notifications/replays",
            Some(json!({"version": "0.2.0", "events": ["evt_none"]})),
            Some(&h.key),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("NOTHING_RECORDED")), "{body}");
}

/// Recordings survive a restart: a replay afterwards reproduces every
/// invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_survive_a_restart() {
    let h = harness().start().await;
    let mut watch = h.watch();
    for i in 0..12 {
        h.inbound(&phone(i), "HOURS").await;
    }
    watch.events_settled("done", 12).await;
    let h = h.restart().await;
    let report = replay(&h, "keyword-reply", json!({"version": "0.1.0"})).await;
    assert_eq!((report["totals"]["replayed"].as_u64(), report["totals"]["same"].as_u64()), (Some(12), Some(12)));
}

/// Recordings are pruned by bytes per tenant (the newest kept) and by
/// age, while the invocation records stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_pruned_by_size_and_age() {
    let h = harness()
        .settings(|s| {
            s.limits.recording_retention_s = 2 * 3600;
            s.limits.recording_bytes_per_tenant = 4_000;
        })
        .start()
        .await;
    let mut watch = h.watch();
    for i in 0..12 {
        h.inbound(&phone(i), "HOURS").await;
    }
    watch.events_settled("done", 12).await;
    let report = replay(&h, "keyword-reply", json!({"version": "0.1.0"})).await;
    assert_eq!(report["totals"]["replayed"], 12, "not pruned before the housekeeping runs");

    // The hourly housekeeping keeps the newest recordings within the bytes bound.
    let mut watch = h.watch();
    h.clock.advance(HOUR + Duration::from_secs(60));
    watch.until(|n| matches!(n, Notification::Pruned { .. })).await;
    let report = replay(&h, "keyword-reply", json!({"version": "0.1.0"})).await;
    let kept = report["totals"]["replayed"].as_u64().unwrap();
    assert!((1..12).contains(&kept), "a few recordings fit 4,000 bytes: {kept}");

    // Past their retention, recordings go; the invocation records stay.
    let mut watch = h.watch();
    h.clock.advance(2 * HOUR);
    watch.until(|n| matches!(n, Notification::Pruned { .. })).await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/plugins/keyword-reply/replays",
            Some(json!({"version": "0.1.0", "since": "7d"})),
            Some(&h.key),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("NOTHING_RECORDED")), "{body}");
    let invocations = h.get("/v1/plugins/keyword-reply/invocations?limit=100").await;
    assert_eq!(invocations["data"].as_array().unwrap().len(), 12);
}

/// The hourly housekeeping deletes invocation records past their
/// retention a few rows per transaction (here 5), until none is left, and
/// keeps the newer ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_records_past_their_retention_go_in_batches_and_newer_ones_stay() {
    let h = harness()
        .settings(|s| {
            s.limits.plugin_records_retention_s = 2 * 3600;
            s.limits.prune_batch_rows = 5;
        })
        .start()
        .await;
    let mut watch = h.watch();
    for i in 0..12 {
        h.inbound(&phone(i), "HOURS").await;
    }
    watch.events_settled("done", 12).await;

    let mut watch = h.watch();
    h.clock.advance(HOUR + Duration::from_secs(60));
    for i in 12..15 {
        h.inbound(&phone(i), "HOURS").await;
    }
    watch.events_settled("done", 3).await;
    let invocations = h.get("/v1/plugins/keyword-reply/invocations?limit=100").await;
    assert_eq!(invocations["data"].as_array().unwrap().len(), 15);

    // 2.5 hours after the first twelve, 1.5 hours after the last three.
    let mut watch = h.watch();
    h.clock.advance(HOUR + Duration::from_secs(30 * 60));
    let pruned = watch.until(|n| matches!(n, Notification::Pruned { .. })).await;
    assert!(matches!(pruned, Notification::Pruned { rows } if rows >= 12), "{pruned:?}");
    let invocations = h.get("/v1/plugins/keyword-reply/invocations?limit=100").await;
    assert_eq!(invocations["data"].as_array().unwrap().len(), 3, "{invocations}");
}

/// The same version replayed reproduces every invocation's effects exactly,
/// for random sequences of events across the three plugins (kv reads and
/// writes, timers, the clock, message ids).
#[test]
fn replaying_the_same_version_reproduces_every_invocation() {
    use proptest::prelude::*;
    let action = prop_oneof![
        (0..6usize, prop::sample::select(vec!["HOURS", "STATUS", "RETURN", "hello", "C", "R"]))
            .prop_map(|(who, text)| (0u8, who, text.to_string())),
        (0..6usize, prop::sample::select(vec!["order.created", "order.shipped", "order.delivered"]))
            .prop_map(|(who, name)| (1u8, who, name.to_string())),
        (0..6usize, prop::sample::select(vec!["appointment.booked", "appointment.cancelled"]))
            .prop_map(|(who, name)| (2u8, who, name.to_string())),
    ];
    let config = ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(actions in prop::collection::vec(action, 5..25))| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(replay_reproduces(actions));
    });
}

async fn replay_reproduces(actions: Vec<(u8, usize, String)>) {
    let h = harness().start().await;
    let mut watch = h.watch();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (kind, who, what) in &actions {
        let customer = phone(*who);
        // The plugins each action's event goes to (STATUS is a keyword of two).
        let plugins: &[&str] = match kind {
            0 => {
                h.inbound(&customer, what).await;
                match what.as_str() {
                    "STATUS" => &["order-notifications", "keyword-reply"],
                    "C" | "R" => &["appointment-reminders"],
                    _ => &["keyword-reply"],
                }
            }
            1 => {
                let order = json!({"id": format!("B{who}"), "phone": customer, "items": ["tea"], "total": 3,
                    "tracking_url": "https://t.example/b"});
                h.event("order-notifications", what, order).await;
                &["order-notifications"]
            }
            _ => {
                let at = h.clock.now() + chrono::Duration::hours(30);
                let booking = json!({"id": format!("P{who}"), "phone": customer, "doctor": "Dr. Lee",
                    "at": at.to_rfc3339(), "tz": "UTC"});
                h.event("appointment-reminders", what, booking).await;
                &["appointment-reminders"]
            }
        };
        for plugin in plugins {
            *counts.entry(plugin).or_default() += 1;
        }
        // One at a time: each invocation reads what the last one wrote.
        watch.events_settled("done", plugins.len()).await;
    }
    for (plugin, n) in counts {
        let report = replay(&h, plugin, json!({"version": "0.1.0"})).await;
        let totals = &report["totals"];
        assert_eq!(totals["replayed"], n, "{plugin}: {report}");
        assert_eq!(totals["same"], totals["replayed"], "{plugin}: {report}");
    }
}

/// Customers texting a bot while a canary that traps on a quarter of them
/// takes half: the canary is rolled back by itself, the audit log has the
/// figures, and every customer gets exactly one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_each_customer_gets_one_answer() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    // The canary: the chaos component as keyword-reply 0.2.0. It answers
    // COUNT with "count N" and traps on TRAP; 0.1.0 answers both with its
    // default reply.
    let (chaos, wasm) = plugin_files("chaos");
    let canary = chaos
        .replace("name = \"chaos\"", "name = \"keyword-reply\"")
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let fields = [("canary", "50"), ("canary_min_invocations", "8")];
    let (status, body) = deploy_with(&h, &canary, &wasm, &fields).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["version"].as_str(), body["canary"]["version"].as_str()),
        (Some("0.1.0"), Some("0.2.0")),
        "{body}"
    );
    assert_eq!(body["canary"]["percent"], 50);

    let plugin_id = h.plugin_id("keyword-reply");
    let customers = 80;
    for i in 0..customers {
        h.inbound(&phone(i), if i % 4 == 0 { "TRAP" } else { "COUNT" }).await;
    }
    let sent = h.sent(customers).await;
    eventually("the canary was rolled back", || async { h.get("/v1/plugins/keyword-reply").await["canary"].is_null() })
        .await;
    let detail = h.get("/v1/plugins/keyword-reply").await;
    assert_eq!(detail["version"], "0.1.0");

    // One answer each, from one version; canary answers only to its customers.
    let mut answers: HashMap<String, Vec<String>> = HashMap::new();
    for s in h.sim().sent() {
        answers.entry(s.to.clone()).or_default().push(s.body.clone());
    }
    assert_eq!(sent.len(), customers);
    for i in 0..customers {
        let got = &answers[&phone(i)];
        assert_eq!(got.len(), 1, "{}: {got:?}", phone(i));
        if got[0].starts_with("count ") {
            assert!(switchboard::directory::canary_bucket(&plugin_id, &phone(i)) < 50, "{}", phone(i));
        } else {
            assert!(got[0].starts_with("Thanks for texting"), "{got:?}");
        }
    }
    assert!(answers.values().any(|a| a[0].starts_with("count ")), "the canary answered some customers");

    let (status, audit) = h.admin(Method::GET, "/admin/v1/audit?limit=20", None).await;
    assert_eq!(status, StatusCode::OK);
    let rollback = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plugin.canary.rollback")
        .unwrap_or_else(|| panic!("audited: {audit}"))
        .clone();
    assert_eq!(rollback["actor"], "canary");
    let detail: Value = match &rollback["detail"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert!(detail["canary"]["failures"].as_i64().unwrap() > 0, "{detail}");
    assert!(detail["canary"]["invocations"].as_i64().unwrap() >= 8, "{detail}");
    assert_eq!(detail["active"]["failures"], 0, "{detail}");
    assert!(detail["reason"].as_str().unwrap().contains("failure rate"), "{detail}");
}

/// A healthy canary is promoted by itself once its time comes; the
/// tenant can also promote or roll one back by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let next = manifest
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"")
        .replace("Demo Store is open Mon-Fri 9am-6pm", "Demo Store is now open Mon-Sat 9am-7pm");
    let fields = [("canary", "50"), ("canary_min_invocations", "5"), ("canary_promote_after", "10m")];
    let (status, body) = deploy_with(&h, &next, &wasm, &fields).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut watch = h.watch();
    for i in 0..40 {
        h.inbound(&phone(i), "HOURS").await;
    }
    watch.events_settled("done", 40).await;
    let canary = &h.get("/v1/plugins/keyword-reply").await["canary"];
    assert_eq!(canary["state"], "healthy", "{canary}");
    assert_eq!(canary["canary"]["failures"], 0);
    assert_eq!(
        canary["canary"]["invocations"].as_i64().unwrap() + canary["active"]["invocations"].as_i64().unwrap(),
        40
    );

    // Its promotion falls due: the watcher promotes it without traffic.
    h.clock.advance(Duration::from_secs(11 * 60));
    eventually("the canary was promoted", || async {
        let p = h.get("/v1/plugins/keyword-reply").await;
        p["version"] == "0.2.0" && p["canary"].is_null()
    })
    .await;
    let (_, audit) = h.admin(Method::GET, "/admin/v1/audit?limit=20", None).await;
    assert!(audit["data"].as_array().unwrap().iter().any(|e| e["action"] == "plugin.canary.promote"), "{audit}");

    // By hand: a canary of 0.3.0, rolled back, then one promoted.
    let third = next.replace("version = \"0.2.0\"", "version = \"0.3.0\"");
    let (status, body) = deploy_with(&h, &third, &wasm, &[("canary", "10")]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let p = h.post("/v1/plugins/keyword-reply/canary/rollback", json!({}), StatusCode::OK).await;
    assert_eq!((p["version"].as_str(), p["canary"].is_null()), (Some("0.2.0"), true));
    let (status, body) =
        h.call(Method::POST, "/v1/plugins/keyword-reply/canary/promote", Some(json!({})), Some(&h.key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("NO_CANARY")), "{body}");
    let fourth = next.replace("version = \"0.2.0\"", "version = \"0.4.0\"");
    deploy_with(&h, &fourth, &wasm, &[("canary", "10")]).await;
    let p = h.post("/v1/plugins/keyword-reply/canary/promote", json!({}), StatusCode::OK).await;
    assert_eq!((p["version"].as_str(), p["canary"].is_null()), (Some("0.4.0"), true));
}

/// What the recording cannot know but supplies (the sandbox's random
/// source, the guest's own wall clock) replays too: live rolls differ from
/// one another, and a replay of the same version reproduces each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_reproduces_the_guests_randomness_and_wall_clock() {
    let h = harness().plugins(&["chaos"]).start().await;
    let mut watch = h.watch();
    for i in 0..8 {
        h.inbound(&phone(i), "DICE").await;
    }
    watch.events_settled("done", 8).await;
    let rolls: BTreeSet<String> =
        h.sent(8).await.iter().map(|s| s.body.split(' ').nth(1).unwrap().to_string()).collect();
    assert!(rolls.len() > 1, "live invocations are seeded afresh: {rolls:?}");
    let report = replay(&h, "chaos", json!({"version": "0.1.0"})).await;
    // The eight DICE, and the delivery reports of their replies (chaos
    // subscribes to them) that arrived by then.
    let totals = &report["totals"];
    assert!(totals["replayed"].as_u64().unwrap() >= 8, "{report}");
    assert_eq!(totals["same"], totals["replayed"], "{report}");
}
