//! A fake HTTP SMS gateway speaking the generic connector's wire format:
//! `POST /sms` with `{"to", "from", "message"}` and a bearer token, answering
//! `{"id"}` — or whatever the test's script says. It records every request
//! with its arrival time (wall clock, for rate measurements, and the
//! engine's clock, for retry times).

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard::clock::Clock;
use tokio::sync::Notify;

/// The secret gateways sign their webhooks with (`webhook_secret`).
pub const GATEWAY_SECRET: &str = "gateway-webhook-secret";

/// `X-SMS-Signature` of a webhook body, as a gateway signs it.
pub fn gateway_signature(body: &[u8]) -> String {
    switchboard::connectors::http::signature(GATEWAY_SECRET, body)
}

/// What the gateway answers to its n-th request (counting from 0).
#[derive(Clone, Debug)]
pub enum Answer {
    Accept,
    Status(u16),
    RetryAfter(u64),
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub clock_ms: i64,
    pub body: Value,
    pub headers: HeaderMap,
}

type Script = Box<dyn FnMut(usize) -> Answer + Send>;

struct State {
    script: Mutex<Script>,
    hits: Mutex<Vec<Hit>>,
    arrived: Notify,
    clock: Clock,
    name: String,
}

#[derive(Clone)]
pub struct FakeGateway {
    pub url: String,
    state: Arc<State>,
}

impl FakeGateway {
    pub async fn start(name: &str, clock: Clock, script: impl FnMut(usize) -> Answer + Send + 'static) -> Self {
        let state = Arc::new(State {
            script: Mutex::new(Box::new(script)),
            hits: Mutex::default(),
            arrived: Notify::new(),
            clock,
            name: name.to_string(),
        });
        let s = state.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let s = s.clone();
                async move {
                    let n = {
                        let mut hits = s.hits.lock().unwrap();
                        hits.push(Hit {
                            at: Instant::now(),
                            clock_ms: s.clock.now_ms(),
                            body: serde_json::from_str(&body).unwrap_or(Value::Null),
                            headers,
                        });
                        hits.len() - 1
                    };
                    s.arrived.notify_waiters();
                    let answer = (s.script.lock().unwrap())(n);
                    let response = axum::http::Response::builder().header("content-type", "application/json");
                    let response = match answer {
                        Answer::Accept => response
                            .status(StatusCode::OK)
                            .body(serde_json::json!({"id": format!("{}-{n}", s.name)}).to_string()),
                        Answer::Status(code) => response.status(code).body("{}".to_string()),
                        Answer::RetryAfter(secs) => response
                            .status(StatusCode::TOO_MANY_REQUESTS)
                            .header("retry-after", secs)
                            .body("{}".to_string()),
                    };
                    response.unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeGateway { url, state }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_hits(&self, n: usize) -> Vec<Hit> {
        tokio::time::timeout(super::GUARD, async {
            loop {
                let notified = self.state.arrived.notified();
                if self.state.hits.lock().unwrap().len() >= n {
                    return self.hits();
                }
                notified.await;
            }
        })
        .await
        .expect("the gateway received the requests")
    }

    /// The connector settings (TOML) that point at this gateway.
    pub fn connector_toml(&self, extra: &str) -> String {
        format!(
            "kind = \"http\"\nurl = \"{}/sms\"\nauth = {{ bearer = \"gateway-token\" }}\nwebhook_secret = \"{GATEWAY_SECRET}\"\n{extra}",
            self.url
        )
    }
}

/// A fake Twilio Messages API: records the form fields of each create and
/// answers 201 with a new message SID.
#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    requests: Arc<Mutex<Vec<std::collections::HashMap<String, String>>>>,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let requests: Arc<Mutex<Vec<std::collections::HashMap<String, String>>>> = Arc::default();
        let r = requests.clone();
        let app = axum::Router::new().route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(move |body: String| {
                let r = r.clone();
                async move {
                    let fields = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let n = {
                        let mut all = r.lock().unwrap();
                        all.push(fields);
                        all.len()
                    };
                    let sid = format!("SM{n:032x}");
                    (
                        StatusCode::CREATED,
                        [("content-type", "application/json")],
                        serde_json::json!({"sid": sid, "status": "queued"}).to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTwilio { url, requests }
    }

    pub fn requests(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.requests.lock().unwrap().clone()
    }
}

/// A gateway so fast that its delivery report reaches the engine before
/// its answer to the send does.
#[derive(Clone)]
pub struct EarlyReporter {
    pub url: String,
    report_to: Arc<Mutex<Option<String>>>,
}

impl EarlyReporter {
    pub async fn start() -> Self {
        let report_to: Arc<Mutex<Option<String>>> = Arc::default();
        let target = report_to.clone();
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move || {
                let (target, counter) = (target.clone(), counter.clone());
                async move {
                    let id = format!("early-{}", counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
                    let url = target.lock().unwrap().clone().expect("report_to set");
                    let report = serde_json::json!({"id": id, "status": "delivered"}).to_string();
                    let answer = reqwest::Client::new()
                        .post(url)
                        .header("content-type", "application/json")
                        .header("x-sms-signature", gateway_signature(report.as_bytes()))
                        .body(report)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200, "the engine accepted the early report");
                    (StatusCode::OK, [("content-type", "application/json")], serde_json::json!({"id": id}).to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        EarlyReporter { url, report_to }
    }

    pub fn report_to(&self, url: &str) {
        *self.report_to.lock().unwrap() = Some(url.to_string());
    }
}
