//! Edge 7: each carrier message is handled once, and each report lands on
//! its own message. Inbound carrier ids are deduplicated; provider ids are
//! unique per connector across restarts (a reused id never updates an
//! older message); long-message parts are keyed by connector, sender,
//! recipient, reference and total, and parts that never complete are
//! delivered as what came, marked, after the timeout.

use super::*;
use serde_json::json;
use switchboard::connectors::ConnectorSettings;
use switchboard::tenancy::{Route, Strategy};

fn connector(text: &str) -> ConnectorSettings {
    toml::from_str(text).expect("connector settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_retry_of_an_inbound_message_runs_nothing_twice() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let mut watch = h.watch();
    let body =
        || json!({"from": CUSTOMER, "to": NUMBER, "message": "HOURS", "id": "carrier-42"}).to_string().into_bytes();
    let (status, first) = post_raw(&h, "/v1/inbound/generic", "application/json", body(), &[]).await;
    assert_eq!((status, first["status"].as_str()), (StatusCode::OK, Some("received")), "{first}");
    watch.events_settled("done", 1).await;
    for _ in 0..3 {
        let (status, again) = post_raw(&h, "/v1/inbound/generic", "application/json", body(), &[]).await;
        assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("duplicate")), "{again}");
        assert_eq!((again["id"].clone(), again["routed"].clone()), (first["id"].clone(), json!(0)));
    }
    assert_eq!(messages(&h, "inbound").await.len(), 1);
    h.sent(1).await;
    assert_eq!(messages(&h, "outbound").await.len(), 1, "one reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_after_a_restart_land_on_their_own_messages() {
    let h = harness().plugins(&[]).start().await;
    let mut ids = Vec::new();
    let mut watch = h.watch();
    for i in 0..3 {
        let m = h
            .post("/v1/messages", json!({"to": CUSTOMER, "message": format!("before {i}")}), StatusCode::ACCEPTED)
            .await;
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    let wanted: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "delivered")).collect();
    watch.message_statuses(&wanted).await;
    let h = h.restart().await;
    let mut watch = h.watch();
    let mut after = Vec::new();
    for i in 0..3 {
        let m = h
            .post("/v1/messages", json!({"to": CUSTOMER, "message": format!("after {i}")}), StatusCode::ACCEPTED)
            .await;
        after.push(m["id"].as_str().unwrap().to_string());
    }
    let wanted: Vec<(&str, &str)> = after.iter().map(|id| (id.as_str(), "delivered")).collect();
    watch.message_statuses(&wanted).await;
    let mut provider_ids = std::collections::HashSet::new();
    for id in ids.iter().chain(&after) {
        let m = h.get(&format!("/v1/messages/{id}")).await;
        assert_eq!(m["status"], "delivered", "{m}");
        assert!(provider_ids.insert(m["provider_id"].as_str().unwrap().to_string()), "provider ids are unique: {m}");
    }
}

