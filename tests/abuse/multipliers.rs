//! Edge 10: limits an attacker cannot multiply — per tenant across all its
//! keys, on the admin API, and on failed authentications per source
//! address; tables anonymous traffic writes have retention. And the
//! smaller points: a message to someone else from an inbound handler is
//! not a reply (it waits out quiet hours), the send-time opt-out check
//! fails closed, and a message that cannot be marked `sending` is not sent.

use super::*;
use serde_json::json;
use switchboard::connectors::ConnectorSettings;
use switchboard::pipeline::Notification;
use switchboard::secrets::KeyMode;
use switchboard::tenancy::{Route, Strategy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_rate_limit_holds_across_all_its_keys() {
    let h = harness().plugins(&[]).start().await;
    let body = json!({"requests_per_day": 10});
    let (status, _) = h.admin(Method::PUT, &format!("/admin/v1/tenants/{}/limits", h.tenant), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys = vec![h.key.clone()];
    for _ in 0..3 {
        keys.push(h.app.control.create_api_key(&h.tenant, KeyMode::Live, None).await.unwrap());
    }
    let mut allowed = 0;
    for i in 0..40 {
        let (status, answer) = h.call(Method::GET, "/v1/account", None, Some(&keys[i % 4])).await;
        match status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(code(&answer), "RATE_LIMITED"),
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(allowed, 10, "four keys share one tenant's limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_rate_limited() {
    let h = harness().plugins(&[]).settings(|s| s.limits.admin_requests_per_second = 1).start().await;
    let mut refused = 0;
    for _ in 0..20 {
        let (status, answer) = h.admin(Method::GET, "/admin/v1/tenants", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&answer), "RATE_LIMITED");
            refused += 1;
        }
    }
    assert!(refused > 0, "twenty requests at once pass a one-per-second limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_signatures_are_limited_per_source_address() {
    let gw = "kind = \"http\"\nwebhook_secret = \"gw-secret\"";
    let h = harness()
        .plugins(&[])
        .number_on("gw")
        .settings(move |s| {
            s.connectors.insert("gw".into(), toml::from_str::<ConnectorSettings>(gw).unwrap());
            s.limits.failed_auth_per_minute = 5;
        })
        .start()
        .await;
    // Keep the whole test inside one minute of the engine's clock.
    let second = (h.clock.now_ms() / 1000) % 60;
    if second > 40 {
        h.clock.advance(std::time::Duration::from_secs(61 - second as u64));
    }
    let base = h.serve().await;
    let from = |ip: [u8; 4]| reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap();
    let attacker = from([127, 0, 0, 1]);
    let body = json!({"from": CUSTOMER, "to": NUMBER, "message": "HOURS"}).to_string();
    let post = |client: &reqwest::Client, signature: String| {
        client
            .post(format!("{base}/v1/inbound/gw"))
            .header("content-type", "application/json")
            .header("x-sms-signature", signature)
            .body(body.clone())
            .send()
    };
    for _ in 0..5 {
        assert_eq!(post(&attacker, "00".repeat(32)).await.unwrap().status(), 403);
    }
    // Even a good signature from that address now waits out the minute...
    let good = switchboard::connectors::http::signature("gw-secret", body.as_bytes());
    let blocked = post(&attacker, good.clone()).await.unwrap();
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    // ...while another address is served.
    let other = from([127, 0, 0, 2]);
    assert_eq!(post(&other, good).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_for_unknown_ids_are_kept_only_for_their_retention() {
    let app = axum::Router::new().route("/sms", axum::routing::post(|| async { axum::Json(json!({"id": "late-1"})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let text = format!("kind = \"http\"\nurl = \"{url}\"\nwebhook_secret = \"{}\"", common::carrier::GATEWAY_SECRET);
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.connectors.insert("gw".into(), toml::from_str::<ConnectorSettings>(&text).unwrap());
            s.routes =
                vec![Route { prefix: String::new(), connectors: vec!["gw".into()], strategy: Strategy::Priority }];
        })
        .start()
        .await;
    // Anyone holding the gateway's secret... or the gateway itself, reporting
    // an id no message has (yet).
    let report = json!({"id": "late-1", "status": "delivered"}).to_string().into_bytes();
    let signature = common::carrier::gateway_signature(&report);
    let (status, _) =
        post_raw(&h, "/v1/status/gw", "application/json", report, &[("x-sms-signature", signature)]).await;
    assert_eq!(status, StatusCode::OK);
    let mut watch = h.watch();
    let limits = switchboard::limits::Limits::default();
    h.clock.advance(std::time::Duration::from_secs(limits.carrier_ids_retention_s + 3600));
    watch.until(|n| matches!(n, Notification::Pruned { rows } if *rows > 0)).await;
    // The stale report is gone: a send the gateway now answers with that id stays `sent`.
    let m = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "x"}), StatusCode::ACCEPTED).await;
    let id = m["id"].as_str().unwrap().to_string();
    watch.message_status(&id, "sent").await;
    assert_eq!(h.get(&format!("/v1/messages/{id}")).await["status"], "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_someone_else_from_an_inbound_handler_waits_out_quiet_hours() {
    let h = harness().plugins(&["chaos"]).start().await;
    let now = chrono::Utc::now().with_timezone(&chrono_tz::America::New_York);
    let hhmm = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%H:%M").to_string();
    let mut settings = h.get("/v1/compliance").await["settings"].clone();
    settings["quiet_hours"] = json!({
        "start": hhmm(now - chrono::Duration::hours(1)),
        "end": hhmm(now + chrono::Duration::hours(1)),
        "timezone": "America/New_York",
    });
    let (status, answer) = h.call(Method::PUT, "/v1/compliance", Some(settings), Some(&h.key)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let inbound = h.inbound(CUSTOMER, "NOTIFY +15557654321").await;
    // The reply to the sender goes now; the notification to the other number waits.
    let sent = h.sent(1).await;
    assert_eq!((sent[0].to.as_str(), sent[0].body.as_str()), (CUSTOMER, "notified"));
    let outbound = messages(&h, "outbound").await;
    let note = outbound.iter().find(|m| m["to"] == "+15557654321").expect("the notification");
    assert_eq!(note["status"], "scheduled", "{note}");
    assert!(note["in_reply_to"].is_null(), "not a reply: {note}");
    let reply = outbound.iter().find(|m| m["to"] == CUSTOMER).unwrap();
    assert_eq!(reply["in_reply_to"], inbound.as_str());
}

/// Runs SQL on the engine's own database, behind its back.
async fn sabotage(h: &Harness, sqlite: &[&str], postgres: &[&str]) {
    use sqlx::Connection;
    let url = h.database_url();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in sqlite {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in postgres {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut conn).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_time_opt_out_check_fails_closed() {
    let h = harness().plugins(&[]).start().await;
    // The recipient opted out once and back in (the opt-out index knows them).
    h.inbound(CUSTOMER, "STOP").await;
    h.inbound(CUSTOMER, "START").await;
    h.sent(2).await;
    let at = (h.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let m = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "later", "schedule_time": at}), StatusCode::ACCEPTED)
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    // The consent table becomes unreadable before the message is due.
    sabotage(&h, &["ALTER TABLE opt_outs RENAME TO opt_outs_away"], &["ALTER TABLE opt_outs RENAME TO opt_outs_away"])
        .await;
    let mut watch = h.watch();
    h.clock.advance(std::time::Duration::from_secs(3601));
    watch.until(|n| matches!(n, Notification::SendHeld { message_id, .. } if *message_id == id)).await;
    assert_eq!(h.sim().sent().len(), 2, "not sent unchecked");
    // Readable again: it goes.
    sabotage(&h, &["ALTER TABLE opt_outs_away RENAME TO opt_outs"], &["ALTER TABLE opt_outs_away RENAME TO opt_outs"])
        .await;
    h.clock.advance(std::time::Duration::from_secs(120));
    watch.message_status(&id, "delivered").await;
    assert_eq!(h.sim().sent().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_marked_sending_is_not_sent() {
    let h = harness().plugins(&[]).settings(|s| s.limits.work_lease_ms = 500).start().await;
    sabotage(
        &h,
        &["CREATE TRIGGER no_sending BEFORE UPDATE OF status ON messages WHEN NEW.status = 'sending' \
           BEGIN SELECT RAISE(ABORT, 'sending refused'); END"],
        &[
            "CREATE FUNCTION no_sending() RETURNS trigger AS $$ BEGIN IF NEW.status = 'sending' THEN \
             RAISE EXCEPTION 'sending refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_sending BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION no_sending()",
        ],
    )
    .await;
    let mut watch = h.watch();
    // A message due now is written `sending` by the commit that creates it:
    // no later write can refuse it.
    let now = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "now"}), StatusCode::ACCEPTED).await;
    watch.message_status(now["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(h.sim().sent().len(), 1, "the message due now was sent");
    // A scheduled one is marked when it falls due, and the mark is refused.
    let at = (h.clock.now() + chrono::Duration::minutes(1)).to_rfc3339();
    let m = h
        .post("/v1/messages", json!({"to": CUSTOMER, "message": "held", "schedule_time": at}), StatusCode::ACCEPTED)
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    h.clock.advance(std::time::Duration::from_secs(61));
    watch.until(|n| matches!(n, Notification::SendHeld { message_id, .. } if *message_id == id)).await;
    assert_eq!(h.sim().sent().len(), 1, "the held message was not sent");
    sabotage(&h, &["DROP TRIGGER no_sending"], &["DROP TRIGGER no_sending ON messages"]).await;
    h.clock.advance(std::time::Duration::from_secs(2));
    watch.message_status(&id, "delivered").await;
    assert_eq!(h.sim().sent().len(), 2, "sent once");
}
