//! Each of the three plugins end to end: HTTP in, the exact SMS out at the
//! simulator, statuses recorded.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_reply_answers_and_status_goes_queued_sent_delivered() {
    let h = harness().start().await;
    let mut watch = h.watch();
    let inbound = h.inbound(CUSTOMER, "hours?").await;

    let sent = h.sent(1).await;
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(sent[0].from, NUMBER);
    assert_eq!(sent[0].body, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
    watch.message_statuses(&[(&sent[0].message_id, "sent"), (&sent[0].message_id, "delivered")]).await;

    let page = h.get("/v1/messages?direction=outbound").await;
    let messages = page["data"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["id"], sent[0].message_id.as_str());
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["in_reply_to"], inbound.as_str());
    assert_eq!(m["plugin"], "keyword-reply");
    assert_eq!(m["provider_id"], sent[0].provider_id.as_str());
    let history: Vec<&str> = m["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "sending", "sent", "delivered"]);

    let received = h.get(&format!("/v1/messages/{inbound}")).await;
    assert_eq!(received["direction"], "inbound");
    assert_eq!(received["status"], "received");
    assert_eq!(received["processing"][0]["plugin"], "keyword-reply");
    assert_eq!(received["processing"][0]["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_reply_answers_anything_else_with_its_default() {
    let h = harness().start().await;
    let inbound = h.inbound(CUSTOMER, "what are your prices").await;
    let sent = h.sent(1).await;
    assert_eq!(
        sent[0].body,
        "Thanks for texting Demo Store! Reply HOURS for opening hours, STATUS for your order, RETURN for returns."
    );
    let replies = h.replies(&inbound).await;
    assert_eq!(replies.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_notifications_send_templates_and_answer_status() {
    let h = harness().start().await;
    let mut watch = h.watch();
    let order = json!({
        "id": "1042", "phone": CUSTOMER,
        "items": ["Mug", {"name": "Tea", "quantity": 2}], "total": 23.5,
    });
    h.event("order-notifications", "order.created", order).await;
    watch.events_settled("done", 1).await;
    h.event(
        "order-notifications",
        "order.shipped",
        json!({"id": "1042", "phone": CUSTOMER, "tracking_url": "https://track.example/1042"}),
    )
    .await;
    watch.events_settled("done", 1).await;
    h.event("order-notifications", "order.delivered", json!({"id": "1042", "phone": CUSTOMER})).await;
    let sent = h.sent(3).await;
    let bodies: Vec<&str> = sent.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "Thanks for your order #1042: Mug, 2 x Tea. Total $23.50.",
            "Order #1042 has shipped! Track it: https://track.example/1042",
            "Order #1042 was delivered. Enjoy!",
        ]
    );
    assert!(sent.iter().all(|s| s.to == CUSTOMER && s.from == NUMBER));

    // STATUS goes to order-notifications and to keyword-reply (both claim it).
    let inbound = h.inbound(CUSTOMER, "STATUS").await;
    let sent = h.sent(5).await;
    let mut replies: Vec<&str> = sent[3..].iter().map(|s| s.body.as_str()).collect();
    replies.sort();
    assert_eq!(replies, ["Checking your order status now...", "Your order #1042 is delivered."]);
    assert_eq!(h.replies(&inbound).await.len(), 2);

    // Another phone has no orders.
    h.inbound("+15557654321", "status").await;
    let sent = h.sent(7).await;
    assert!(sent[5..].iter().any(|s| s.body == "We have no orders for this number." && s.to == "+15557654321"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_reminders_fire_on_the_clock_and_survive_a_restart() {
    let h = harness().start().await;
    let mut watch = h.watch();
    let at = h.clock.now() + chrono::Duration::hours(72);
    let booking = json!({"id": "a-1", "phone": CUSTOMER, "doctor": "Dr. Lee", "at": at.to_rfc3339(), "tz": "UTC"});
    h.event("appointment-reminders", "appointment.booked", booking).await;
    watch.events_settled("done", 1).await;
    assert!(h.sim().sent().is_empty(), "booking sends nothing by itself");

    // 49 hours later the 24 h reminder is due (72 - 24 = 48).
    h.clock.advance(49 * HOUR);
    let sent = h.sent(1).await;
    let date = at.format("%a %b %-d").to_string();
    let time = at.format("%-I:%M %p").to_string();
    assert_eq!(
        sent[0].body,
        format!("Reminder: you see Dr. Lee tomorrow, {date} at {time}. Reply C to confirm or R to reschedule.")
    );
    assert_eq!(sent[0].to, CUSTOMER);

    // Restart the engine; the 2 h reminder is still pending and fires after.
    let h = h.restart().await;
    h.clock.advance(22 * HOUR);
    let sent = h.sim().wait_for(1).await; // a new engine, a new simulator
    assert_eq!(
        sent[0].body,
        format!("Reminder: you see Dr. Lee today at {time}. Reply C to confirm or R to reschedule.")
    );
    let outbound = h.get("/v1/messages?direction=outbound").await;
    let refs: Vec<&str> = outbound["data"].as_array().unwrap().iter().filter_map(|m| m["reference"].as_str()).collect();
    assert_eq!(refs, ["appointment:a-1:2h", "appointment:a-1:24h"], "each reminder sent exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_replies_confirm_and_reschedule() {
    let h = harness().start().await;
    let mut watch = h.watch();
    h.event(
        "appointment-reminders",
        "appointment.booked",
        json!({"id": "a-2", "phone": CUSTOMER, "doctor": "Dr. Ortiz", "at": "2099-03-04T09:15", "tz": "America/New_York"}),
    )
    .await;
    watch.events_settled("done", 1).await;

    h.inbound(CUSTOMER, "C").await;
    let sent = h.sent(1).await;
    assert_eq!(sent[0].body, "Thanks, your appointment with Dr. Ortiz on Wed Mar 4 at 9:15 AM is confirmed.");
    h.inbound(CUSTOMER, "r").await;
    let sent = h.sent(2).await;
    assert_eq!(sent[1].body, "We'll contact you to reschedule your appointment with Dr. Ortiz on Wed Mar 4.");
    h.inbound("+15557654321", "C").await;
    let sent = h.sent(3).await;
    assert_eq!(sent[2].body, "We could not find an upcoming appointment for this number.");
    assert_eq!(sent[2].to, "+15557654321");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_cancellation_cancels_its_reminders() {
    let h = harness().start().await;
    let mut watch = h.watch();
    let now = h.clock.now();
    let cancelled = json!({"id": "gone", "phone": CUSTOMER, "doctor": "Dr. Lee", "at": (now + chrono::Duration::hours(30)).to_rfc3339()});
    // A second appointment, later than the first, as a sentinel: timers fire
    // in due order, so once its reminders are out, the cancelled ones would
    // have been too.
    let sentinel = json!({"id": "kept", "phone": "+15557654321", "doctor": "Dr. Lee", "at": (now + chrono::Duration::hours(31)).to_rfc3339()});
    h.event("appointment-reminders", "appointment.booked", cancelled).await;
    h.event("appointment-reminders", "appointment.booked", sentinel).await;
    watch.events_settled("done", 2).await;
    let plugin_id = h.plugin_id("appointment-reminders");
    let pending = |key: &'static str| {
        let (db, tenant, plugin) = (h.app.engine.db.clone(), h.tenant.clone(), plugin_id.clone());
        async move { db.timer_pending(&tenant, &plugin, key).await.unwrap() }
    };
    assert!(pending("reminder:gone:24h").await && pending("reminder:gone:2h").await);
    h.event("appointment-reminders", "appointment.cancelled", json!({"id": "gone"})).await;
    watch.events_settled("done", 1).await;
    assert!(!pending("reminder:gone:24h").await && !pending("reminder:gone:2h").await);
    assert!(pending("reminder:kept:24h").await && pending("reminder:kept:2h").await);

    h.clock.advance(30 * HOUR);
    let sent = h.sent(2).await;
    assert!(sent.iter().all(|s| s.to == "+15557654321"), "only the kept appointment's reminders: {sent:?}");
}

/// A burst larger than the scheduler's first batch (it starts small and
/// doubles): every reminder due at the same instant goes out, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_reminders_due_at_once_go_out_each_exactly_once() {
    let h = harness().start().await;
    let mut watch = h.watch();
    let at = (h.clock.now() + chrono::Duration::hours(30)).to_rfc3339();
    for i in 0..40 {
        let booked = json!({"id": format!("b-{i}"), "phone": format!("+1555200{i:04}"), "doctor": "Dr. Lee", "at": at});
        h.event("appointment-reminders", "appointment.booked", booked).await;
    }
    watch.events_settled("done", 40).await;

    // Every 24-hour reminder falls due at this one instant.
    h.clock.advance(6 * HOUR);
    let sent = h.sent(40).await;
    let mut to: Vec<&str> = sent.iter().map(|s| s.to.as_str()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 40, "one reminder to each of the forty numbers");
    let plugin_id = h.plugin_id("appointment-reminders");
    for i in 0..40 {
        let key = format!("reminder:b-{i}:24h");
        assert!(!h.app.engine.db.timer_pending(&h.tenant, &plugin_id, &key).await.unwrap(), "{key} fired");
    }
    let outbound = h.get("/v1/messages?direction=outbound&limit=100").await;
    let mut refs: Vec<&str> =
        outbound["data"].as_array().unwrap().iter().filter_map(|m| m["reference"].as_str()).collect();
    refs.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("appointment:b-{i}:24h")).collect();
    expected.sort();
    assert_eq!(refs, expected, "each reminder sent exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_reach_the_plugin_and_carrier_failures_are_recorded() {
    use switchboard::connectors::ConnectorSettings;
    use switchboard::connectors::simulator::SimulatorSettings;
    let h = harness()
        .plugins(&["chaos", "keyword-reply"])
        .settings(|s| {
            let mut sim = SimulatorSettings::default();
            sim.outcomes.insert("+15557770000".into(), "undelivered:30003".into());
            sim.outcomes.insert("+15557770001".into(), "failed:21211".into());
            s.connectors.insert("simulator".into(), ConnectorSettings::Simulator(sim));
        })
        .start()
        .await;

    // The probe's delivery report comes back to the plugin's on-delivery.
    h.inbound(CUSTOMER, "DLR").await;
    let sent = h.sent(2).await;
    assert_eq!(sent[0].body, "delivery probe");
    assert_eq!(sent[1].body, "probe delivered (-)");
    h.inbound("+15557770000", "DLR").await;
    let sent = h.sent(4).await;
    assert_eq!(sent[3].body, "probe undelivered (30003)");

    // A carrier that refuses at send time: the message fails with its code.
    let mut watch = h.watch();
    let refused = h.inbound("+15557770001", "HOURS").await;
    watch
        .until(|n| matches!(n, switchboard::pipeline::Notification::MessageStatus { status, .. } if status == "failed"))
        .await;
    let replies = h.replies(&refused).await;
    assert_eq!(replies[0]["status"], "failed");
    assert_eq!(replies[0]["error_code"], "21211");
    let undelivered = h.get("/v1/messages?status=undelivered").await;
    assert_eq!(undelivered["data"][0]["error_code"], "30003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_can_schedule_a_message_for_later() {
    let h = harness().plugins(&["chaos"]).start().await;
    let mut watch = h.watch();
    let inbound = h.inbound(CUSTOMER, "LATER").await;
    watch.events_settled("done", 1).await;
    let replies = h.replies(&inbound).await;
    assert_eq!(replies[0]["status"], "scheduled");
    assert!(h.sim().sent().is_empty());
    h.clock.advance(HOUR);
    let sent = h.sent(1).await;
    assert_eq!(sent[0].body, "an hour later");
}
