//! The end-to-end harness: a real engine (SQLite in a temporary directory,
//! real Wasm components from `plugins/` and `examples/`), driven through
//! its HTTP router, with the simulator as the carrier.
//!
//! With `SWITCHBOARD_TEST_DATABASE=postgres://...` set, every engine runs
//! on PostgreSQL instead, in a database of its own that is dropped after
//! the test (`make test` runs the suite both ways).
#![allow(dead_code)]

pub mod carrier;
pub mod prism;
pub mod smsc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard::app::{App, Settings};
use switchboard::clock::Clock;
use switchboard::connectors::simulator::{SimulatedSms, Simulator};
use switchboard::manifest::Manifest;
use switchboard::pipeline::Notification;
use switchboard::secrets::KeyMode;
use switchboard::store::postgres::scratch::ScratchDatabase;
use tokio::sync::broadcast;
use tower::ServiceExt;

pub const NUMBER: &str = "+15550000000";
/// The admin API's token in every test engine.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
pub const CUSTOMER: &str = "+15551234567";

/// The longest any single wait may take before the test fails (a guard
/// against hangs, not a timing assertion).
pub const GUARD: Duration = Duration::from_secs(60);

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Where plugin manifests live, by name.
pub fn manifest_path(plugin: &str) -> PathBuf {
    let ws = workspace();
    match plugin {
        "chaos" => ws.join("examples/chaos-plugin/plugin.toml"),
        "wrong-wit" => ws.join("examples/wrong-wit-plugin/plugin.toml"),
        name if name.starts_with("visit-bot-") => ws.join("examples").join(name).join("plugin.toml"),
        name => ws.join("plugins").join(name).join("plugin.toml"),
    }
}

pub fn load_plugin(plugin: &str) -> (Manifest, Vec<u8>) {
    let path = manifest_path(plugin);
    let manifest = Manifest::from_file(&path).expect("manifest");
    let component = manifest.component_path(&path).expect("component path");
    let wasm = std::fs::read(&component)
        .unwrap_or_else(|_| panic!("{} is missing: build the plugins first (make plugins)", component.display()));
    (manifest, wasm)
}

pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings {
        data_dir: dir.to_path_buf(),
        // Compiled components are shared by all tests (keyed by content and
        // engine build), so each is compiled once per test run.
        compile_cache_dir: Some(workspace().join("target/test-compile-cache")),
        ..Default::default()
    };
    settings.limits.concurrent_invocations = 8;
    settings.limits.event_retry_base_ms = 10;
    settings.limits.event_retry_max_ms = 50;
    settings.admin_token = Some(switchboard::secrets::Secret::new(ADMIN_TOKEN.to_string()));
    settings
}

/// A plugin's manifest text and component, for uploads.
pub fn plugin_files(plugin: &str) -> (String, Vec<u8>) {
    let path = manifest_path(plugin);
    let text = std::fs::read_to_string(&path).expect("manifest");
    let (_, wasm) = load_plugin(plugin);
    (text, wasm)
}

/// A `multipart/form-data` body of named parts; returns (content type, body).
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "switchboard-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if *name == "component" {
            body.extend_from_slice(b"; filename=\"plugin.wasm\"\r\nContent-Type: application/wasm");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub struct Harness {
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
    pub clock: Clock,
    pub tenant: String,
    pub key: String,
    settings: Settings,
    /// Last: dropped after the engine.
    database: Option<ScratchDatabase>,
}

/// The key that seals secrets in engines on a shared database (32 bytes).
pub const TEST_SECRET_KEY: &str = "c3dpdGNoYm9hcmQtdGVzdC1zZWNyZXQta2V5LTMyYnk=";

/// The PostgreSQL server tests run against, when they do.
pub const TEST_DATABASE_VAR: &str = "SWITCHBOARD_TEST_DATABASE";

/// A database of its own for one engine, when the suite runs on PostgreSQL.
pub async fn scratch_database(settings: &mut Settings) -> Option<ScratchDatabase> {
    let server = std::env::var(TEST_DATABASE_VAR).ok().filter(|v| !v.is_empty())?;
    let db = ScratchDatabase::create(&server).await.expect("a scratch database on the test server");
    settings.database_url = Some(db.url.clone());
    settings.database_max_connections = Some(6);
    settings.secret_key = Some(switchboard::secrets::Secret::new(TEST_SECRET_KEY.to_string()));
    Some(db)
}

pub struct Builder {
    plugins: Vec<&'static str>,
    tweak: Box<dyn FnOnce(&mut Settings)>,
    clock: Clock,
    /// The connector the tenant's number is on (assigned as the operator does).
    number_connector: &'static str,
}

