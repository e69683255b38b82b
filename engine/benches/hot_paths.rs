//! Micro-benchmarks of the hot pieces: `cargo bench -p switchboard`.
//!
//! - GSM-7 / UCS-2 encoding and segmentation (every send is analysed).
//! - Keyword routing over a directory of 1,000 tenants.
//! - Webhook signature computation (every status callback is signed).
//! - Plugin invocation: a fresh instance of the keyword-reply component
//!   and its `on-inbound` (needs the plugins built: `make plugins`).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use switchboard::directory::Snapshot;
use switchboard::pipeline::inbound_routing;
use switchboard::sms::encoding::{self, EncodingChoice};

fn encoding(c: &mut Criterion) {
    let texts = [
        ("gsm7_short", "Your code is 123456".to_string()),
        ("gsm7_long_with_escapes", "Price: 10€ [promo] {today} only! ".repeat(12)),
        ("ucs2_emoji", "Votre rendez-vous est confirmé 👍 à 9h30 — à bientôt ".repeat(5)),
    ];
    let mut group = c.benchmark_group("encoding");
    for (name, text) in &texts {
        group.bench_with_input(BenchmarkId::new("analyze", name), text, |b, t| {
            b.iter(|| encoding::analyze(black_box(t), EncodingChoice::Auto).map(|a| a.segments))
        });
        let enc = encoding::analyze(text, EncodingChoice::Auto).expect("encodable").encoding;
        group.bench_with_input(BenchmarkId::new("split", name), text, |b, t| {
            b.iter(|| encoding::split(black_box(t), enc).len())
        });
    }
    group.finish();
}

fn routing(c: &mut Criterion) {
    let mut snapshot = Snapshot::default();
    for t in 0..1000 {
        let tenant = format!("tnt_{t}");
        for (k, word) in ["HOURS", "STATUS", "MENU", "PRICE"].iter().enumerate() {
            snapshot.keywords.insert((tenant.clone(), word.to_string()), vec![format!("plg_{t}_{k}")]);
        }
        snapshot.catch_all.insert(tenant, vec![format!("plg_{t}_all")]);
    }
    let mut group = c.benchmark_group("routing");
    group.bench_function("keyword_hit", |b| {
        b.iter(|| inbound_routing::plugins_for_inbound(&snapshot, black_box("tnt_517"), black_box("hours please")))
    });
    group.bench_function("catch_all", |b| {
        b.iter(|| {
            inbound_routing::plugins_for_inbound(&snapshot, black_box("tnt_517"), black_box("where is my parcel?"))
        })
    });
    group.finish();
}

fn signature(c: &mut Criterion) {
    let secret = switchboard::secrets::generate_webhook_secret();
    let body = serde_json::json!({
        "id": "msg_01JABCDEF", "status": "delivered", "to": "+15551234567",
        "from": "+15550000000", "segments": 1, "error_code": null, "at": "2026-11-23T10:00:00Z"
    })
    .to_string();
    c.bench_function("webhook_signature", |b| {
        b.iter(|| {
            switchboard::secrets::webhook_signature(&secret, black_box(1_795_000_000), black_box(body.as_bytes()))
        })
    });
}

fn invocation(c: &mut Criterion) {
    let plugins_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let opts = switchboard::bench::Options { messages: 1, connections: 1, plugins_dir, tenants: 1 };
    let bench = match rt.block_on(switchboard::bench::invoke::Bench::start(&opts)) {
        Ok(bench) => bench,
        Err(e) => {
            eprintln!("skipping plugin invocation (build the plugins with `make plugins`): {e:#}");
            return;
        }
    };
    let mut i = 0;
    c.bench_function("plugin_invocation_keyword_reply", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(bench.invoke_once(i)).expect("invocation")
        })
    });
    rt.block_on(bench.stop());
}

