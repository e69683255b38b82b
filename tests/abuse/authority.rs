//! Edge 1: nobody sends or changes consent without authority. Inbound
//! webhooks are accepted only on the connector that owns the destination
//! number; the unsigned generic webhook serves simulator numbers only (and
//! can be turned off); configured gateways must sign; compliance answers
//! are paid for and rate-limited per sender.

use super::*;
use serde_json::json;
use switchboard::connectors::ConnectorSettings;

fn connector(text: &str) -> ConnectorSettings {
    toml::from_str(text).expect("connector settings")
}

fn generic(from: &str, to: &str, text: &str) -> Vec<u8> {
    json!({"from": from, "to": to, "message": text}).to_string().into_bytes()
}

const TWILIO: &str = "kind = \"twilio\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"tw-token\"\nbase_url = \"http://127.0.0.1:9\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_generic_stop_or_help_for_a_carrier_number_is_refused_and_stores_nothing() {
    let h = harness()
        .plugins(&["keyword-reply"])
        .number_on("twilio")
        .settings(|s| {
            s.connectors.insert("twilio".into(), connector(TWILIO));
        })
        .start()
        .await;
    for text in ["STOP", "HELP", "HOURS"] {
        for _ in 0..5 {
            let (status, body) =
                post_raw(&h, "/v1/inbound/generic", "application/json", generic(CUSTOMER, NUMBER, text), &[]).await;
            assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "UNKNOWN_NUMBER"), "{body}");
        }
    }
    assert!(messages(&h, "inbound").await.is_empty(), "nothing stored");
    assert!(messages(&h, "outbound").await.is_empty(), "nothing sent");
    assert_eq!(h.get("/v1/opt-outs").await["data"], json!([]), "no consent changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_is_accepted_only_on_the_connector_that_owns_the_number() {
    let gw = |name: &str| format!("kind = \"http\"\nwebhook_secret = \"{}-secret\"", name);
    let (a, b) = (gw("a"), gw("b"));
    let h = harness()
        .plugins(&["keyword-reply"])
        .number_on("gw-a")
        .settings(move |s| {
            s.connectors.insert("gw-a".into(), connector(&a));
            s.connectors.insert("gw-b".into(), connector(&b));
        })
        .start()
        .await;
    let body = generic(CUSTOMER, NUMBER, "HOURS");
    let signed = |secret: &str| vec![("x-sms-signature", switchboard::connectors::http::signature(secret, &body))];
    // Correctly signed by gateway B, for a number on gateway A.
    let (status, answer) =
        post_raw(&h, "/v1/inbound/gw-b", "application/json", body.clone(), &signed("b-secret")).await;
    assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, "UNKNOWN_NUMBER"), "{answer}");
    assert!(messages(&h, "inbound").await.is_empty());
    // The owner's webhook takes it.
    let (status, answer) =
        post_raw(&h, "/v1/inbound/gw-a", "application/json", body.clone(), &signed("a-secret")).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("received")), "{answer}");
    assert_eq!(messages(&h, "inbound").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_gateway_takes_only_signed_webhooks() {
    let h = harness()
        .plugins(&["keyword-reply"])
        .number_on("gw")
        .settings(|s| {
            s.connectors.insert("gw".into(), connector("kind = \"http\"\nwebhook_secret = \"gw-secret\""));
            s.connectors.insert("nosecret".into(), connector("kind = \"http\""));
        })
        .start()
        .await;
    h.app.control.add_number(&h.tenant, "+15550007777", "nosecret", false).await.unwrap();
    let body = generic(CUSTOMER, NUMBER, "STOP");
    for headers in [vec![], vec![("x-sms-signature", "00".repeat(32))]] {
        let (status, answer) = post_raw(&h, "/v1/inbound/gw", "application/json", body.clone(), &headers).await;
        assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "INVALID_SIGNATURE"), "{answer}");
    }
    // A gateway configured without a secret takes no webhooks at all.
    let body = generic(CUSTOMER, "+15550007777", "STOP");
    let (status, answer) = post_raw(&h, "/v1/inbound/nosecret", "application/json", body, &[]).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "INVALID_SIGNATURE"), "{answer}");
    // Status reports too.
    let report = json!({"id": "x-1", "status": "delivered"}).to_string().into_bytes();
    let (status, _) = post_raw(&h, "/v1/status/gw", "application/json", report, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(messages(&h, "inbound").await.is_empty());
    assert_eq!(h.get("/v1/opt-outs").await["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsigned_generic_webhook_exists_only_where_the_operator_enables_it() {
    let h = harness().plugins(&["keyword-reply"]).settings(|s| s.generic_webhook = false).start().await;
    let (status, answer) =
        post_raw(&h, "/v1/inbound/generic", "application/json", generic(CUSTOMER, NUMBER, "HOURS"), &[]).await;
    assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, "CONNECTOR_NOT_FOUND"), "{answer}");
    assert!(messages(&h, "inbound").await.is_empty());

    // A generic connector the operator configures must sign its webhooks.
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(|s| {
            s.connectors.insert("generic".into(), connector("kind = \"http\"\nwebhook_secret = \"g\""));
        })
        .start()
        .await;
    let (status, answer) =
        post_raw(&h, "/v1/inbound/generic", "application/json", generic(CUSTOMER, NUMBER, "HOURS"), &[]).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "INVALID_SIGNATURE"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_help_flood_gets_a_few_paid_answers_and_is_recorded_in_full() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            s.pricing.per_segment = "0.01".into();
            s.limits.compliance_replies_per_hour = 3;
        })
        .start()
        .await;
    h.app.control.credit(&h.tenant, 1_000_000, "test").await.unwrap(); // 1.00
    for _ in 0..20 {
        h.inbound(CUSTOMER, "HELP").await;
    }
    h.inbound("+15557654321", "HELP").await;
    assert_eq!(messages(&h, "inbound").await.len(), 21, "every keyword is recorded");
    let answers = messages(&h, "outbound").await;
    let to_flooder = answers.iter().filter(|m| m["to"] == CUSTOMER).count();
    assert_eq!(to_flooder, 3, "the flooding sender gets three answers this hour");
    assert_eq!(answers.len(), 4, "another sender is still answered");
    assert!(answers.iter().all(|m| m["price"] == "0.01"), "{answers:?}");
    let account = h.get("/v1/account").await;
    assert_eq!(account["balance"], "0.96", "four answers paid for: {account}");
    h.sent(4).await;

    // An hour later the sender is answered again.
    h.clock.advance(std::time::Duration::from_secs(3601));
    h.inbound(CUSTOMER, "HELP").await;
    assert_eq!(messages(&h, "outbound").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_the_balance_cannot_answer_still_opts_out() {
    let h = harness().plugins(&[]).settings(|s| s.pricing.per_segment = "0.01".into()).start().await;
    h.inbound(CUSTOMER, "STOP").await;
    let opt_outs = h.get("/v1/opt-outs").await["data"].as_array().cloned().unwrap();
    assert_eq!(opt_outs.len(), 1, "consent changed");
    assert!(messages(&h, "outbound").await.is_empty(), "no unpaid answer");
    assert_eq!(h.get("/v1/account").await["balance"], "0.00");
}
