//! Edge 6: inputs are bounded before they are parsed. Oversized phone
//! numbers and ids are refused without being parsed or remembered; 413,
//! 405, 414 and query-string errors come back in the documented JSON form.

use super::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_sender_is_refused_before_it_is_parsed_and_not_echoed() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let huge = format!("+1{}", "5".repeat(900_000));
    for _ in 0..20 {
        let body = json!({"from": huge, "to": NUMBER, "message": "HOURS"}).to_string().into_bytes();
        let (status, answer) = post_raw(&h, "/v1/inbound/generic", "application/json", body, &[]).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "INVALID_PHONE_NUMBER"),
            "{}",
            &answer.to_string()[..200.min(answer.to_string().len())]
        );
        assert!(answer.to_string().len() < 300, "the error does not carry the input back");
    }
    assert!(messages(&h, "inbound").await.is_empty());
    let huge_id = "x".repeat(500);
    let body = json!({"from": CUSTOMER, "to": NUMBER, "message": "HOURS", "id": huge_id}).to_string().into_bytes();
    let (status, answer) = post_raw(&h, "/v1/inbound/generic", "application/json", body, &[]).await;
    assert_eq!(
        (status, code(&answer), answer["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("id"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_even_from_the_framework() {
    let h = harness().plugins(&[]).settings(|s| s.limits.http_body_bytes = 4096).start().await;
    // 413 from the body limit.
    let big = json!({"to": CUSTOMER, "message": "x".repeat(10_000)}).to_string().into_bytes();
    let (status, answer) = post_raw(&h, "/v1/inbound/generic", "application/json", big.clone(), &[]).await;
    assert_eq!((status, code(&answer)), (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"), "{answer}");
    // Query strings that do not parse.
    for (uri, field) in [("/v1/messages?limit=-5", "limit"), ("/v1/messages?unknown=1", "unknown")] {
        let (status, answer) = h.call(Method::GET, uri, None, Some(&h.key)).await;
        assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "INVALID_PARAMETER"), "{uri}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // A method the route does not take, and a route that does not exist.
    let (status, answer) = h.call(Method::DELETE, "/healthz", None, None).await;
    assert_eq!((status, code(&answer)), (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"), "{answer}");
    let (status, answer) = h.call(Method::GET, "/v1/nowhere", None, Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, "NOT_FOUND"), "{answer}");
    // Request targets too long to be worth reading.
    let long = format!("/v1/messages/{}", "m".repeat(5000));
    let (status, answer) = h.call(Method::GET, &long, None, Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::URI_TOO_LONG, "URI_TOO_LONG"), "{answer}");
    // A multipart upload without a boundary.
    let (status, answer) = post_raw(
        &h,
        "/v1/plugins",
        "multipart/form-data",
        b"--x--".to_vec(),
        &[("authorization", format!("Bearer {}", h.key))],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["code"].is_string(), "{answer}");
}

/// PostgreSQL's text type cannot hold U+0000, so nothing may carry one into
/// the store: the API refuses it (400 naming the field) wherever a body, a
/// query or a path holds text; the plugin API refuses it in what a plugin
/// stores (a WIT error the plugin handles); text from a carrier, which
/// cannot be asked again, is kept with U+FFFD in its place. On both
/// backends, and never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_holding_a_nul_character_is_refused_at_the_edge_or_kept_replaced() {
    let h = harness().plugins(&["chaos"]).start().await;
    let (status, answer) = h.admin(Method::POST, "/admin/v1/tenants", Some(json!({"name": "a\u{0}b"}))).await;
    assert_eq!(
        (status, code(&answer), answer["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("name")),
        "{answer}"
    );
    let (status, answer) =
        h.call(Method::POST, "/v1/messages", Some(json!({"to": CUSTOMER, "message": "a\u{0}b"})), Some(&h.key)).await;
    assert_eq!(
        (status, code(&answer), answer["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD", Some("message")),
        "{answer}"
    );
    assert!(answer["error"]["message"].as_str().unwrap().contains("U+0000"), "{answer}");
    let (status, answer) = h.call(Method::GET, "/v1/messages?to=%2B1555%00", None, Some(&h.key)).await;
    assert_eq!(
        (status, code(&answer), answer["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER", Some("to")),
        "{answer}"
    );
    let (status, answer) = h.call(Method::GET, "/v1/messages/msg_%00", None, Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "INVALID_PARAMETER"), "{answer}");
    assert!(messages(&h, "outbound").await.is_empty(), "nothing was sent");

    // A carrier's message with a NUL in it is kept, the NUL replaced.
    let inbound = h.inbound(CUSTOMER, "hello\u{0}world").await;
    let message = h.get(&format!("/v1/messages/{inbound}")).await;
    assert_eq!(message["message"], "hello\u{FFFD}world", "{message}");

    // A plugin trying to store such text gets an error it can handle; its
    // log line is kept with the NUL replaced, and its reply goes out.
    h.inbound(CUSTOMER, "NUL").await;
    let sent = h.sent(1).await;
    let expected: Vec<String> = ["body and reference", "kv key", "timer key", "timer payload"]
        .iter()
        .map(|what| format!("invalid-argument: {what}: {}", switchboard::limits::NUL_REFUSED))
        .collect();
    assert_eq!(sent[0].body, expected.join("; "));
    let logs = h.get("/v1/plugins/chaos/logs?limit=10").await;
    assert!(logs["data"].as_array().unwrap().iter().any(|l| l["message"] == "a\u{FFFD}b"), "{logs}");
}