/// What one `keyword` message records into the metrics: its inbound HTTP
/// request, the inbound, the invocation, the carrier request, the send, its
/// segments, the delivery report and its lag, and a share of a write cycle.
fn metrics_per_message(c: &mut Criterion) {
    use std::time::Duration;
    use switchboard::metrics::{InvocationSample, Metrics};
    let metrics = Metrics::new(false);
    c.bench_function("metrics_per_keyword_message", |b| {
        b.iter(|| {
            metrics.http_request("POST", "/v1/inbound/{connector}", 200, Duration::from_micros(900));
            metrics.inbound("generic", "accepted", "ten_1");
            metrics.invocation(InvocationSample { outcome: "ok", duration: Duration::from_micros(30), fuel: 17_931 });
            metrics.carrier_request("simulator", "ok", Duration::from_micros(200));
            metrics.outbound("simulator", "sent", "ten_1");
            metrics.segments("simulator", 1);
            metrics.delivery_report("simulator", "delivered");
            metrics.delivery_lag("simulator", Duration::from_millis(1));
            metrics.write_cycle(20, Duration::from_millis(2));
        })
    });
}

/// The trace work of one `keyword` message: the carrier's request and the
/// delivery report's (HTTP spans), the accept, the invocation, the commits,
/// the send and the carrier request, and the trace contexts stored and
/// resumed between them. "exporting" has the OpenTelemetry layer on with
/// 1 % of traces kept (exported to a collector that is not there: the
/// export thread's failures cost the engine nothing); "off" is the engine
/// without an endpoint (the log layer only).
fn tracing_per_message(c: &mut Criterion) {
    use switchboard::telemetry;
    use tracing::info_span;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{EnvFilter, Layer};
    fn http_span(route: &'static str) -> tracing::Span {
        let span = info_span!(
            "http",
            otel.name = format!("POST {route}"),
            otel.kind = "server",
            http.request.method = "POST",
            http.route = route,
            http.response.status_code = tracing::field::Empty
        );
        telemetry::follow_request(&span, &http::HeaderMap::new());
        span
    }
    fn one_message() {
        let carrier = http_span("/v1/inbound/{connector}");
        let stored = carrier.in_scope(|| {
            let receive =
                telemetry::begin(|| info_span!("sms.receive", otel.kind = "consumer", messaging.system = "sms"));
            let stored = telemetry::traceparent_of(&receive).or_else(telemetry::current);
            receive.in_scope(|| drop(telemetry::commit_span("inbound")));
            stored
        });
        carrier.record("http.response.status_code", 200);
        let invoke = telemetry::resume(stored.as_deref(), || info_span!("plugin.invoke", switchboard.outcome = "ok"));
        let reply = invoke.in_scope(|| {
            drop(telemetry::commit_span("completion"));
            telemetry::current().or_else(|| stored.clone())
        });
        let send = telemetry::resume(reply.as_deref(), || info_span!("sms.send", otel.kind = "producer"));
        send.in_scope(|| drop(telemetry::nested(|| info_span!("carrier.request", otel.kind = "client"))));
        let report = http_span("/v1/status/{connector}");
        report.in_scope(|| drop(telemetry::resume(reply.as_deref(), || info_span!("sms.delivery_report"))));
    }
    let log = || tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(EnvFilter::new("info"));
    let off = tracing_subscriber::registry().with(log());
    tracing::subscriber::with_default(off, || {
        c.bench_function("tracing_per_keyword_message/off", |b| b.iter(one_message));
    });
    let export = telemetry::TraceExport::start("http://127.0.0.1:9", 0.01).expect("an exporter");
    let exporting = tracing_subscriber::registry().with(log()).with(export.layer().with_filter(EnvFilter::new("info")));
    tracing::subscriber::with_default(exporting, || {
        c.bench_function("tracing_per_keyword_message/exporting_1_percent", |b| b.iter(one_message));
    });
}

criterion_group!(benches, encoding, routing, signature, invocation, metrics_per_message, tracing_per_message);
criterion_main!(benches);
