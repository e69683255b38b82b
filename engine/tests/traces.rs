//! One trace per message, as an operator's OpenTelemetry collector sees it:
//! `switchboard serve --otlp-endpoint` exporting to a real OTLP/HTTP
//! receiver in this process (the `opentelemetry-proto` message types,
//! decoded with prost), and a tenant webhook that receives the status
//! changes with their `traceparent`.
//!
//! With `SWITCHBOARD_TEST_DATABASE=postgres://...` the engines run on a
//! scratch PostgreSQL database, else on SQLite in their data directory.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{GUARD, demo_engine, scratch_database};
use tokio::sync::Notify;

const CUSTOMER: &str = "+15551234567";
const DEMO_NUMBER: &str = "+15550000000";

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct SpanSeen {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    /// Span events (log lines must not become any) and the status message.
    events: usize,
    status_message: String,
    service: String,
}

/// What a receiver collected, and a wake-up for each arrival.
struct Collected<T> {
    items: Mutex<Vec<T>>,
    arrived: Notify,
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected { items: Mutex::new(Vec::new()), arrived: Notify::new() }
    }
}

impl<T: Clone> Collected<T> {
    fn push(&self, more: impl IntoIterator<Item = T>) {
        self.items.lock().unwrap().extend(more);
        self.arrived.notify_waiters();
    }