impl Builder {
    pub fn plugins(mut self, plugins: &[&'static str]) -> Self {
        self.plugins = plugins.to_vec();
        self
    }

    pub fn settings(mut self, f: impl FnOnce(&mut Settings) + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }

    /// Shares a clock with things started before the engine.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Puts the tenant's number on `connector` (default: the simulator).
    pub fn number_on(mut self, connector: &'static str) -> Self {
        self.number_connector = connector;
        self
    }

    pub async fn start(self) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(dir.path());
        (self.tweak)(&mut settings);
        let database = scratch_database(&mut settings).await;
        let clock = self.clock;
        let app = App::start(settings.clone(), clock.clone()).await.expect("engine starts");
        let tenant = app.control.create_tenant("Test tenant").await.expect("tenant");
        app.control.add_number(&tenant, NUMBER, self.number_connector, true).await.expect("number");
        let key = app.control.create_api_key(&tenant, KeyMode::Live, None).await.expect("key");
        for plugin in self.plugins {
            let (manifest, wasm) = load_plugin(plugin);
            app.control.deploy_plugin(&tenant, &manifest, &wasm).await.expect("deploy");
        }
        Harness { app, dir, clock, tenant, key, settings, database }
    }
}

pub fn harness() -> Builder {
    Builder {
        plugins: vec!["keyword-reply", "appointment-reminders", "order-notifications"],
        tweak: Box::new(|_| {}),
        clock: Clock::system(),
        number_connector: "simulator",
    }
}

impl Harness {
    /// Stops the engine gracefully and starts a new one on the same data
    /// directory and clock.
    pub async fn restart(mut self) -> Harness {
        self.app.shutdown().await;
        self.app = App::start(self.settings.clone(), self.clock.clone()).await.expect("engine restarts");
        self
    }

