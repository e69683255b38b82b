//! Edge 2: a tenant cannot claim what is not theirs. Numbers on carrier
//! connectors are the operator's to assign, or are proven with a code; a
//! connector's tenant list binds registration and dispatch; sender IDs
//! wait for approval, brands are refused, and an approved name is one
//! tenant's.

use super::*;
use serde_json::json;
use switchboard::connectors::ConnectorSettings;
use switchboard::store::NewNumber;
use switchboard::tenancy::{Route, Strategy};

fn connector(text: &str) -> ConnectorSettings {
    toml::from_str(text).expect("connector settings")
}

const TWILIO: &str = "kind = \"twilio\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"tw-token\"\nbase_url = \"http://127.0.0.1:9\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_on_carrier_connectors_are_the_operators_to_assign() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            s.connectors.insert("twilio".into(), connector(TWILIO));
        })
        .start()
        .await;
    let body = json!({"number": "+15550001111", "connector": "twilio"});
    let (status, answer) = h.call(Method::POST, "/v1/numbers", Some(body.clone()), Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "NUMBER_ASSIGNED_BY_OPERATOR"), "{answer}");
    assert!(!h.app.engine.directory.snapshot().numbers.contains_key("+15550001111"));
    let (status, answer) = h.admin(Method::POST, &format!("/admin/v1/tenants/{}/numbers", h.tenant), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // Simulator numbers stay open to tenants.
    let sim = json!({"number": "+15550001112"});
    let answer = h.post("/v1/numbers", sim, StatusCode::CREATED).await;
    assert_eq!(answer["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connectors_tenant_list_binds_registration_routes_and_dispatch() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            let text = "kind = \"simulator\"\n[gate]\ntenants = [\"tnt_someone_else\"]\nregistration = \"open\"";
            s.connectors.insert("private".into(), connector(text));
            // The operator's route tries the private connector first.
            s.routes = vec![Route {
                prefix: "+44".into(),
                connectors: vec!["private".into(), "simulator".into()],
                strategy: Strategy::Priority,
            }];
        })
        .start()
        .await;
    let private = h.app.engine.connectors.simulator_named("private").unwrap();
    // Registration: neither the tenant nor the operator can put a number there.
    let body = json!({"number": "+15550003333", "connector": "private"});
    let (status, answer) = h.call(Method::POST, "/v1/numbers", Some(body.clone()), Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "CONNECTOR_NOT_ALLOWED"), "{answer}");
    let (status, answer) = h.admin(Method::POST, &format!("/admin/v1/tenants/{}/numbers", h.tenant), Some(body)).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "CONNECTOR_NOT_ALLOWED"), "{answer}");
    // The tenant's own routes cannot name it.
    let routes = json!({"routes": [{"connectors": ["private"]}]});
    let (status, answer) = h.call(Method::PUT, "/v1/routes", Some(routes), Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "UNKNOWN_CONNECTOR"), "{answer}");

    // Failover skips it: the UK message goes through the simulator.
    let mut watch = h.watch();
    let uk = h.post("/v1/messages", json!({"to": "+447911123456", "message": "hi"}), StatusCode::ACCEPTED).await;
    let uk = uk["id"].as_str().unwrap().to_string();
    watch.message_status(&uk, "delivered").await;
    assert_eq!(h.get(&format!("/v1/messages/{uk}")).await["connector"], "simulator");

    // A number already on it (assigned before the list narrowed) cannot send there.
    h.app
        .engine
        .db
        .add_number(&NewNumber {
            number: "+15550004444".into(),
            tenant_id: h.tenant.clone(),
            connector: "private".into(),
            is_default: false,
            created_at: h.clock.now_ms(),
        })
        .await
        .unwrap();
    h.app.engine.directory.reload(h.app.engine.db.as_ref()).await.unwrap();
    let m = h
        .post("/v1/messages", json!({"to": CUSTOMER, "from": "+15550004444", "message": "hi"}), StatusCode::ACCEPTED)
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    watch.message_status(&id, "failed").await;
    let m = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["error_code"], "NO_ALLOWED_CONNECTOR", "{m}");
    assert!(private.sent().is_empty(), "the private connector saw nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_on_a_verifying_connector_is_the_tenants_once_the_code_comes_back() {
    let h = harness()
        .plugins(&["keyword-reply"])
        .settings(|s| {
            let text = "kind = \"simulator\"\n[gate]\nregistration = \"verify\"\nverify_from = \"+15550009000\"";
            s.connectors.insert("carrier".into(), connector(text));
        })
        .start()
        .await;
    let carrier = h.app.engine.connectors.simulator_named("carrier").unwrap();
    let claimed = "+15550002222";
    let answer = h.post("/v1/numbers", json!({"number": claimed, "connector": "carrier"}), StatusCode::ACCEPTED).await;
    assert_eq!(answer["status"], "pending_verification", "{answer}");
    let code_sms = tokio::time::timeout(GUARD, carrier.wait_for(1)).await.unwrap().remove(0);
    assert_eq!((code_sms.to.as_str(), code_sms.from.as_str()), (claimed, "+15550009000"));
    let code_text: String = code_sms.body.chars().filter(char::is_ascii_digit).take(6).collect();
    // Not the tenant's yet: nothing arrives for it.
    let body = json!({"from": CUSTOMER, "to": claimed, "message": "HOURS"});
    let (status, _) = h.call(Method::POST, "/v1/inbound/carrier", Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let verify = format!("/v1/numbers/{}/verify", claimed.replace('+', "%2B"));
    let wrong = if code_text == "000000" { "111111" } else { "000000" };
    let (status, answer) = h.call(Method::POST, &verify, Some(json!({"code": wrong})), Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "INVALID_VERIFICATION_CODE"), "{answer}");
    let answer = h.post(&verify, json!({"code": code_text}), StatusCode::CREATED).await;
    assert_eq!(answer["number"], claimed);
    let (status, answer) = h.call(Method::POST, "/v1/inbound/generic", Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "the number now routes to the tenant: {answer}");

    // Another tenant cannot take it.
    let (_, other_key) = h.tenant("Other", "+15550005555").await;
    let (status, answer) = h
        .call(Method::POST, "/v1/numbers", Some(json!({"number": claimed, "connector": "carrier"})), Some(&other_key))
        .await;
    assert_eq!((status, code(&answer)), (StatusCode::CONFLICT, "NUMBER_TAKEN"), "{answer}");

    // Guessing ends the claim.
    let second = "+15550002223";
    h.post("/v1/numbers", json!({"number": second, "connector": "carrier"}), StatusCode::ACCEPTED).await;
    let code2: String = tokio::time::timeout(GUARD, carrier.wait_for(2)).await.unwrap()[1]
        .body
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    let verify2 = format!("/v1/numbers/{}/verify", second.replace('+', "%2B"));
    let wrong = if code2 == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (status, _) = h.call(Method::POST, &verify2, Some(json!({"code": wrong})), Some(&h.key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, answer) = h.call(Method::POST, &verify2, Some(json!({"code": code2})), Some(&h.key)).await;
    assert_eq!((status, code(&answer)), (StatusCode::CONFLICT, "VERIFICATION_EXPIRED"), "{answer}");
    assert!(!h.app.engine.directory.snapshot().numbers.contains_key(second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_ids_wait_for_approval_brands_are_refused_and_a_name_is_one_tenants() {
    let h = harness().plugins(&[]).start().await;
    let (other, other_key) = h.tenant("Other", "+15550005555").await;
    for brand in ["PayPal", "PAYPAL Help", "Amazon"] {
        let (status, answer) =
            h.call(Method::POST, "/v1/sender-ids", Some(json!({"sender_id": brand})), Some(&h.key)).await;
        assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "SENDER_ID_BLOCKED"), "{brand}: {answer}");
    }
    let answer = h.post("/v1/sender-ids", json!({"sender_id": "Acme"}), StatusCode::ACCEPTED).await;
    assert_eq!(answer["status"], "pending");
    // Pending sends nothing.
    let (status, answer) = h
        .call(
            Method::POST,
            "/v1/messages",
            Some(json!({"to": CUSTOMER, "from": "Acme", "message": "hi"})),
            Some(&h.key),
        )
        .await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "SENDER_NOT_ALLOWED"), "{answer}");
    // The other tenant may ask too; only one can be approved.
    let (status, _) =
        h.call(Method::POST, "/v1/sender-ids", Some(json!({"sender_id": "ACME"})), Some(&other_key)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, answer) =
        h.admin(Method::POST, &format!("/admin/v1/tenants/{}/sender-ids/Acme/approve", h.tenant), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (status, answer) =
        h.admin(Method::POST, &format!("/admin/v1/tenants/{other}/sender-ids/ACME/approve"), None).await;
    assert_eq!((status, code(&answer)), (StatusCode::CONFLICT, "SENDER_ID_TAKEN"), "{answer}");
    let (status, answer) =
        h.call(Method::POST, "/v1/sender-ids", Some(json!({"sender_id": "acme"})), Some(&other_key)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    // Approved, it sends.
    let m =
        h.post("/v1/messages", json!({"to": CUSTOMER, "from": "Acme", "message": "hi"}), StatusCode::ACCEPTED).await;
    let m = h.get(&format!("/v1/messages/{}", m["id"].as_str().unwrap())).await;
    assert_eq!(m["from"], "Acme");
    let listed = h.get("/v1/sender-ids").await;
    assert_eq!(listed["data"], json!([{"sender_id": "Acme", "status": "approved"}]));
    // The operator may assign a brand outright.
    let (status, _) = h
        .admin(Method::POST, &format!("/admin/v1/tenants/{other}/sender-ids"), Some(json!({"sender_id": "PayPal"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