    /// Waits until `done` holds for what has arrived; returns it then.
    async fn until(&self, what: &str, done: impl Fn(&[T]) -> bool) -> Vec<T> {
        tokio::time::timeout(GUARD, async {
            loop {
                let arrived = self.arrived.notified();
                {
                    let items = self.items.lock().unwrap();
                    if done(&items) {
                        return items.clone();
                    }
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what} did not arrive"))
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn otlp_traces(State(spans): State<Arc<Collected<SpanSeen>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP/protobuf export request");
    let mut seen = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for s in scope.spans {
                seen.push(SpanSeen {
                    name: s.name,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent_span_id: hex::encode(&s.parent_span_id),
                    attributes: s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                    events: s.events.len(),
                    status_message: s.status.map(|st| st.message).unwrap_or_default(),
                    service: service.clone(),
                });
            }
        }
    }
    spans.push(seen);
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

/// A status webhook as the tenant's endpoint received it.
#[derive(Debug, Clone)]
struct Hook {
    payload: Value,
    traceparent: Option<String>,
}

/// The tenant's endpoint: refuses the first `refuse` deliveries (503),
/// takes the rest.
struct HookEndpoint {
    taken: Arc<Collected<Hook>>,
    refuse: AtomicUsize,
}

async fn tenant_webhook(State(endpoint): State<Arc<HookEndpoint>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let refused = endpoint.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if refused {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let traceparent = headers.get("traceparent").map(|v| v.to_str().unwrap().to_string());
    endpoint.taken.push([Hook { payload: serde_json::from_slice(&body).unwrap(), traceparent }]);
    StatusCode::OK
}

/// An OTLP/HTTP collector and a tenant webhook endpoint on loopback.
struct Receivers {
    otlp_url: String,
    hook_url: String,
    spans: Arc<Collected<SpanSeen>>,
    hooks: Arc<Collected<Hook>>,
}

async fn receivers(refuse_hooks: usize) -> Receivers {
    let spans = Arc::new(Collected::default());
    let hooks = Arc::new(Collected::default());
    let endpoint = Arc::new(HookEndpoint { taken: hooks.clone(), refuse: AtomicUsize::new(refuse_hooks) });
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(otlp_traces))
        .with_state(spans.clone())
        .merge(axum::Router::new().route("/hook", axum::routing::post(tenant_webhook)).with_state(endpoint));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receivers { otlp_url: base.clone(), hook_url: format!("{base}/hook"), spans, hooks }
}

/// Starts an engine with the demo tenant that exports its traces to
/// `otlp_url` (batches sent every 50 ms); returns it with its base URL.
async fn engine(
    data_dir: &Path,
    database_url: Option<&str>,
    otlp_url: &str,
    extra_env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let mut env = vec![("OTEL_BSP_SCHEDULE_DELAY", "50"), ("SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", "true")];
    env.extend_from_slice(extra_env);
    demo_engine(data_dir, database_url, &["--otlp-endpoint", otlp_url], &env).await
}

/// Points the demo tenant's status webhooks at `url` and gives it a
/// signing secret.
async fn subscribe(http: &reqwest::Client, base: &str, key: &str, url: &str) {
    let put = http.put(format!("{base}/v1/account/webhook")).bearer_auth(key).json(&json!({"url": url})).send();
    assert_eq!(put.await.unwrap().status(), 200);
    let secret = http.post(format!("{base}/v1/account/webhook/secret")).bearer_auth(key).send().await.unwrap();
    assert!(secret.status().is_success(), "{}", secret.text().await.unwrap());
}

/// An engine with the demo tenant, its API key, and its status webhooks
/// pointed at the receivers' endpoint.
struct Demo {
    child: tokio::process::Child,
    base: String,
    key: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    database: Option<switchboard::store::postgres::scratch::ScratchDatabase>,
}

async fn demo(rx: &Receivers, extra_env: &[(&str, &str)]) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let database = scratch_database().await;
    let (child, base) = engine(dir.path(), database.as_ref().map(|d| d.url.as_str()), &rx.otlp_url, extra_env).await;
    let key = std::fs::read_to_string(dir.path().join("demo-api-key")).unwrap().trim().to_string();
    let http = reqwest::Client::new();
    subscribe(&http, &base, &key, &rx.hook_url).await;
    Demo { child, base, key, http, dir, database }
}

impl Demo {
    /// Texts HOURS to the demo number through the generic carrier webhook;
    /// returns the inbound message's id.
    async fn text_the_bot(&self) -> String {
        let accepted = self
            .http
            .post(format!("{}/v1/inbound/generic", self.base))
            .json(&json!({"from": CUSTOMER, "to": DEMO_NUMBER, "message": "HOURS"}))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 200);
        accepted.json::<Value>().await.unwrap()["id"].as_str().expect("the message id").to_string()
    }

    async fn message(&self, id: &str) -> Value {
        get(&self.http, format!("{}/v1/messages/{id}", self.base), &self.key).await
    }
}

/// The first status webhook that says a message was delivered.
async fn delivered(rx: &Receivers) -> Hook {
    let hooks = rx.hooks.until("the delivered webhook", |h| h.iter().any(|h| h.payload["status"] == "delivered")).await;
    hooks.into_iter().find(|h| h.payload["status"] == "delivered").unwrap()
}

async fn get(http: &reqwest::Client, url: String, key: &str) -> Value {
    let response = http.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn named<'a>(spans: &'a [SpanSeen], trace: &str, name: &str) -> Vec<&'a SpanSeen> {
    spans.iter().filter(|s| s.trace_id == trace && s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanSeen], trace: &str, name: &str) -> &'a SpanSeen {
    let found = named(spans, trace, name);
    assert_eq!(found.len(), 1, "one {name} span in trace {trace}: {found:#?}");
    found[0]
}

/// The trace context a request carried, as (trace id, parent span id).
fn trace_and_span(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    (fields[1].to_string(), fields[2].to_string())
}

