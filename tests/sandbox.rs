//! Hostile and broken plugins are contained: traps, loops, memory bombs
//! and errors commit nothing, are retried then dead-lettered, and the
//! engine keeps serving. Effects are exactly-once and kv is isolated.

mod common;

use common::*;
use serde_json::Value;
use switchboard::pipeline::Notification;

/// The processing record of an inbound message's first event.
async fn processing(h: &Harness, inbound: &str) -> Value {
    let m = h.get(&format!("/v1/messages/{inbound}")).await;
    m["processing"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_after_send_commits_nothing_and_is_retried_then_dead_lettered() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.event_max_attempts = 3).start().await;
    let mut watch = h.watch();
    let trap = h.inbound(CUSTOMER, "TRAP").await;
    watch.events_settled("dead", 1).await;

    let event = processing(&h, &trap).await;
    assert_eq!(event["status"], "dead");
    assert_eq!(event["attempts"], 3);
    let error = event["last_error"].as_str().unwrap();
    assert!(error.contains("deliberate trap after send"), "{error}");

    // The kv write made before the trap is not visible, and the reply sent
    // before it never left: the only message out is PEEK's answer.
    h.inbound(CUSTOMER, "PEEK").await;
    let sent = h.sent(1).await;
    assert_eq!(sent[0].body, "trap key: absent");
    assert!(h.replies(&trap).await.is_empty());
    assert_eq!(h.sim().sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_by_the_cpu_limit_while_others_are_served() {
    let h = harness()
        .plugins(&["chaos", "keyword-reply"])
        .settings(|s| {
            s.limits.fuel_per_invocation = 50_000_000;
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let mut watch = h.watch();
    let spin = h.inbound(CUSTOMER, "LOOP").await;
    let hours = h.inbound("+15557654321", "HOURS").await;
    watch.events_settled("dead", 1).await;
    let event = processing(&h, &spin).await;
    assert_eq!(event["status"], "dead");
    assert!(event["last_error"].as_str().unwrap().contains("CPU limit exceeded"), "{event}");
    let sent = h.sent(1).await;
    assert_eq!(sent[0].to, "+15557654321");
    assert_eq!(h.replies(&hours).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_with_fuel_to_spare_is_stopped_by_the_time_limit() {
    let h = harness()
        .plugins(&["chaos"])
        .settings(|s| {
            s.limits.fuel_per_invocation = u64::MAX / 2;
            s.limits.invocation_timeout_ms = 200;
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let mut watch = h.watch();
    let spin = h.inbound(CUSTOMER, "LOOP").await;
    watch.events_settled("dead", 1).await;
    let event = processing(&h, &spin).await;
    assert!(event["last_error"].as_str().unwrap().contains("time limit exceeded"), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let h = harness()
        .plugins(&["chaos", "keyword-reply"])
        .settings(|s| {
            s.limits.memory_bytes = 16 << 20;
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let mut watch = h.watch();
    let bomb = h.inbound(CUSTOMER, "BOMB").await;
    watch.events_settled("dead", 1).await;
    let event = processing(&h, &bomb).await;
    assert!(event["last_error"].as_str().unwrap().contains("memory limit exceeded"), "{event}");
    // Still serving.
    h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.sent(1).await[0].to, CUSTOMER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_error_is_retried_with_backoff_then_dead_lettered() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.event_max_attempts = 4).start().await;
    let mut watch = h.watch();
    let fail = h.inbound(CUSTOMER, "FAIL").await;
    let retries = watch.events_settled("retry", 3).await;
    watch.events_settled("dead", 1).await;
    assert_eq!(retries.len(), 3);
    let event = processing(&h, &fail).await;
    assert_eq!(event["attempts"], 4);
    assert_eq!(event["last_error"], "plugin returned an error: deliberate failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_a_fresh_instance() {
    let h = harness().plugins(&["chaos"]).start().await;
    for _ in 0..3 {
        h.inbound(CUSTOMER, "FRESH").await;
    }
    let sent = h.sent(3).await;
    assert!(sent.iter().all(|s| s.body == "instance call 1"), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_kv_increments_are_atomic() {
    let h = harness().plugins(&["chaos"]).start().await;
    let mut watch = h.watch();
    let posts = (0..40).map(|_| h.event("chaos", "count", Value::Null));
    futures::future::join_all(posts).await;
    watch.events_settled("done", 40).await;
    h.inbound(CUSTOMER, "COUNT").await;
    assert_eq!(h.sent(1).await[0].body, "count 41");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_a_plugin_can_handle_come_back_as_errors() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.sends_per_invocation = 10).start().await;
    h.inbound(CUSTOMER, "SPAM").await;
    let sent = h.sent(1).await;
    assert_eq!(sent[0].body, "quota-exceeded: at most 10 messages per invocation");
    h.inbound(CUSTOMER, "SPOOF").await;
    let sent = h.sent(2).await;
    assert_eq!(sent[1].body, "access-denied: from: \"+15559999999\" is not one of this tenant's numbers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_event_is_readable_through_the_api() {
    let h = harness().plugins(&["chaos"]).settings(|s| s.limits.event_max_attempts = 1).start().await;
    let mut watch = h.watch();
    h.inbound(CUSTOMER, "TRAP").await;
    let n = watch.until(|n| matches!(n, Notification::EventSettled { status: "dead", .. })).await;
    let Notification::EventSettled { event_id, .. } = n else { unreachable!() };
    let event = h.get(&format!("/v1/plugins/chaos/events/{event_id}")).await;
    assert_eq!(event["plugin"], "chaos");
    assert_eq!(event["kind"], "inbound");
    assert_eq!(event["status"], "dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_compiled_once_and_loaded_from_the_disk_cache_after_a_restart() {
    use std::sync::atomic::Ordering::Relaxed;
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(|s| s.compile_cache_dir = Some(s.data_dir.join("compiled")))
        .start()
        .await;
    assert_eq!(h.app.engine.runtime.stats().compiled.load(Relaxed), 1);
    let h = h.restart().await;
    h.inbound(CUSTOMER, "HOURS").await;
    h.sent(1).await;
    assert_eq!(h.app.engine.runtime.stats().compiled.load(Relaxed), 0, "no recompilation after a restart");
    assert_eq!(h.app.engine.runtime.stats().loaded_from_cache.load(Relaxed), 1);
}