/// A gateway that answers every send with the same id.
async fn same_id_gateway() -> String {
    let app = axum::Router::new().route("/sms", axum::routing::post(|| async { axum::Json(json!({"id": "same-id"})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_that_reuses_an_id_never_moves_another_message() {
    let url = same_id_gateway().await;
    let text =
        format!("kind = \"http\"\nurl = \"{url}/sms\"\nwebhook_secret = \"{}\"", common::carrier::GATEWAY_SECRET);
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.connectors.insert("gw".into(), connector(&text));
            s.routes =
                vec![Route { prefix: String::new(), connectors: vec!["gw".into()], strategy: Strategy::Priority }];
        })
        .start()
        .await;
    let mut watch = h.watch();
    let first = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "first"}), StatusCode::ACCEPTED).await;
    let first = first["id"].as_str().unwrap().to_string();
    watch.message_status(&first, "sent").await;
    let second = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "second"}), StatusCode::ACCEPTED).await;
    let second = second["id"].as_str().unwrap().to_string();
    watch.message_status(&second, "sent").await;
    let report = json!({"id": "same-id", "status": "delivered"}).to_string().into_bytes();
    let signature = common::carrier::gateway_signature(&report);
    let (status, answer) =
        post_raw(&h, "/v1/status/gw", "application/json", report, &[("x-sms-signature", signature)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    watch.message_status(&second, "delivered").await;
    assert_eq!(h.get(&format!("/v1/messages/{first}")).await["status"], "sent", "the older message is untouched");
}

fn part(to: &str, reference: &str, total: u8, n: u8, text: &str) -> String {
    format!(
        "/v1/inbound/vonage?msisdn=15551234567&to={}&messageId=P{reference}-{to}-{total}-{n}&text={text}&concat=true&concat-ref={reference}&concat-total={total}&concat-part={n}",
        to.trim_start_matches('+')
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_belong_together_by_recipient_and_total_and_stale_ones_are_delivered_marked() {
    let h = harness()
        .plugins(&[])
        .number_on("vonage")
        .settings(|s| {
            let text = "kind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nunsigned_webhooks = true";
            s.connectors.insert("vonage".into(), connector(text));
        })
        .start()
        .await;
    h.app.control.add_number(&h.tenant, "+15550000001", "vonage", false).await.unwrap();
    // One reference, one sender, two recipients: two messages.
    for (to, a, b) in [(NUMBER, "to-a-", "one"), ("+15550000001", "to-b-", "two")] {
        let (s, answer) = h.call(Method::GET, &part(to, "7", 2, 1, a), None, None).await;
        assert_eq!((s, answer["status"].as_str()), (StatusCode::OK, Some("part_stored")), "{answer}");
        let _ = b;
    }
    for (to, b) in [(NUMBER, "one"), ("+15550000001", "two")] {
        let (s, answer) = h.call(Method::GET, &part(to, "7", 2, 2, b), None, None).await;
        assert_eq!((s, answer["status"].as_str()), (StatusCode::OK, Some("received")), "{answer}");
    }
    let bodies: Vec<String> =
        messages(&h, "inbound").await.iter().map(|m| m["message"].as_str().unwrap().to_string()).collect();
    assert!(bodies.contains(&"to-a-one".to_string()) && bodies.contains(&"to-b-two".to_string()), "{bodies:?}");

    // Part numbers outside the total are refused.
    for (total, n) in [(3, 0), (3, 4)] {
        let (s, answer) = h.call(Method::GET, &part(NUMBER, "8", total, n, "x"), None, None).await;
        assert_eq!((s, code(&answer)), (StatusCode::BAD_REQUEST, "INVALID_FIELD"), "{answer}");
    }

    // Parts 1 and 3 of 3 arrive; part 2 never does.
    h.call(Method::GET, &part(NUMBER, "9", 3, 1, "first-"), None, None).await;
    h.call(Method::GET, &part(NUMBER, "9", 3, 3, "third"), None, None).await;
    let limits = switchboard::limits::Limits::default();
    h.clock.advance(std::time::Duration::from_secs(limits.inbound_parts_timeout_s + 120));
    eventually("the incomplete message is delivered", || async {
        messages(&h, "inbound").await.iter().any(|m| m["message"] == "first-third")
    })
    .await;
    let m = messages(&h, "inbound").await.into_iter().find(|m| m["message"] == "first-third").unwrap();
    assert_eq!(m["error_code"], "INCOMPLETE", "{m}");
    // The reference is free again.
    h.call(Method::GET, &part(NUMBER, "9", 2, 1, "new-"), None, None).await;
    let (s, answer) = h.call(Method::GET, &part(NUMBER, "9", 2, 2, "message"), None, None).await;
    assert_eq!((s, answer["status"].as_str()), (StatusCode::OK, Some("received")), "{answer}");
}

/// A batch of inbound messages as ingest hands it to the store; `ids` are
/// the carrier's ids.
fn inbound_batch(h: &Harness, ids: &[&str]) -> Vec<switchboard::store::NewInbound> {
    use switchboard::store::*;
    ids.iter()
        .map(|id| NewInbound {
            message: NewMessage {
                body: "hello".into(),
                connector: Some("generic".into()),
                ..new_message(h, Direction::Inbound)
            },
            events: Vec::new(),
            lease: Lease { owner: "node".into(), until: 0 },
            consumes_parts: None,
            consent: None,
            confirmation: None,
            confirmations_per_hour: 0,
            provider_id: Some(id.to_string()),
        })
        .collect()
}

/// The store records a batch's carrier ids in one statement when no id
/// repeats inside it, and one by one when one does: either way a retry is
/// answered with the message first accepted, whether that came in an
/// earlier batch or earlier in the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_ids_in_one_batch_are_deduplicated_like_ids_across_batches() {
    use switchboard::store::InboundOutcome::{Duplicate, Inserted};
    let h = harness().plugins(&[]).start().await;
    let db = &h.app.engine.db;
    let first = inbound_batch(&h, &["c-1", "c-2"]);
    let outcomes = db.insert_inbound(&first).await.unwrap();
    assert_eq!(outcomes, [Inserted { confirmed: false }, Inserted { confirmed: false }]);
    // Distinct ids, one of them a retry from the first batch.
    let second = inbound_batch(&h, &["c-3", "c-1"]);
    let outcomes = db.insert_inbound(&second).await.unwrap();
    assert_eq!(outcomes, [Inserted { confirmed: false }, Duplicate { message_id: first[0].message.id.clone() }]);
    // An id twice in one batch, and a retry from the first batch.
    let third = inbound_batch(&h, &["c-4", "c-4", "c-2"]);
    let outcomes = db.insert_inbound(&third).await.unwrap();
    assert_eq!(
        outcomes,
        [
            Inserted { confirmed: false },
            Duplicate { message_id: third[0].message.id.clone() },
            Duplicate { message_id: first[1].message.id.clone() },
        ]
    );
    let stored = messages(&h, "inbound").await;
    assert_eq!(stored.len(), 4, "c-1, c-2, c-3 and c-4 once each");
}
