//! The one harness every connector's tests run through.
//!
//! Outgoing cases: a message goes to the connector, which talks to a mock
//! carrier on loopback that answers with canned responses; the case states
//! the exact request the carrier must see and what the connector must make
//! of the answer. Every canned response must be used. Incoming cases: a
//! webhook as the carrier sends it, and what the connector must make of
//! it. For every case the harness captures all logs and checks that no
//! secret appears in them, in errors, or in anything parsed.

use super::{
    Accepted, Connector, ConnectorError, OutboundSms, WebhookError, WebhookEvent, WebhookKind, WebhookReply,
    WebhookRequest,
};
use crate::sms::encoding::Encoding;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A canned carrier answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Reply { status, headers: vec![("content-type", "application/json")], body: body.to_string() }
    }
}

/// A request the mock carrier received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn form(&self) -> Vec<(String, String)> {
        super::form_pairs(self.body.as_bytes())
    }
}

#[derive(Clone, Default)]
struct MockState {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A carrier on loopback that records requests and plays back replies.
pub struct MockCarrier {
    pub base_url: String,
    state: MockState,
}

impl MockCarrier {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let state = MockState { replies: Arc::new(Mutex::new(replies.into())), received: Arc::default() };
        let handler_state = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = handler_state.clone();
            async move {
                s.received.lock().unwrap().push(Received {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let reply = s
                    .replies
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("the connector made a request no reply was planned for");
                let mut builder = axum::http::Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
                for (k, v) in reply.headers {
                    builder = builder.header(k, v);
                }
                builder.body(axum::body::Body::from(reply.body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockCarrier { base_url, state }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn unused_replies(&self) -> usize {
        self.state.replies.lock().unwrap().len()
    }
}

/// Captures every log line emitted on this thread while alive.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn start() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = BufferWriter(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        LogCapture { buffer, _guard: tracing::subscriber::set_default(subscriber) }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

pub fn assert_no_secrets(label: &str, what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{label}: a secret appears in the {what}:\n{text}");
    }
}

/// What an outgoing case expects the carrier to receive.
pub struct ExpectRequest {
    pub method: &'static str,
    /// Path and query, exactly.
    pub uri: String,
    /// Headers that must be present with these values.
    pub headers: Vec<(&'static str, String)>,
    /// Form fields, exactly (order-insensitive), for form-encoded carriers.
    pub form: Option<Vec<(&'static str, String)>>,
    /// The JSON body, exactly, for JSON carriers.
    pub json: Option<serde_json::Value>,
}

pub struct OutgoingCase {
    pub label: &'static str,
    pub sms: OutboundSms,
    pub replies: Vec<Reply>,
    /// One per request the connector must make (retries inside a send are
    /// not expected: the dispatcher retries).
    pub requests: Vec<ExpectRequest>,
    pub outcome: Result<Accepted, ConnectorError>,
}

/// The instant every test context's clock shows.
pub const NOW: i64 = 1_800_000_000_000;

/// A connector context for tests: a frozen clock and sinks nobody reads.
pub fn context(public_base_url: Option<&str>) -> super::Context {
    let (reports, _) = crate::connectors::Tracked::new();
    let (inbound, _) = crate::connectors::Tracked::new();
    let (parts, _) = crate::connectors::Tracked::new();
    super::Context {
        http: reqwest::Client::new(),
        clock: crate::clock::Clock::frozen(NOW),
        sinks: super::Sinks { reports, inbound, parts },
        public_base_url: public_base_url.map(str::to_string),
        cluster: None,
    }
}

pub fn sms(to: &str, body: &str) -> OutboundSms {
    OutboundSms {
        message_id: "msg_0001".into(),
        tenant_id: "tnt_1".into(),
        from: "+15550000000".into(),
        to: to.into(),
        body: body.into(),
        reference: None,
        encoding: if crate::sms::encoding::first_non_gsm7(body).is_some() { Encoding::Ucs2 } else { Encoding::Gsm7 },
    }
}

/// Runs outgoing cases; `build` makes the connector for a mock's base URL.
pub async fn run_outgoing(cases: Vec<OutgoingCase>, build: impl Fn(&str) -> Arc<dyn Connector>, secrets: &[&str]) {
    for case in cases {
        let logs = LogCapture::start();
        let carrier = MockCarrier::start(case.replies.clone()).await;
        let connector = build(&carrier.base_url);
        let outcome = connector.send(&case.sms).await;
        let label = case.label;
        assert_eq!(outcome, case.outcome, "{label}: outcome");
        if let Err(e) = &outcome {
            assert_no_secrets(label, "error", &format!("{e} {e:?}"), secrets);
        }
        let received = carrier.received();
        assert_eq!(received.len(), case.requests.len(), "{label}: number of requests: {received:#?}");
        for (got, want) in received.iter().zip(&case.requests) {
            assert_eq!(got.method, want.method, "{label}: method");
            assert_eq!(got.uri, want.uri, "{label}: path and query");
            for (name, value) in &want.headers {
                let actual = got.headers.get(*name).and_then(|v| v.to_str().ok());
                assert_eq!(actual, Some(value.as_str()), "{label}: header {name}");
            }
            if let Some(form) = &want.form {
                let mut got_form = got.form();
                got_form.sort();
                let mut want_form: Vec<(String, String)> =
                    form.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                want_form.sort();
                assert_eq!(got_form, want_form, "{label}: form body");
            }
            if let Some(json) = &want.json {
                let got_json: serde_json::Value = serde_json::from_str(&got.body).expect("a JSON body");
                assert_eq!(&got_json, json, "{label}: JSON body");
            }
        }
        assert_eq!(carrier.unused_replies(), 0, "{label}: planned replies were not used");
        assert_no_secrets(label, "logs", &logs.text(), secrets);
    }
}

pub struct IncomingCase {
    pub label: &'static str,
    pub kind: WebhookKind,
    /// The URL the carrier called.
    pub url: &'static str,
    pub method: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub outcome: Result<WebhookEvent, WebhookError>,
    /// The reply body, when it matters (TwiML).
    pub reply: Option<WebhookReply>,
}

/// Runs incoming cases against one connector.
pub fn run_incoming(cases: Vec<IncomingCase>, connector: &dyn Connector, secrets: &[&str]) {
    for case in cases {
        let logs = LogCapture::start();
        let mut headers = HeaderMap::new();
        for (k, v) in &case.headers {
            headers.insert(*k, v.parse().unwrap());
        }
        let query = case.url.split_once('?').map_or("", |(_, q)| q);
        let req =
            WebhookRequest { url: case.url, method: case.method, headers: &headers, query, body: case.body.as_bytes() };
        let result = connector.webhook(case.kind, &req);
        let label = case.label;
        match (&result, &case.outcome) {
            (Ok((event, reply)), Ok(want)) => {
                assert_eq!(event, want, "{label}: event");
                if let Some(want_reply) = &case.reply {
                    assert_eq!(reply, want_reply, "{label}: reply");
                }
            }
            (Err(e), Err(want)) => assert_eq!(e, want, "{label}: error"),
            (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
        }
        assert_no_secrets(label, "logs", &logs.text(), secrets);
        assert_no_secrets(label, "result", &format!("{result:?}"), secrets);
    }
}

#[cfg(test)]
mod harness_tests {
    use super::*;
    use async_trait::async_trait;

    /// A careless connector that logs its credentials.
    struct Leaky;

    #[async_trait]
    impl Connector for Leaky {
        fn name(&self) -> &str {
            "leaky"
        }
        async fn send(&self, _sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
            tracing::debug!(token = "sekrit-token", "sending");
            Ok(Accepted { provider_ids: vec!["x".into()] })
        }
    }

    #[tokio::test]
    #[should_panic(expected = "a secret appears in the logs")]
    async fn the_harness_catches_a_secret_in_the_logs() {
        let case = OutgoingCase {
            label: "leak",
            sms: sms("+15551234567", "hi"),
            replies: vec![],
            requests: vec![],
            outcome: Ok(Accepted { provider_ids: vec!["x".into()] }),
        };
        run_outgoing(vec![case], |_| Arc::new(Leaky), &["sekrit-token"]).await;
    }
}
