//! Operating the engine: `GET /metrics` after real traffic, read with a
//! Prometheus text parser, who may read it, and the Grafana dashboard
//! that uses it.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use serde_json::json;
use switchboard::secrets::Secret;

const ADMIN_TOKEN: &str = "admin-token-for-metrics";

/// Scrapes `/metrics` through the router with `token` (if any).
async fn scrape_with(h: &Harness, token: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::get("/metrics");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (status, headers, body) = raw_with_headers(&h.app, req.body(Body::empty()).unwrap()).await;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = match body {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    (status, content_type, text)
}

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

async fn scrape(h: &Harness) -> (String, Exposition) {
    let (status, content_type, text) = scrape_with(h, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("the exposition parses: {e:?}\n{text}"));
    (text, parsed)
}

/// The value of the one sample of `family` whose labels include every pair
/// of `labels` (0 when there is none: a counter never moved); a
/// histogram's is its count.
fn value(m: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    histogram(m, family, labels).map_or_else(|| single(m, family, labels), |(count, _, _)| count)
}

fn matching<'a>(
    m: &'a Exposition,
    family: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a openmetrics_parser::Sample<PrometheusValue>> {
    let Some(f) = m.families.get(family) else { return Vec::new() };
    let found: Vec<_> = f
        .iter_samples()
        .filter(|s| {
            let set = s.get_labelset().expect("a sample's labels");
            labels.iter().all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{family} {labels:?} matches {} samples", found.len());
    found
}

fn single(m: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    match matching(m, family, labels).first().map(|s| &s.value) {
        None => 0.0,
        Some(PrometheusValue::Counter(c)) => c.value.as_f64(),
        Some(PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n)) => n.as_f64(),
        Some(other) => panic!("{family} is not a single value: {other:?}"),
    }
}

/// A histogram's count, sum and bucket counts.
fn histogram(m: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<(f64, f64, Vec<f64>)> {
    match &matching(m, family, labels).first()?.value {
        PrometheusValue::Histogram(h) => Some((
            h.count.unwrap_or(0) as f64,
            h.sum.as_ref().map_or(0.0, |s| s.as_f64()),
            h.buckets.iter().map(|b| b.count.as_f64()).collect(),
        )),
        _ => None,
    }
}

fn with_admin(s: &mut switchboard::app::Settings) {
    s.admin_token = Some(Secret::new(ADMIN_TOKEN.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_one_message_through_the_engine() {
    let h = harness().plugins(&["keyword-reply"]).settings(with_admin).start().await;
    let (_, before) = scrape(&h).await;
    assert_eq!(value(&before, "switchboard_inbound_messages_total", &[]), 0.0);

    // An inbound keyword; the plugin's reply goes out and is delivered.
    let mut watch = h.watch();
    let inbound = h.inbound(CUSTOMER, "HOURS").await;
    h.sent(1).await;
    let replies = h.replies(&inbound).await;
    assert_eq!(replies.len(), 1);
    let reply = replies[0]["id"].as_str().unwrap().to_string();
    watch.message_status(&reply, "delivered").await;
    // A message for later waits in the outbox.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    h.post(
        "/v1/messages",
        json!({"to": CUSTOMER, "message": "Tomorrow", "schedule_time": later.to_rfc3339()}),
        StatusCode::ACCEPTED,
    )
    .await;

    let (text, m) = scrape(&h).await;
    let sim = [("connector", "simulator")];
    assert_eq!(
        value(&m, "switchboard_inbound_messages_total", &[("connector", "generic"), ("outcome", "accepted")]),
        1.0
    );
    assert_eq!(value(&m, "switchboard_plugin_invocations_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(value(&m, "switchboard_plugin_invocation_duration_seconds", &[]), 1.0);
    let (fuel_count, fuel_sum, _) = histogram(&m, "switchboard_plugin_invocation_fuel", &[]).unwrap();
    assert_eq!(fuel_count, 1.0);
    assert!(fuel_sum > 0.0, "fuel is measured");
    assert_eq!(
        value(&m, "switchboard_outbound_messages_total", &[("connector", "simulator"), ("status", "sent")]),
        1.0
    );
    assert_eq!(value(&m, "switchboard_outbound_segments_total", &sim), 1.0);
    assert_eq!(value(&m, "switchboard_carrier_requests_total", &[("connector", "simulator"), ("result", "ok")]), 1.0);
    assert_eq!(value(&m, "switchboard_carrier_request_duration_seconds", &sim), 1.0);
    assert_eq!(
        value(&m, "switchboard_delivery_reports_total", &[("connector", "simulator"), ("status", "delivered")]),
        1.0
    );
    assert_eq!(value(&m, "switchboard_delivery_report_lag_seconds", &sim), 1.0);
    let (cycles, rows, _) = histogram(&m, "switchboard_write_cycle_rows", &[]).unwrap();
    assert!(cycles >= 3.0, "accept, completion, answer, report: {cycles} cycles");
    assert!(rows >= 4.0, "{rows} rows");
    assert_eq!(
        value(
            &m,
            "switchboard_http_requests_total",
            &[("method", "POST"), ("route", "/v1/inbound/{connector}"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "switchboard_http_requests_total",
            &[("method", "POST"), ("route", "/v1/messages"), ("status", "202")]
        ),
        1.0
    );
    // Read at scrape time: the scheduled message waits, not yet due.
    assert_eq!(value(&m, "switchboard_queue_depth", &[("queue", "outbox")]), 1.0);
    assert_eq!(value(&m, "switchboard_queue_oldest_age_seconds", &[("queue", "outbox")]), 0.0);
    assert_eq!(value(&m, "switchboard_queue_depth", &[("queue", "events")]), 0.0);
    assert_eq!(value(&m, "switchboard_connector_in_flight", &sim), 0.0);
    assert_eq!(value(&m, "switchboard_connector_circuit_open", &sim), 0.0);
    // Histograms have their buckets, cumulative up to +Inf.
    let (_, _, buckets) = histogram(&m, "switchboard_plugin_invocation_duration_seconds", &[]).unwrap();
    assert!(buckets.len() > 10 && buckets.last() == Some(&1.0), "{buckets:?}");
    // No phone number, body or tenant id is a label.
    for secret in [CUSTOMER, NUMBER, "HOURS", h.tenant.as_str()] {
        assert!(!text.contains(secret), "{secret} appears in /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_take_the_admin_token_unless_opened() {
    let h = harness().plugins(&[]).settings(with_admin).start().await;
    let (status, _, body) = scrape_with(&h, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("\"code\""), "the error form: {body}");
    let (status, _, _) = scrape_with(&h, Some(&h.key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a tenant's key is not the operator's");
    let (status, _, _) = scrape_with(&h, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Without an admin token, /metrics is closed.
    let closed = harness().plugins(&[]).start().await;
    let (status, _, _) = scrape_with(&closed, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Opened by the operator: anyone on the listener may scrape.
    let open = harness().plugins(&[]).settings(|s| s.metrics.open = true).start().await;
    let (status, _, text) = scrape_with(&open, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE switchboard_write_cycle_rows histogram"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_labels_appear_only_when_the_operator_turns_them_on() {
    let h = harness()
        .plugins(&[])
        .settings(|s| {
            with_admin(s);
            s.metrics.tenant_labels = true;
        })
        .start()
        .await;
    let mut watch = h.watch();
    let sent = h.post("/v1/messages", json!({"to": CUSTOMER, "message": "Hi"}), StatusCode::ACCEPTED).await;
    watch.message_status(sent["id"].as_str().unwrap(), "sent").await;
    let (_, m) = scrape(&h).await;
    assert_eq!(
        value(
            &m,
            "switchboard_outbound_messages_total",
            &[("connector", "simulator"), ("status", "sent"), ("tenant", h.tenant.as_str())]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_and_the_readme_name_only_metrics_the_engine_exposes() {
    let h = harness().plugins(&[]).settings(with_admin).start().await;
    let families = h.app.engine.metrics.families();
    // Families with samples declare their type under the same names.
    let (text, _) = scrape(&h).await;
    for declared in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()) {
        assert!(families.iter().any(|f| f == declared), "{declared} is exposed but not listed");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("deploy/grafana/switchboard.json")).unwrap())
            .unwrap();
    let mut used = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (start, _) in expr.match_indices("switchboard_") {
                let name: String =
                    expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                used.push(name);
            }
        }
    }
    assert!(used.len() > 15, "{used:?}");
    for name in &used {
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(families.iter().any(|f| f == family), "the dashboard uses {name}, which the engine does not expose");
    }
    // The README's table lists every family (without the prefix).
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    for family in families {
        let short = family.strip_prefix("switchboard_").unwrap();
        assert!(readme.contains(&format!("`{short}`")), "README.md does not describe {family}");
    }
}
