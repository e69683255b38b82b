//! Traces: one trace per message, from the carrier's webhook (or the API
//! call) to the status webhook, exported over OTLP/HTTP when an endpoint
//! is set (`otlp_endpoint`).
//!
//! Spans are ordinary `tracing` spans; [`TraceExport::layer`] turns them
//! into OpenTelemetry spans. The work on one message happens in several
//! tasks, maybe on another node and hours later, so a message, each event
//! and each status webhook it causes stores the W3C `traceparent` of the
//! span that made it ([`current`]), and the span of the later work names
//! it as its parent ([`follow`]). Without an endpoint there is no layer:
//! spans have no trace context and none is stored.
//!
//! Spans never carry a phone number or a message body.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;

/// The W3C header (and stored field) that carries a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The trace context of `span` as a `traceparent` value, when it is part
/// of a trace (sampled or not: an unsampled context is stored too, so the
/// message's later spans are unsampled alike).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    // W3C Trace Context, version 00: trace id, parent id, flags.
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The current span's trace context (see [`traceparent_of`]).
pub fn current() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Whether spans are exported (a [`TraceExport`] made its layer). When
/// they are not, no span of a message's trace is made at all.
pub fn enabled() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether `span` belongs to a trace that is being recorded (sampled).
fn recorded(span: &tracing::Span) -> bool {
    !span.is_none() && span.context().span().span_context().is_sampled()
}

/// The span `make` makes, as the start of a message's trace: a child of the
/// current span when that one is recorded, the root of a new trace when
/// there is none (the sampler decides); no span inside an unsampled trace.
pub fn begin(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    let current = tracing::Span::current();
    if enabled() && (current.is_none() || recorded(&current)) { make() } else { tracing::Span::none() }
}

/// The span `make` makes, inside the current one, when that one is
/// recorded: work in an unsampled trace makes no spans.
pub fn nested(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() && recorded(&tracing::Span::current()) { make() } else { tracing::Span::none() }
}

/// The span `make` makes, as a child of a stored trace context, when that
/// trace is sampled; none otherwise (and none when spans are not exported).
pub fn resume(traceparent: Option<&str>, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    let Some(value) = traceparent.filter(|v| enabled() && sampled(v)) else { return tracing::Span::none() };
    let span = make();
    follow(&span, Some(value));
    span
}

/// Whether a `traceparent` says its trace is recorded (flag 01).
fn sampled(traceparent: &str) -> bool {
    traceparent.rsplit('-').next().and_then(|f| u8::from_str_radix(f, 16).ok()).is_some_and(|f| f & 1 == 1)
}

/// Makes `span` (not yet entered) a child of a stored trace context.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    // The propagator parses it as the W3C specification says (versions,
    // lengths, invalid ids).
    let carrier = OneHeader(value);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Err only when no layer records spans: nothing to join.
        let _ = span.set_parent(cx);
    }
}

/// A `traceparent` value as the propagator reads headers.
struct OneHeader<'a>(&'a str);

impl opentelemetry::propagation::Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Makes `span` a child of the caller's trace, when the request carries a
/// valid `traceparent` header.
pub fn follow_request(span: &tracing::Span, headers: &http::HeaderMap) {
    let value = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
    follow(span, value.filter(|v| v.len() <= 128));
}

/// The span of waiting for the writer to commit `what` (the commit
/// itself is shared by everything in the writer's cycle).
pub fn commit_span(what: &'static str) -> tracing::Span {
    nested(|| {
        tracing::info_span!(
            "store.commit",
            otel.kind = "internal",
            db.operation.name = "commit",
            switchboard.write = what
        )
    })
}

/// The trace id (32 hex digits) of a stored `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut fields = traceparent.split('-');
    let (_version, id) = (fields.next()?, fields.next()?);
    let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0');
    valid.then_some(id)
}

