//! The Twilio-compatible Messages API: Twilio's own Python SDK (from PyPI,
//! pinned) sends, fetches, lists with paging, schedules and cancels
//! through a validating proxy built from Twilio's OpenAPI document, and
//! checks the status callbacks with its `RequestValidator`; the rest
//! (Twilio's error codes, authentication, idempotency, deletion,
//! redaction) is driven over HTTP directly.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use common::prism::Prism;
use common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";

/// Twilio's description of its Messages API, as the proxy checks it. One
/// correction: it gives the page links (`uri`, `first_page_uri`,
/// `next_page_uri`, `previous_page_uri`) the format `uri`, which asks for
/// an absolute URI, but Twilio's API answers paths, and its SDKs join them
/// to their base URL (an absolute one would break them): the links are
/// checked as `uri-reference`. Everything else is checked as written.
fn spec(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(workspace().join("tests/fixtures/twilio_api_v2010_messages.json")).unwrap();
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    let list = &mut spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["properties"];
    for link in ["uri", "first_page_uri", "next_page_uri", "previous_page_uri"] {
        assert_eq!(list[link]["format"], "uri", "the description changed: {link}");
        list[link]["format"] = json!("uri-reference");
    }
    let path = dir.join("twilio_api_v2010_messages.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// A Twilio-style credential of the harness's tenant: (account SID, auth token).
async fn credential(h: &Harness, mode: &str) -> (String, String) {
    let k = h.post("/v1/keys", json!({"label": "twilio", "mode": mode, "twilio": true}), StatusCode::CREATED).await;
    let sid = k["account_sid"].as_str().expect("an account SID").to_string();
    (sid, k["key"].as_str().unwrap().to_string())
}

/// Collects what is POSTed to it.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/status",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Receiver>, headers: HeaderMap, body: String| async move {
                    s.got.lock().unwrap().push((headers, body));
                    s.arrived.notify_waiters();
                    StatusCode::NO_CONTENT
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/status", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app.with_state(state)).await.unwrap() });
        (r, url)
    }

    /// Waits until a request with `MessageStatus=status` arrived; returns all so far.
    async fn until_status(&self, status: &str) -> Vec<(HeaderMap, Vec<(String, String)>)> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                let got: Vec<(HeaderMap, Vec<(String, String)>)> = self
                    .got
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(h, b)| (h.clone(), url::form_urlencoded::parse(b.as_bytes()).into_owned().collect()))
                    .collect();
                if got.iter().any(|(_, f)| f.iter().any(|(k, v)| k == "MessageStatus" && v == status)) {
                    return got;
                }
                notified.await;
            }
        };
        tokio::time::timeout(GUARD, wait).await.expect("the status callback arrived")
    }
}