/// Nothing a span says names a phone number or a message body.
fn assert_no_numbers_or_bodies(spans: &[SpanSeen], bodies: &[&str]) {
    for s in spans {
        let said = format!("{} {:?}", s.name, s.attributes);
        for secret in [CUSTOMER, DEMO_NUMBER, &CUSTOMER[2..], &DEMO_NUMBER[2..]].iter().chain(bodies) {
            assert!(!said.contains(secret), "span {} carries {secret:?}: {said}", s.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_inbound_message_is_one_trace_from_the_carrier_webhook_to_the_status_webhook() {
    // The tenant's endpoint refuses the first webhook: the engine logs it
    // inside the webhook's span, and retries.
    let rx = receivers(1).await;
    let mut engine = demo(&rx, &[("SWITCHBOARD_LIMITS__WEBHOOK_RETRY_BASE_MS", "20")]).await;
    let inbound_id = engine.text_the_bot().await;

    // The reply's final status webhook, carrying its trace context.
    let delivered = delivered(&rx).await;
    let reply_id = delivered.payload["id"].as_str().unwrap().to_string();

    let inbound = engine.message(&inbound_id).await;
    let reply = engine.message(&reply_id).await;
    let trace = inbound["trace_id"].as_str().expect("the inbound message has a trace id").to_string();
    assert_eq!(trace.len(), 32);
    assert_eq!(reply["trace_id"], trace.as_str(), "the reply is in the inbound message's trace");
    assert_eq!(reply["in_reply_to"], inbound_id.as_str());
    let (hook_trace, hook_parent) = trace_and_span(delivered.traceparent.as_deref().expect("a traceparent header"));
    assert_eq!(hook_trace, trace);

    let webhook_span_id = hook_parent.clone();
    let spans = rx
        .spans
        .until("the message's spans", |s| {
            s.iter().any(|s| s.span_id == webhook_span_id)
                && s.iter().any(|s| s.trace_id == trace && s.name == "sms.delivery_report")
                && s.iter().any(|s| s.trace_id == trace && s.name == "store.commit")
                && s.iter().any(|s| {
                    s.trace_id == trace && s.attributes.get("http.response.status_code").is_some_and(|c| c == "503")
                })
        })
        .await;

    // The hops, and who is whose parent.
    let http_span = one(&spans, &trace, "POST /v1/inbound/{connector}");
    assert_eq!(http_span.parent_span_id, "", "the carrier's request begins the trace");
    assert_eq!(http_span.attributes["http.route"], "/v1/inbound/{connector}");
    assert_eq!(http_span.attributes["http.response.status_code"], "200");
    let receive = one(&spans, &trace, "sms.receive");
    assert_eq!(receive.parent_span_id, http_span.span_id);
    assert_eq!(receive.attributes["messaging.message.id"], inbound_id);
    let send = one(&spans, &trace, "sms.send");
    let invokes = named(&spans, &trace, "plugin.invoke");
    assert!(invokes.iter().all(|i| i.parent_span_id == receive.span_id), "the invocations continue the stored context");
    let invoke =
        *invokes.iter().find(|i| i.span_id == send.parent_span_id).expect("the reply was made by an invocation");
    assert_eq!(invoke.attributes["switchboard.outcome"], "ok");
    assert!(invoke.attributes["switchboard.fuel"].parse::<u64>().unwrap() > 0, "{invoke:?}");
    assert!(invoke.attributes["switchboard.memory_peak_bytes"].parse::<u64>().unwrap() > 0, "{invoke:?}");
    let commits = named(&spans, &trace, "store.commit");
    let commit_parents: Vec<(&str, &str)> =
        commits.iter().map(|c| (c.attributes["switchboard.write"].as_str(), c.parent_span_id.as_str())).collect();
    assert!(commit_parents.contains(&("inbound", receive.span_id.as_str())), "{commit_parents:?}");
    assert!(commit_parents.contains(&("completion", invoke.span_id.as_str())), "{commit_parents:?}");
    assert_eq!(send.attributes["messaging.message.id"], reply_id);
    assert_eq!(send.attributes["switchboard.outcome"], "sent");
    let carrier = one(&spans, &trace, "carrier.request");
    assert_eq!(carrier.parent_span_id, send.span_id);
    assert_eq!(carrier.attributes["switchboard.result"], "ok");
    let report = named(&spans, &trace, "sms.delivery_report");
    assert!(report.iter().all(|r| r.parent_span_id == invoke.span_id), "{report:#?}");
    assert!(report.iter().any(|r| r.attributes["switchboard.status"] == "delivered"), "{report:#?}");
    let webhook = spans.iter().find(|s| s.span_id == webhook_span_id).expect("the webhook's span");
    assert_eq!((webhook.name.as_str(), webhook.trace_id.as_str()), ("webhook.deliver", trace.as_str()));
    assert_eq!(webhook.parent_span_id, invoke.span_id);
    assert_eq!(webhook.attributes["http.response.status_code"], "200");
    let refused = named(&spans, &trace, "webhook.deliver");
    assert!(refused.iter().any(|w| w.attributes["http.response.status_code"] == "503"), "{refused:#?}");
    assert!(spans.iter().all(|s| s.service == "switchboard"));
    // Log lines (the refused webhook's among them) stay in the log.
    assert!(spans.iter().all(|s| s.events == 0 && s.status_message.is_empty()), "{spans:#?}");

    let reply_body = reply["message"].as_str().unwrap();
    assert_no_numbers_or_bodies(&spans, &["HOURS", reply_body]);
    engine.child.kill().await.unwrap();
}

/// A caller's `traceparent` is honoured, and the message's trace goes on
/// in another process: one node accepts the send and stops before anything
/// is sent; another (the same database) sends it, takes its report and
/// posts the status webhook, all in the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_callers_trace_continues_on_the_node_that_sends_the_message() {
    let rx = receivers(0).await;
    let mut accepting = demo(&rx, &[("SWITCHBOARD_PROCESS_EVENTS", "false")]).await;
    let (http, base, key) = (accepting.http.clone(), accepting.base.clone(), accepting.key.clone());

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let sent = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({"to": CUSTOMER, "message": "Your code is 481516"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let sent: Value = sent.json().await.unwrap();
    let message_id = sent["id"].as_str().unwrap().to_string();
    let message = accepting.message(&message_id).await;
    assert_eq!(message["trace_id"], caller_trace);
    let accepted =
        rx.spans.until("the accepting request's span", |s| s.iter().any(|s| s.name == "POST /v1/messages")).await;
    let request = one(&accepted, caller_trace, "POST /v1/messages");
    assert_eq!(request.parent_span_id, caller_span, "the caller's span is the request's parent");
    accepting.child.kill().await.unwrap();
    accepting.child.wait().await.unwrap();

    // The other node: same data directory and database, its own process.
    let database_url = accepting.database.as_ref().map(|d| d.url.as_str());
    let (mut sending, _) = engine(accepting.dir.path(), database_url, &rx.otlp_url, &[]).await;
    let delivered = delivered(&rx).await;
    assert_eq!(delivered.payload["id"], message_id.as_str());
    let (hook_trace, hook_parent) = trace_and_span(delivered.traceparent.as_deref().unwrap());
    assert_eq!(hook_trace, caller_trace);
    let spans = rx
        .spans
        .until("the sending node's spans", |s| {
            s.iter().any(|s| s.span_id == hook_parent)
                && s.iter().any(|s| s.trace_id == caller_trace && s.name == "sms.delivery_report")
        })
        .await;
    let send = one(&spans, caller_trace, "sms.send");
    assert_eq!(send.parent_span_id, request.span_id, "the send continues the stored context");
    assert_eq!(one(&spans, caller_trace, "carrier.request").parent_span_id, send.span_id);
    assert!(named(&spans, caller_trace, "sms.delivery_report").iter().all(|r| r.parent_span_id == request.span_id));
    let webhook = spans.iter().find(|s| s.span_id == hook_parent).unwrap();
    assert_eq!(webhook.parent_span_id, request.span_id);
    assert_no_numbers_or_bodies(&spans, &["Your code is 481516"]);
    sending.kill().await.unwrap();
}

/// At a sampling ratio of 0 a message makes no spans, yet keeps its trace
/// id, and its status webhooks carry the unsampled context on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_message_keeps_its_trace_id_and_makes_no_spans() {
    let rx = receivers(0).await;
    let mut engine = demo(&rx, &[("SWITCHBOARD_TRACE_SAMPLE_RATIO", "0")]).await;
    let inbound_id = engine.text_the_bot().await;
    let delivered = delivered(&rx).await;
    let traceparent = delivered.traceparent.clone().expect("the unsampled context is carried on");
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    let (trace, _) = trace_and_span(&traceparent);
    let inbound = engine.message(&inbound_id).await;
    assert_eq!(inbound["trace_id"], trace.as_str());
    // A caller that keeps its trace is still exported at ratio 0.
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let read = engine
        .http
        .get(format!("{}/v1/messages/{inbound_id}", engine.base))
        .bearer_auth(&engine.key)
        .header("traceparent", format!("00-{caller_trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // A graceful stop exports whatever was buffered before the process ends.
    let pid = engine.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(tokio::time::timeout(GUARD, engine.child.wait()).await.unwrap().unwrap().success());
    let spans = rx.spans.items.lock().unwrap().clone();
    assert!(spans.iter().any(|s| s.trace_id == caller_trace), "the sampled request's span was exported: {spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id != trace), "{spans:#?}");
}