/// Sends spans to an OTLP/HTTP collector in batches, from a thread of its
/// own: a slow or absent collector costs dropped spans, never the engine's
/// time.
pub struct TraceExport {
    provider: SdkTracerProvider,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceExportError {
    #[error("otlp_endpoint must be an http:// or https:// URL")]
    Endpoint,
    #[error("trace_sample_ratio must be between 0 and 1, not {0}")]
    SampleRatio(f64),
    #[error("cannot start the trace exporter: {0}")]
    Start(String),
}

impl TraceExport {
    /// Exports to `endpoint` (a collector's base URL, to which
    /// `/v1/traces` is added, or the full URL of its traces path); a
    /// `sample_ratio` of the traces begun here are kept, and every trace
    /// begun by a caller keeps the caller's decision.
    pub fn start(endpoint: &str, sample_ratio: f64) -> Result<Self, TraceExportError> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(TraceExportError::SampleRatio(sample_ratio));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(BlockingHttp::new()?)
            .with_endpoint(traces_url(endpoint)?)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .map_err(|e| TraceExportError::Start(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("switchboard")
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sample_ratio))))
            .with_resource(resource)
            .build();
        Ok(TraceExport { provider })
    }

    /// The `tracing` layer that turns the engine's spans (not its log
    /// events) into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        EXPORTING.store(true, Ordering::Relaxed);
        let only_our_spans = tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("switchboard") && *m.level() <= tracing::Level::INFO
        });
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("switchboard"))
            // Busy and idle time inside a span are `tracing` notions, not
            // OpenTelemetry's; they would cost a clock read per poll.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            // Log lines stay in the log: their text (a plugin's error, a
            // webhook's URL) never becomes a span event or status.
            .with_error_events_to_status(false)
            .with_error_events_to_exceptions(false)
            .with_error_fields_to_exceptions(false)
            .with_filter(only_our_spans)
    }

    /// Sends what is buffered and stops the export thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "could not export the last spans");
        }
    }
}

/// `endpoint` as OTLP's configuration reads it: a base URL gets the
/// signal's path `/v1/traces`; a URL with a path of its own is used as is.
fn traces_url(endpoint: &str) -> Result<String, TraceExportError> {
    let url = url::Url::parse(endpoint).map_err(|_| TraceExportError::Endpoint)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(TraceExportError::Endpoint);
    }
    Ok(if url.path() == "/" { format!("{}/v1/traces", endpoint.trim_end_matches('/')) } else { endpoint.to_string() })
}

/// The collector's answer is read up to this much (it says only whether
/// the spans were taken).
const MAX_COLLECTOR_ANSWER_BYTES: usize = 64 * 1024;

/// The exporter's HTTP client: reqwest's blocking client, because the
/// batch processor exports from a plain thread that no Tokio runtime
/// drives, where blocking is right.
#[derive(Debug)]
struct BlockingHttp(reqwest::blocking::Client);

impl BlockingHttp {
    fn new() -> Result<Self, TraceExportError> {
        // The blocking client runs a runtime of its own, which may not be
        // made inside the engine's: make it on a thread of its own.
        std::thread::spawn(|| reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(10)).build())
            .join()
            .map_err(|_| TraceExportError::Start("the HTTP client could not be made".into()))?
            .map(BlockingHttp)
            .map_err(|e| TraceExportError::Start(e.to_string()))
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        use std::io::Read;
        let (parts, body) = request.into_parts();
        let response = self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send()?;
        let status = response.status();
        let mut answer = Vec::new();
        response.take(MAX_COLLECTOR_ANSWER_BYTES as u64).read_to_end(&mut answer)?;
        Ok(http::Response::builder().status(status).body(bytes::Bytes::from(answer))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_as_otlp_reads_them() {
        assert_eq!(traces_url("http://collector:4318").unwrap(), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/").unwrap(), "http://collector:4318/v1/traces");
        assert_eq!(
            traces_url("https://otel.example.com/custom/traces").unwrap(),
            "https://otel.example.com/custom/traces"
        );
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("ftp://collector").is_err());
    }

    #[test]
    fn the_sampled_flag_is_read_from_a_traceparent() {
        assert!(sampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert!(!sampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        assert!(!sampled("garbage"));
    }

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id(""), None);
    }
}