/// Runs the Python client (tests/twilio_sdk/python_client.py) with Twilio's SDK.
async fn python(args: &[&str], env: &[(&str, &str)], stdin: Option<String>) -> Value {
    let bin = workspace().join("target/tools/twilio-venv/bin/python");
    assert!(bin.exists(), "{} is missing: run `make tools`", bin.display());
    let mut child = tokio::process::Command::new(bin)
        .arg(workspace().join("tests/twilio_sdk/python_client.py"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(GUARD, child.wait_with_output()).await.expect("the client finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilios_python_sdk_sends_lists_schedules_and_cancels_and_validates_the_callbacks() {
    let h = harness().plugins(&[]).settings(|s| s.webhooks_allow_private_addresses = true).start().await;
    let upstream = h.serve().await;
    // Every request and answer passes a proxy that checks it against
    // Twilio's description and fails on any violation.
    let proxy = Prism::proxy(&spec(h.dir.path()), &upstream).await;
    let (sid, token) = credential(&h, "live").await;
    let (receiver, callback_url) = Receiver::start().await;
    let env = [
        ("BASE_URL", proxy.url.as_str()),
        ("ACCOUNT_SID", sid.as_str()),
        ("AUTH_TOKEN", token.as_str()),
        ("TO", CUSTOMER),
        ("FROM", NUMBER),
        ("SERVICE_SID", SERVICE_SID),
        ("CALLBACK_URL", callback_url.as_str()),
    ];
    let out = python(&[], &env, None).await;

    let created = &out["created"];
    let message_sid = created["sid"].as_str().unwrap();
    assert!(message_sid.starts_with("SM") && message_sid.len() == 34, "{out}");
    assert_eq!(created["status"], "queued", "{out}");
    assert_eq!((created["num_segments"].as_str(), created["direction"].as_str()), (Some("1"), Some("outbound-api")));
    assert_eq!(created["body"], "Your code is 123456");
    assert_eq!(out["fetched"]["sid"], created["sid"]);
    assert_eq!((out["fetched"]["to"].as_str(), out["fetched"]["from"].as_str()), (Some(CUSTOMER), Some(NUMBER)));
    // Newest first, two pages of two followed through next_page_uri.
    assert_eq!(out["listed"], json!(["page test 2", "page test 1", "page test 0", "Your code is 123456"]), "{out}");
    assert!(out["listed_sent_today"].as_u64().unwrap() >= 4, "{out}");
    assert_eq!(out["listed_sent_before_2000"], 0);
    assert_eq!(
        (out["scheduled"]["status"].as_str(), out["scheduled"]["from"].as_str()),
        (Some("scheduled"), Some(NUMBER))
    );
    assert_eq!(out["canceled"], "canceled");
    assert_eq!(out["bad_to"], json!({"status": 400, "code": 21211}), "{out}");
    assert_eq!(out["missing"], json!({"status": 404, "code": 20404}), "{out}");
    assert_eq!(out["bad_token"], json!({"status": 401, "code": 20003}), "{out}");

    // Status callbacks: Twilio's form, signed with the auth token, which
    // the SDK's RequestValidator accepts (and refuses under another token).
    let callbacks = receiver.until_status("delivered").await;
    let mine: Vec<&(HeaderMap, Vec<(String, String)>)> =
        callbacks.iter().filter(|(_, f)| f.iter().any(|(k, v)| k == "MessageSid" && v == message_sid)).collect();
    let statuses: Vec<&str> = mine
        .iter()
        .map(|(_, f)| f.iter().find(|(k, _)| k == "MessageStatus").map(|(_, v)| v.as_str()).unwrap())
        .collect();
    assert!(statuses.contains(&"sent") && statuses.contains(&"delivered"), "{statuses:?}");
    for (headers, fields) in &mine {
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!((get("AccountSid"), get("From"), get("To")), (Some(sid.as_str()), Some(NUMBER), Some(CUSTOMER)));
        assert_eq!((get("SmsSid"), get("ApiVersion")), (Some(message_sid), Some("2010-04-01")));
    }
    let checks: Vec<Value> = mine
        .iter()
        .map(|(headers, fields)| {
            let params: serde_json::Map<String, Value> =
                fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            json!({"url": callback_url, "params": params, "signature": headers["x-twilio-signature"].to_str().unwrap()})
        })
        .collect();
    let valid = python(&["validate"], &[("AUTH_TOKEN", &token)], Some(Value::Array(checks.clone()).to_string())).await;
    assert!(valid.as_array().unwrap().iter().all(|v| *v == true), "{valid}");
    let other = python(&["validate"], &[("AUTH_TOKEN", &"1".repeat(32))], Some(Value::Array(checks).to_string())).await;
    assert!(other.as_array().unwrap().iter().all(|v| *v == false), "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilios_node_sdk_sends_fetches_lists_schedules_and_cancels() {
    let h = harness().plugins(&[]).start().await;
    let upstream = h.serve().await;
    let proxy = Prism::proxy(&spec(h.dir.path()), &upstream).await;
    let (sid, token) = credential(&h, "live").await;
    let modules = workspace().join("target/tools/node_modules");
    assert!(modules.join("twilio/package.json").exists(), "Twilio's Node SDK is missing: run `make tools`");
    let out = tokio::process::Command::new("node")
        .arg(workspace().join("tests/twilio_sdk/node_client.js"))
        .env("NODE_PATH", &modules)
        .envs([
            ("BASE_URL", proxy.url.as_str()),
            ("ACCOUNT_SID", sid.as_str()),
            ("AUTH_TOKEN", token.as_str()),
            ("TO", CUSTOMER),
            ("FROM", NUMBER),
            ("SERVICE_SID", SERVICE_SID),
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(GUARD, out).await.expect("the client finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let created = &out["created"];
    assert!(created["sid"].as_str().unwrap().starts_with("SM"), "{out}");
    assert_eq!((created["status"].as_str(), created["numSegments"].as_str()), (Some("queued"), Some("1")));
    assert_eq!(created["direction"], "outbound-api");
    assert_eq!(
        (out["fetched"]["sid"].clone(), out["fetched"]["body"].as_str()),
        (created["sid"].clone(), Some("Hello from Node"))
    );
    assert_eq!(out["listed"], json!(["node page 2", "node page 1", "node page 0", "Hello from Node"]), "{out}");
    assert_eq!((out["scheduled"].as_str(), out["canceled"].as_str()), (Some("scheduled"), Some("canceled")));
    assert_eq!(out["badFrom"], json!({"status": 400, "code": 21606}), "{out}");
}

/// A request with Basic auth and a form body, straight to the engine.
async fn twilio(
    h: &Harness,
    method: Method,
    path: &str,
    auth: (&str, &str),
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.0, auth.1));
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    raw_with_headers(&h.app, req.body(Body::from(body)).unwrap()).await
}

fn code(body: &Value) -> (i64, i64) {
    (body["status"].as_i64().unwrap_or(0), body["code"].as_i64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compatible_api_answers_with_twilios_errors_and_keeps_our_guarantees() {
    let h = harness().plugins(&[]).start().await;
    let (sid, token) = credential(&h, "live").await;
    let auth = (sid.as_str(), token.as_str());
    let messages = format!("/2010-04-01/Accounts/{sid}/Messages.json");
    let send = |form: Vec<(&'static str, String)>| {
        let (h, messages, auth) = (&h, messages.clone(), auth);
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            twilio(h, Method::POST, &messages, auth, &form, &[]).await
        }
    };
    let ok = |to: &str| vec![("To", to.to_string()), ("From", NUMBER.to_string()), ("Body", "hello".to_string())];

    // Twilio's codes for what Twilio refuses.
    let cases: Vec<(Vec<(&'static str, String)>, (i64, i64))> = vec![
        (vec![("From", NUMBER.into()), ("Body", "x".into())], (400, 21604)),
        (vec![("To", CUSTOMER.into()), ("Body", "x".into())], (400, 21603)),
        (vec![("To", CUSTOMER.into()), ("From", NUMBER.into())], (400, 21602)),
        (vec![("To", "12".into()), ("From", NUMBER.into()), ("Body", "x".into())], (400, 21211)),
        (vec![("To", CUSTOMER.into()), ("From", "+15559999999".into()), ("Body", "x".into())], (400, 21606)),
        (vec![("To", CUSTOMER.into()), ("From", NUMBER.into()), ("Body", "x".repeat(1601))], (400, 21617)),
        ([ok(CUSTOMER), vec![("MediaUrl", "https://example.com/cat.jpg".into())]].concat(), (400, 21620)),
        ([ok(CUSTOMER), vec![("StatusCallback", "ftp://example.com/".into())]].concat(), (400, 21609)),
        ([ok(CUSTOMER), vec![("ValidityPeriod", "0".into())]].concat(), (400, 90007)),
        ([ok(CUSTOMER), vec![("SendAt", "2030-01-01T00:00:00Z".into())]].concat(), (400, 35111)),
        ([ok(CUSTOMER), vec![("ScheduleType", "fixed".into()), ("SendAt", "yesterday".into())]].concat(), (400, 35114)),
        (vec![("To", CUSTOMER.into()), ("MessagingServiceSid", "MGnope".into()), ("Body", "x".into())], (400, 21701)),
    ];
    for (form, want) in cases {
        let (status, _, body) = send(form.clone()).await;
        assert_eq!(code(&body), want, "{form:?}: {body}");
        assert_eq!(status.as_u16() as i64, want.0);
        assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{}", want.1), "{body}");
    }
    h.post("/v1/opt-outs", json!({"opt_outs": [{"recipient": "+15551230009"}]}), StatusCode::OK).await;
    let (_, _, body) = send(ok("+15551230009")).await;
    assert_eq!(code(&body), (400, 21610), "{body}");

    // Authentication: Twilio's 401, and only a Twilio-style credential for its own account.
    let wrong_account = "AC".to_string() + &"f".repeat(32);
    for (path, who) in [
        (messages.clone(), (sid.as_str(), "0".repeat(32))),
        (messages.clone(), (wrong_account.as_str(), token.clone())),
        (format!("/2010-04-01/Accounts/{wrong_account}/Messages.json"), (sid.as_str(), token.clone())),
        (messages.clone(), (sid.as_str(), h.key.clone())),
    ] {
        let (status, headers, body) = twilio(&h, Method::GET, &path, (who.0, &who.1), &[], &[]).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, (401, 20003)), "{path}: {body}");
        assert!(headers.contains_key("www-authenticate"));
    }
    let (status, _) = h.call(Method::GET, &messages, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Idempotency: the same token answers the first result, once.
    let mut watch = h.watch();
    let token_header = [("I-Twilio-Idempotency-Token", "order-42")];
    let form = [("To", CUSTOMER), ("From", NUMBER), ("Body", "once")];
    let (s1, _, first) = twilio(&h, Method::POST, &messages, auth, &form, &token_header).await;
    let (s2, _, again) = twilio(&h, Method::POST, &messages, auth, &form, &token_header).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, again);
    let other = [("To", CUSTOMER), ("From", NUMBER), ("Body", "twice")];
    let (_, _, body) = twilio(&h, Method::POST, &messages, auth, &other, &token_header).await;
    assert_eq!(body["status"], 422, "{body}");
    let message = first["sid"].as_str().unwrap().to_string();
    assert_eq!(h.sent(1).await.len(), 1, "sent once");

    // A finished message is redacted, then deleted; one in progress is not.
    let path = format!("/2010-04-01/Accounts/{sid}/Messages/{message}.json");
    let id = format!("msg_{}", &message[2..]);
    watch.message_status(&id, "delivered").await;
    let (status, _, redacted) = twilio(&h, Method::POST, &path, auth, &[("Body", "")], &[]).await;
    assert_eq!((status, redacted["body"].as_str()), (StatusCode::OK, Some("")), "{redacted}");
    assert_eq!(h.get(&format!("/v1/messages/{id}")).await["message"], "");
    let (status, _, _) = twilio(&h, Method::DELETE, &path, auth, &[], &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = twilio(&h, Method::GET, &path, auth, &[], &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, (404, 20404)), "{body}");
    let send_at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let later = [
        ("To", CUSTOMER),
        ("From", NUMBER),
        ("Body", "later"),
        ("ScheduleType", "fixed"),
        ("SendAt", send_at.as_str()),
    ];
    let (_, _, scheduled) = twilio(&h, Method::POST, &messages, auth, &later, &[]).await;
    let scheduled_path = format!("/2010-04-01/Accounts/{sid}/Messages/{}.json", scheduled["sid"].as_str().unwrap());
    let (status, _, body) = twilio(&h, Method::DELETE, &scheduled_path, auth, &[], &[]).await;
    assert_eq!((status, code(&body).1), (StatusCode::CONFLICT, 20009), "{body}");
    let (_, _, canceled) = twilio(&h, Method::POST, &scheduled_path, auth, &[("Status", "canceled")], &[]).await;
    assert_eq!(canceled["status"], "canceled");
    let (_, _, body) = twilio(&h, Method::POST, &scheduled_path, auth, &[("Status", "canceled")], &[]).await;
    assert_eq!(code(&body), (400, 30409), "{body}");

    // Every error is Twilio's body: unknown paths, methods, bad SIDs.
    for (method, uri, want) in [
        (Method::GET, format!("/2010-04-01/Accounts/{sid}/Calls.json"), (404, 20404)),
        (Method::PUT, messages.clone(), (405, 20004)),
        (Method::GET, format!("/2010-04-01/Accounts/{sid}/Messages/nope.json"), (404, 20404)),
        (Method::GET, format!("{messages}?PageSize=5000"), (400, 20001)),
    ] {
        let (_, _, body) = twilio(&h, method, &uri, auth, &[], &[]).await;
        assert_eq!(code(&body), want, "{uri}: {body}");
    }

    // A test credential sends through the sandbox and sees test messages only.
    let (test_sid, test_token) = credential(&h, "test").await;
    let test_messages = format!("/2010-04-01/Accounts/{test_sid}/Messages.json");
    let (status, _, sent) = twilio(
        &h,
        Method::POST,
        &test_messages,
        (&test_sid, &test_token),
        &[("To", CUSTOMER), ("From", NUMBER), ("Body", "try")],
        &[],
    )
    .await;
    assert_eq!((status, sent["price"].clone()), (StatusCode::CREATED, Value::Null), "{sent}");
    let (_, _, listed) = twilio(&h, Method::GET, &test_messages, (&test_sid, &test_token), &[], &[]).await;
    let bodies: Vec<&str> =
        listed["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["try"], "{listed}");
    let (status, _, _) = twilio(
        &h,
        Method::GET,
        &format!("/2010-04-01/Accounts/{test_sid}/Messages/{}.json", canceled["sid"].as_str().unwrap()),
        (&test_sid, &test_token),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The credential is a key: listed with its SID, and revoked like one.
    let keys = h.get("/v1/keys").await;
    let key = keys["data"].as_array().unwrap().iter().find(|k| k["account_sid"] == sid).expect("listed").clone();
    h.call(Method::DELETE, &format!("/v1/keys/{}", key["id"].as_str().unwrap()), None, Some(&h.key)).await;
    let (_, _, body) = twilio(&h, Method::GET, &messages, auth, &[], &[]).await;
    assert_eq!(code(&body), (401, 20003), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_validity_period_ends_before_it_is_sent_fails_with_30036() {
    let clock = switchboard::clock::Clock::system();
    let h = harness().plugins(&[]).clock(clock.clone()).start().await;
    let (sid, token) = credential(&h, "live").await;
    let messages = format!("/2010-04-01/Accounts/{sid}/Messages.json");
    let mut watch = h.watch();
    // Due in two hours, valid for a minute after: the engine is not
    // running then (the clock jumps past both), so the message expires.
    let send_at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let form = [
        ("To", CUSTOMER),
        ("From", NUMBER),
        ("Body", "Your code is 111111"),
        ("ValidityPeriod", "60"),
        ("ScheduleType", "fixed"),
        ("SendAt", send_at.as_str()),
    ];
    let (status, _, created) = twilio(&h, Method::POST, &messages, (&sid, &token), &form, &[]).await;
    assert_eq!((status, created["status"].as_str()), (StatusCode::CREATED, Some("scheduled")), "{created}");
    let id = format!("msg_{}", &created["sid"].as_str().unwrap()[2..]);
    clock.advance(std::time::Duration::from_secs(2 * 3600 + 61));
    watch.message_status(&id, "failed").await;
    assert!(h.sim().sent().is_empty(), "nothing reached the carrier");
    let path = format!("/2010-04-01/Accounts/{sid}/Messages/{}.json", created["sid"].as_str().unwrap());
    let (_, _, fetched) = twilio(&h, Method::GET, &path, (&sid, &token), &[], &[]).await;
    assert_eq!(
        (fetched["status"].as_str(), fetched["error_code"].as_i64()),
        (Some("failed"), Some(30036)),
        "{fetched}"
    );
    assert_eq!(h.get(&format!("/v1/messages/{id}")).await["error_code"], "VALIDITY_EXPIRED");
}

/// The Python TwiML app (tests/twilio_sdk/twiml_app.py); returns its URL.
async fn twiml_app(token: &str) -> (tokio::process::Child, String) {
    let bin = workspace().join("target/tools/twilio-venv/bin/python");
    assert!(bin.exists(), "{} is missing: run `make tools`", bin.display());
    let mut child = tokio::process::Command::new(bin)
        .arg(workspace().join("tests/twilio_sdk/twiml_app.py"))
        .env("AUTH_TOKEN", token)
        .env("TEAM", "+15551230001")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let port = tokio::time::timeout(GUARD, lines.next_line())
        .await
        .expect("the app started")
        .unwrap()
        .expect("the app printed its port");
    (child, format!("http://127.0.0.1:{}/sms", port.trim()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_twiml_app_answers_inbound_messages_through_its_number() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            s.webhooks_allow_private_addresses = true;
            s.limits.event_max_attempts = 1;
        })
        .start()
        .await;
    let (sid, token) = credential(&h, "live").await;
    let (_app, url) = twiml_app(&token).await;
    let number = h.patch(&format!("/v1/numbers/{NUMBER}"), json!({"sms_url": url})).await;
    assert_eq!((number["number"].as_str(), number["sms_url"].as_str()), (Some(NUMBER), Some(url.as_str())), "{number}");
    assert_eq!(h.get("/v1/numbers").await["numbers"][0]["sms_url"], url);

    // The app checks the signature and answers TwiML; its <Message>s are sent.
    let inbound = h.inbound(CUSTOMER, "2 large pizzas").await;
    let sent = h.sent(1).await;
    let sid_prefix = format!("SM{}", &inbound[4..8]);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(sent[0].body, format!("Thanks for your order: 2 large pizzas (ref {sid_prefix})"));
    let replies = h.replies(&inbound).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let reply_sid = format!("SM{}", &replies[0]["id"].as_str().unwrap()[4..]);
    let (_, _, resource) = twilio(
        &h,
        Method::GET,
        &format!("/2010-04-01/Accounts/{sid}/Messages/{reply_sid}.json"),
        (&sid, &token),
        &[],
        &[],
    )
    .await;
    assert_eq!(resource["direction"], "outbound-reply", "{resource}");
    h.inbound(CUSTOMER, "TEAM").await;
    let sent = h.sent(3).await;
    assert!(sent.iter().any(|m| m.to == "+15551230001" && m.body == "A new order came in"), "{sent:?}");

    // An app that fails: the event is dead-lettered with the app's answer, nothing sent.
    let mut watch = h.watch();
    let broken = h.inbound(CUSTOMER, "BROKEN").await;
    watch.events_settled("dead", 1).await;
    let message = h.get(&format!("/v1/messages/{broken}")).await;
    assert_eq!(message["processing"][0]["last_error"], "the sms_url answered HTTP 500", "{message}");
    assert_eq!(h.sim().sent().len(), 3);

    // Without the URL, nothing calls the app.
    let number = h.patch(&format!("/v1/numbers/{NUMBER}"), json!({"sms_url": null})).await;
    assert!(number.get("sms_url").is_none(), "{number}");
    let quiet = h.inbound(CUSTOMER, "3 pizzas").await;
    assert_eq!(h.get(&format!("/v1/messages/{quiet}")).await["processing"], json!([]));
    let (status, body) =
        h.call(Method::PATCH, "/v1/numbers/+15559999999", Some(json!({"sms_url": url})), Some(&h.key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("NUMBER_NOT_FOUND")));
    let (status, body) = h
        .call(Method::PATCH, &format!("/v1/numbers/{NUMBER}"), Some(json!({"sms_url": "ftp://x"})), Some(&h.key))
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("sms_url")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_rate_limit_answers_twilios_20429() {
    let h = harness().plugins(&[]).start().await;
    let (sid, token) = credential(&h, "live").await;
    let settings = switchboard::directory::TenantSettings { requests_per_second: Some(1), ..Default::default() };
    h.app.control.update_tenant_settings(&h.tenant, &settings).await.unwrap();
    let messages = format!("/2010-04-01/Accounts/{sid}/Messages.json");
    let (first, _, _) = twilio(&h, Method::GET, &messages, (&sid, &token), &[], &[]).await;
    assert_eq!(first, StatusCode::OK);
    let (status, headers, body) = twilio(&h, Method::GET, &messages, (&sid, &token), &[], &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::TOO_MANY_REQUESTS, (429, 20429)), "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
}
