//! Compliance the host enforces whatever the plugins do: STOP/START/HELP
//! keywords with confirmations, opt-outs refusing every kind of send
//! (API, bulk, scheduled, plugin), consent records and their import, the
//! per-number scope, and quiet hours.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use switchboard::clock::Clock;
use switchboard::pipeline::Notification;

const OTHER_CUSTOMER: &str = "+15557654321";

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn send(h: &Harness, body: Value) -> (StatusCode, Value) {
    h.call(Method::POST, "/v1/messages", Some(body), Some(&h.key)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_opts_out_with_one_confirmation_and_blocks_later_plugin_and_api_sends() {
    let h = harness().plugins(&["chaos", "keyword-reply"]).start().await;
    let stop = h.inbound(CUSTOMER, "Stop").await;
    let sent = h.sent(1).await;
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(
        sent[0].body,
        "You are unsubscribed from Test tenant and will receive no more messages. Reply START to resubscribe."
    );
    let message = h.get(&format!("/v1/messages/{stop}")).await;
    assert_eq!(message["processing"], json!([]), "STOP is not routed to plugins");

    let opt_outs = h.get("/v1/opt-outs").await;
    assert_eq!(opt_outs["data"].as_array().unwrap().len(), 1);
    let record = &opt_outs["data"][0];
    assert_eq!((record["recipient"].as_str(), record["source"].as_str()), (Some(CUSTOMER), Some("keyword")));
    assert_eq!(record["keyword"], "STOP");
    assert!(record["opted_out_at"].as_str().unwrap().ends_with('Z'));
    assert!(record.get("number").is_none(), "tenant-wide by default");

    // API: single and bulk sends are refused, naming the recipient's field.
    let (status, body) = send(&h, json!({"to": CUSTOMER, "message": "sale!"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "RECIPIENT_OPTED_OUT"), "{body}");
    assert_eq!(body["error"]["field"], "to");
    let (status, body) = send(&h, json!({"to": [OTHER_CUSTOMER, CUSTOMER], "message": "sale!"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("to[1]")), "{body}");
    let batch = json!({"messages": [{"to": OTHER_CUSTOMER, "message": "a"}, {"to": CUSTOMER, "message": "b"}]});
    let (status, body) = h.call(Method::POST, "/v1/messages/batch", Some(batch), Some(&h.key)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("messages[1].to")), "{body}");

    // Plugins get a typed error they can act on.
    h.inbound(OTHER_CUSTOMER, &format!("NOTIFY {CUSTOMER}")).await;
    let sent = h.sent(2).await;
    assert_eq!(sent[1].to, OTHER_CUSTOMER);
    assert_eq!(sent[1].body, "opted-out: +15***67 opted out of this tenant's messages");

    let compliance = h.get("/v1/compliance").await;
    assert_eq!(compliance["refused_sends"], 4);
    assert_eq!(h.sim().sent().len(), 2, "nothing reached the opted-out number but the confirmation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_answers_and_start_opts_back_in_with_a_confirmation() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    h.inbound(CUSTOMER, "help").await;
    assert_eq!(
        h.sent(1).await[0].body,
        "Test tenant: reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply."
    );
    h.inbound(CUSTOMER, "UNSUBSCRIBE").await;
    h.sent(2).await;
    let (status, _) = send(&h, json!({"to": CUSTOMER, "message": "hello"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let start = h.inbound(CUSTOMER, "start").await;
    assert_eq!(h.sent(3).await[2].body, "You are subscribed to Test tenant again. Reply STOP to unsubscribe.");
    assert_eq!(h.get(&format!("/v1/messages/{start}")).await["processing"], json!([]));
    assert_eq!(h.get("/v1/opt-outs").await["data"], json!([]));
    let (status, body) = send(&h, json!({"to": CUSTOMER, "message": "welcome back"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(h.sent(4).await[3].body, "welcome back");

    // "stop sending me coupons" is not a STOP: it goes to the plugins.
    let sentence = h.inbound(CUSTOMER, "stop sending me coupons").await;
    assert_eq!(h.get(&format!("/v1/messages/{sentence}")).await["processing"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_replies_and_scope_are_configurable_per_tenant() {
    let h = harness().plugins(&[]).start().await;
    let second = "+15550000002";
    h.admin(
        Method::POST,
        &format!("/admin/v1/tenants/{}/numbers", h.tenant),
        Some(json!({"number": second, "connector": "simulator"})),
    )
    .await;
    let mut settings = h.get("/v1/compliance").await["settings"].clone();
    settings["scope"] = json!("number");
    settings["stop_keywords"] = json!(["ARRET", "STOP"]);
    settings["stop_reply"] = json!("{tenant}: vous ne recevrez plus de messages.");
    let (status, body) = h.call(Method::PUT, "/v1/compliance", Some(settings.clone()), Some(&h.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    h.inbound(CUSTOMER, "arret").await;
    assert_eq!(h.sent(1).await[0].body, "Test tenant: vous ne recevrez plus de messages.");
    let record = &h.get("/v1/opt-outs").await["data"][0];
    assert_eq!(record["number"], NUMBER);
    // Opted out of the first number only.
    let (status, body) = send(&h, json!({"to": CUSTOMER, "from": NUMBER, "message": "x"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "RECIPIENT_OPTED_OUT"));
    let (status, body) = send(&h, json!({"to": CUSTOMER, "from": second, "message": "y"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    settings["stop_keywords"] = json!(["two words"]);
    let (status, body) = h.call(Method::PUT, "/v1/compliance", Some(settings), Some(&h.key)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("stop_keywords")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_outs_can_be_imported_and_listed_with_their_consent_record() {
    let h = harness().plugins(&[]).start().await;
    let import = json!({"opt_outs": [
        {"recipient": CUSTOMER, "opted_out_at": "2026-01-02T03:04:05Z"},
        {"recipient": "+1 (555) 765-4321", "number": NUMBER},
    ]});
    let result = h.post("/v1/opt-outs", import.clone(), StatusCode::OK).await;
    assert_eq!(result, json!({"imported": 2, "already_opted_out": 0}));
    let again = h.post("/v1/opt-outs", import, StatusCode::OK).await;
    assert_eq!(again, json!({"imported": 0, "already_opted_out": 2}));

    let list = h.get("/v1/opt-outs?limit=1").await;
    assert_eq!(list["data"][0]["recipient"], CUSTOMER);
    assert_eq!(list["data"][0]["source"], "import");
    assert_eq!(list["data"][0]["opted_out_at"], "2026-01-02T03:04:05.000Z");
    let next = h.get(&format!("/v1/opt-outs?after={}", list["next_after"].as_str().unwrap().replace('+', "%2B"))).await;
    assert_eq!(next["data"][0]["recipient"], OTHER_CUSTOMER);
    assert_eq!(next["data"][0]["number"], NUMBER);

    let (status, body) = send(&h, json!({"to": OTHER_CUSTOMER, "message": "x"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "RECIPIENT_OPTED_OUT"));
    let bad = json!({"opt_outs": [{"recipient": CUSTOMER}, {"recipient": "not a number"}]});
    let (status, body) = h.call(Method::POST, "/v1/opt-outs", Some(bad), Some(&h.key)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("opt_outs[1].recipient")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_to_someone_who_opted_out_meanwhile_is_not_sent() {
    let clock = Clock::frozen(1_795_435_200_000); // 2026-11-23 12:00 UTC
    let h = harness().plugins(&[]).clock(clock.clone()).start().await;
    let queued = h
        .post(
            "/v1/messages",
            json!({"to": CUSTOMER, "message": "tomorrow's news", "schedule_time": "2026-11-24T09:00:00Z"}),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = queued["id"].as_str().unwrap().to_string();
    let mut watch = h.watch();
    h.inbound(CUSTOMER, "STOP").await;
    h.sent(1).await;
    // The confirmation's send is recorded before the clock jumps past its lease.
    watch.until(|n| matches!(n, Notification::MessageStatus { status, .. } if status == "sent")).await;
    clock.advance_to(1_795_510_800_000); // 2026-11-24 09:00 UTC
    watch.message_status(&id, "failed").await;
    let message = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(message["error_code"], "RECIPIENT_OPTED_OUT", "{message}");
    assert_eq!(h.sim().sent().len(), 1, "only the STOP confirmation went out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_non_urgent_sends_until_they_end_in_the_recipients_time_zone() {
    // 22:30 in London (UTC in winter), 17:30 in New York.
    let clock = Clock::frozen(1_795_473_000_000); // 2026-11-23 22:30 UTC
    let h = harness().plugins(&["keyword-reply"]).clock(clock.clone()).start().await;
    let mut settings = h.get("/v1/compliance").await["settings"].clone();
    settings["quiet_hours"] = json!({"start": "21:00", "end": "08:00"});
    let (status, body) = h.call(Method::PUT, "/v1/compliance", Some(settings), Some(&h.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let london = "+447400123456";
    let held = h.post("/v1/messages", json!({"to": london, "message": "sale"}), StatusCode::ACCEPTED).await;
    assert_eq!(held["status"], "scheduled");
    assert_eq!(held["messages"][0]["scheduled_at"], "2026-11-24T08:00:00.000Z");
    let urgent = h
        .post("/v1/messages", json!({"to": london, "message": "code 1234", "urgent": true}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(urgent["status"], "queued");
    let new_york = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "sale"}), StatusCode::ACCEPTED).await;
    assert_eq!(new_york["status"], "queued");
    // A plugin's reply to someone who just wrote is not held.
    h.inbound_to(NUMBER, london, "HOURS").await;
    let sent = h.sent(3).await;
    let mut bodies: Vec<&str> = sent.iter().map(|s| s.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.", "code 1234", "sale"]);

    let mut watch = h.watch();
    clock.advance_to(1_795_507_200_000); // 2026-11-24 08:00 UTC
    watch.message_status(held["id"].as_str().unwrap(), "sent").await;
    assert_eq!(h.sent(4).await[3].to, london);

    let (status, body) = h
        .call(
            Method::PUT,
            "/v1/compliance",
            Some(json!({"quiet_hours": {"start": "25:00", "end": "08:00"}})),
            Some(&h.key),
        )
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("quiet_hours")));
}