    /// Serves the API on a loopback port (for callers outside the test);
    /// returns its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = self.app.clone();
        tokio::spawn(
            async move { switchboard::api::run(app.api.clone(), listener, std::future::pending()).await.unwrap() },
        );
        url
    }

    /// The database this engine runs on (SQLite file or PostgreSQL).
    pub fn database_url(&self) -> String {
        self.settings.database_url()
    }

    pub fn plugin_id(&self, name: &str) -> String {
        self.app.engine.directory.snapshot().plugin_names[&(self.tenant.clone(), name.to_string())].clone()
    }

    pub fn sim(&self) -> Arc<Simulator> {
        self.app.engine.connectors.simulator().expect("simulator")
    }

    pub fn sandbox(&self) -> Arc<Simulator> {
        self.app.engine.connectors.sandbox().expect("sandbox")
    }

    /// Subscribe before acting, then await what happens.
    pub fn watch(&self) -> Watch {
        Watch { rx: self.app.engine.pipeline.notifications.subscribe() }
    }

    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        raw(&self.app, req).await
    }

    /// A request with extra headers; the response headers come back too.
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        key: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {key}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        raw_with_headers(&self.app, req).await
    }

    /// Calls the admin API.
    pub async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, uri, body, Some(ADMIN_TOKEN)).await
    }

    /// Uploads a plugin (`POST /v1/plugins`) as `key`.
    pub async fn deploy(&self, key: &str, manifest: &str, wasm: &[u8]) -> (StatusCode, Value) {
        let (content_type, body) = multipart(&[("manifest", manifest.as_bytes()), ("component", wasm)]);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/plugins")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
        raw(&self.app, req).await
    }

    /// Creates another tenant through the admin API, with `number` on the
    /// simulator; returns (tenant id, live API key).
    pub async fn tenant(&self, name: &str, number: &str) -> (String, String) {
        let (status, t) = self.admin(Method::POST, "/admin/v1/tenants", Some(serde_json::json!({"name": name}))).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_string();
        let body = serde_json::json!({"number": number, "connector": "simulator", "default": true});
        let (status, n) = self.admin(Method::POST, &format!("/admin/v1/tenants/{id}/numbers"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{n}");
        (id, t["api_key"].as_str().unwrap().to_string())
    }

    /// Posts an inbound SMS from `from` to `to`; returns the message id.
    pub async fn inbound_to(&self, to: &str, from: &str, text: &str) -> String {
        let body = serde_json::json!({"from": from, "to": to, "message": text});
        let (status, answer) = self.call(Method::POST, "/v1/inbound/generic", Some(body), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["id"].as_str().expect("id").to_string()
    }

    /// POST as the tenant; asserts the status and returns the body.
    pub async fn post(&self, uri: &str, body: Value, want: StatusCode) -> Value {
        let (status, answer) = self.call(Method::POST, uri, Some(body), Some(&self.key)).await;
        assert_eq!(status, want, "POST {uri}: {answer}");
        answer
    }

    pub async fn patch(&self, uri: &str, body: Value) -> Value {
        let (status, v) = self.call(Method::PATCH, uri, Some(body), Some(&self.key)).await;
        assert_eq!(status, StatusCode::OK, "PATCH {uri}: {v}");
        v
    }

    pub async fn get(&self, uri: &str) -> Value {
        let (status, body) = self.call(Method::GET, uri, None, Some(&self.key)).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        body
    }

    /// Posts an inbound SMS from `from` to the tenant's number; returns the
    /// message id.
    pub async fn inbound(&self, from: &str, text: &str) -> String {
        let body = serde_json::json!({"from": from, "to": NUMBER, "message": text});
        let (status, answer) = self.call(Method::POST, "/v1/inbound/generic", Some(body), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["id"].as_str().expect("id").to_string()
    }

    /// Posts a business event; returns its id.
    pub async fn event(&self, plugin: &str, name: &str, payload: Value) -> String {
        let body = serde_json::json!({"name": name, "payload": payload});
        let (status, answer) =
            self.call(Method::POST, &format!("/v1/events/{plugin}"), Some(body), Some(&self.key)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer["id"].as_str().expect("id").to_string()
    }

    /// Waits for the simulator to have sent `n` messages in all.
    pub async fn sent(&self, n: usize) -> Vec<SimulatedSms> {
        tokio::time::timeout(GUARD, self.sim().wait_for(n)).await.expect("simulator received the messages")
    }

    /// The outbound messages answering an inbound one.
    pub async fn replies(&self, inbound_id: &str) -> Vec<Value> {
        let page = self.get(&format!("/v1/messages?in_reply_to={inbound_id}")).await;
        page["data"].as_array().cloned().unwrap_or_default()
    }
}

/// Re-checks `condition` until it holds, for state changes no notification
/// announces (work a restarted engine does before a test can subscribe).
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let wait = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(GUARD, wait).await.unwrap_or_else(|_| panic!("{what} never happened"));
}

pub async fn raw(app: &Arc<App>, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, value) = raw_with_headers(app, req).await;
    (status, value)
}

pub async fn raw_with_headers(app: &Arc<App>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = switchboard::api::router(app.api.clone()).oneshot(req).await.expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

pub struct Watch {
    rx: broadcast::Receiver<Notification>,
}

impl Watch {
    /// Waits for the first notification matching `pred`.
    pub async fn until(&mut self, mut pred: impl FnMut(&Notification) -> bool) -> Notification {
        let wait = async {
            loop {
                match self.rx.recv().await {
                    Ok(n) if pred(&n) => return n,

                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("notifications closed: {e}"),
                }
            }
        };
        tokio::time::timeout(GUARD, wait).await.expect("the awaited notification came")
    }

    /// Waits until `n` events have settled with `status`.
    pub async fn events_settled(&mut self, status: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        while ids.len() < n {
            if let Notification::EventSettled { event_id, .. } =
                self.until(|x| matches!(x, Notification::EventSettled { status: s, .. } if *s == status)).await
            {
                ids.push(event_id);
            }
        }
        ids
    }

    /// Waits until every (message id, status) pair has been seen, in any order.
    pub async fn message_statuses(&mut self, wanted: &[(&str, &str)]) {
        let mut left: Vec<(String, String)> = wanted.iter().map(|(i, s)| (i.to_string(), s.to_string())).collect();
        while !left.is_empty() {
            if let Notification::MessageStatus { message_id, status, .. } =
                self.until(|n| matches!(n, Notification::MessageStatus { .. })).await
            {
                left.retain(|(i, s)| !(*i == message_id && *s == status));
            }
        }
    }

    /// Waits until message `id` reaches `status`.
    pub async fn message_status(&mut self, id: &str, status: &str) {
        self.until(
            |n| matches!(n, Notification::MessageStatus { message_id, status: s, .. } if message_id == id && s == status),
        )
        .await;
    }
}

/// A message row as the pipeline builds one, for tests that drive the store
/// directly: from the customer to the tenant's number (inbound, `received`)
/// or back (outbound, `queued`), created now.
pub fn new_message(h: &Harness, direction: switchboard::store::Direction) -> switchboard::store::NewMessage {
    use switchboard::store::{Direction, MessageStatus, NewMessage};
    let (from, to, status) = match direction {
        Direction::Inbound => (CUSTOMER, NUMBER, MessageStatus::Received),
        Direction::Outbound => (NUMBER, CUSTOMER, MessageStatus::Queued),
    };
    NewMessage {
        id: switchboard::ids::message_id(),
        tenant_id: h.tenant.clone(),
        direction,
        from: from.into(),
        to: to.into(),
        body: "x".into(),
        status,
        segments: 1,
        encoding: "gsm7",
        reference: None,
        connector: None,
        plugin_id: None,
        event_id: None,
        in_reply_to: None,
        created_at: h.app.engine.clock.now_ms(),
        mode: "live",
        webhook_url: None,
        scheduled_at: None,
        price: 0,
        batch_id: None,
        error_code: None,
        account_sid: None,
        expires_at: None,
        trace_context: None,
    }
}
