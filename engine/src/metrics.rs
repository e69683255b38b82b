//! What the engine counts and measures, for `GET /metrics` (Prometheus'
//! text format, through `prometheus-client`).
//!
//! Every metric is declared here, in [`Metrics::new`]'s one table; the
//! pipeline and the API record into them through the methods below, and
//! the API sets the gauges read at scrape time (queue depths, connector
//! gates) just before it encodes. One registry per engine, no global
//! recorder: two engines in one process (the tests) keep their own figures.
//!
//! Labels stay bounded: connectors are what the operator configured,
//! routes are templates (never raw paths, which can carry numbers),
//! outcomes and statuses are fixed sets. A tenant id is a label only where
//! the operator turns it on (`Settings::metrics.tenant_labels`), and then
//! only on the message counters.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets, 0.5 ms to ~16 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Delivery-report lag buckets, 0.1 s to ~1.8 h.
fn lag_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    /// Every family's exposed name, in registration order.
    families: Vec<String>,
    tenant_labels: bool,
    inbound: Family<Labels, Counter>,
    outbound: Family<Labels, Counter>,
    segments: Family<Labels, Counter>,
    invocations: Family<Labels, Counter>,
    invocation_seconds: Histogram,
    invocation_fuel: Histogram,
    write_cycle_rows: Histogram,
    write_cycle_seconds: Histogram,
    queue_depth: Family<Labels, Gauge>,
    queue_oldest: Family<Labels, FloatGauge>,
    connector_in_flight: Family<Labels, Gauge>,
    connector_circuit_open: Family<Labels, Gauge>,
    connector_rate: Family<Labels, Gauge>,
    carrier_requests: Family<Labels, Counter>,
    carrier_seconds: Histograms,
    webhook_attempts: Family<Labels, Counter>,
    reports: Family<Labels, Counter>,
    dlr_lag: Histograms,
    http_requests: Family<Labels, Counter>,
    http_seconds: Histograms,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What one invocation came to, for its counter.
#[derive(Debug, Clone, Copy)]
pub struct InvocationSample<'a> {
    /// `ok`, `error` (the plugin's own), `trap`, `fuel_exhausted`, `memory_exceeded`, `timeout`, `instantiate_failed`, or `not_run`.
    pub outcome: &'a str,
    pub duration: Duration,
    pub fuel: u64,
}

/// The queues whose depth and oldest age are exposed.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDepth {
    pub depth: i64,
    /// How long the oldest due item has waited, in seconds (0 when none is due).
    pub oldest_seconds: f64,
}

/// A connector's gate, read at scrape time.
#[derive(Debug, Clone)]
pub struct GateReading {
    pub connector: String,
    pub in_flight: i64,
    pub circuit_open: bool,
    /// Messages per second it is held to (0: no rate limit).
    pub rate_per_second: i64,
}

impl Metrics {
    /// `tenant_labels`: whether message counters carry the tenant id.
    pub fn new(tenant_labels: bool) -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let inbound = Family::default();
        let outbound = Family::default();
        let segments = Family::default();
        let invocations = Family::default();
        let invocation_seconds = seconds();
        let invocation_fuel = Histogram::new(exponential_buckets(1_000.0, 4.0, 12));
        let write_cycle_rows = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let write_cycle_seconds = seconds();
        let queue_depth = Family::default();
        let queue_oldest = Family::default();
        let connector_in_flight = Family::default();
        let connector_circuit_open = Family::default();
        let connector_rate = Family::default();
        let carrier_requests = Family::default();
        let carrier_seconds: Histograms = Family::new_with_constructor(seconds);
        let webhook_attempts = Family::default();
        let reports = Family::default();
        let dlr_lag: Histograms = Family::new_with_constructor(lag_seconds);
        let http_requests = Family::default();
        let http_seconds: Histograms = Family::new_with_constructor(seconds);
        let mut families = Vec::new();
        let mut r = Registrar { registry: &mut registry, families: &mut families };
        r.register(
            "inbound_messages",
            "Inbound messages by connector and outcome (accepted, duplicate)",
            inbound.clone(),
        );
        r.register(
            "outbound_messages",
            "Outbound messages by connector and status reached (sent, failed, retry, delivered, undelivered, ...)",
            outbound.clone(),
        );
        r.register("outbound_segments", "Segments handed to carriers, by connector", segments.clone());
        r.register("plugin_invocations", "Plugin invocations by outcome", invocations.clone());
        r.register_with_unit(
            "plugin_invocation_duration",
            "Time one plugin invocation ran",
            Unit::Seconds,
            invocation_seconds.clone(),
        );
        r.register("plugin_invocation_fuel", "Fuel one plugin invocation used", invocation_fuel.clone());
        r.register(
            "write_cycle_rows",
            "Rows one write cycle committed (group-commit batch size)",
            write_cycle_rows.clone(),
        );
        r.register_with_unit(
            "write_cycle_duration",
            "Time one write cycle took to commit",
            Unit::Seconds,
            write_cycle_seconds.clone(),
        );
        r.register("queue_depth", "Work waiting, by queue (events, outbox, timers, webhooks)", queue_depth.clone());
        r.register_with_unit(
            "queue_oldest_age",
            "How long the oldest due item of each queue has waited",
            Unit::Seconds,
            queue_oldest.clone(),
        );
        r.register("connector_in_flight", "Carrier requests in flight, by connector", connector_in_flight.clone());
        r.register(
            "connector_circuit_open",
            "1 while a connector's circuit is open (or half open), else 0",
            connector_circuit_open.clone(),
        );
        r.register(
            "connector_rate_limit",
            "Messages per second a connector is held to (0: unlimited)",
            connector_rate.clone(),
        );
        r.register(
            "carrier_requests",
            "Carrier send requests by connector and result (ok, refused, throttled, error)",
            carrier_requests.clone(),
        );
        r.register_with_unit(
            "carrier_request_duration",
            "Time a carrier took to answer a send",
            Unit::Seconds,
            carrier_seconds.clone(),
        );
        r.register(
            "webhook_attempts",
            "Status webhook delivery attempts by result (delivered, retry, failed)",
            webhook_attempts.clone(),
        );
        r.register(
            "delivery_reports",
            "Delivery reports received from carriers, by connector and status (repeats included)",
            reports.clone(),
        );
        r.register_with_unit(
            "delivery_report_lag",
            "Time from a message's sending to its final delivery report, by connector",
            Unit::Seconds,
            dlr_lag.clone(),
        );
        r.register("http_requests", "HTTP requests by method, route and status", http_requests.clone());
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            http_seconds.clone(),
        );
        Metrics {
            registry,
            families,
            tenant_labels,
            inbound,
            outbound,
            segments,
            invocations,
            invocation_seconds,
            invocation_fuel,
            write_cycle_rows,
            write_cycle_seconds,
            queue_depth,
            queue_oldest,
            connector_in_flight,
            connector_circuit_open,
            connector_rate,
            carrier_requests,
            carrier_seconds,
            webhook_attempts,
            reports,
            dlr_lag,
            http_requests,
            http_seconds,
        }
    }

    fn with_tenant(&self, mut labels: Labels, tenant_id: &str) -> Labels {
        if self.tenant_labels {
            labels.push(("tenant", tenant_id.to_string()));
        }
        labels
    }

    /// An inbound message: `accepted` (stored) or `duplicate` (a carrier's retry).
    pub fn inbound(&self, connector: &str, outcome: &'static str, tenant_id: &str) {
        let labels = self.with_tenant(vec![("connector", connector.into()), ("outcome", outcome.into())], tenant_id);
        self.inbound.get_or_create(&labels).inc();
    }

    /// An outbound message reached `status`.
    pub fn outbound(&self, connector: &str, status: &str, tenant_id: &str) {
        let labels = self.with_tenant(vec![("connector", connector.into()), ("status", status.into())], tenant_id);
        self.outbound.get_or_create(&labels).inc();
    }

    pub fn segments(&self, connector: &str, segments: u64) {
        self.segments.get_or_create(&vec![("connector", connector.into())]).inc_by(segments);
    }

    pub fn invocation(&self, sample: InvocationSample<'_>) {
        self.invocations.get_or_create(&vec![("outcome", sample.outcome.into())]).inc();
        if sample.outcome != "not_run" {
            self.invocation_seconds.observe(sample.duration.as_secs_f64());
            self.invocation_fuel.observe(sample.fuel as f64);
        }
    }

    pub fn write_cycle(&self, rows: usize, took: Duration) {
        self.write_cycle_rows.observe(rows as f64);
        self.write_cycle_seconds.observe(took.as_secs_f64());
    }

    /// A carrier send request: `ok`, `refused`, `throttled` or `error`.
    pub fn carrier_request(&self, connector: &str, result: &'static str, took: Duration) {
        self.carrier_requests.get_or_create(&vec![("connector", connector.into()), ("result", result.into())]).inc();
        self.carrier_seconds.get_or_create(&vec![("connector", connector.into())]).observe(took.as_secs_f64());
    }

    /// A status webhook attempt: `delivered`, `retry` or `failed` (given up).
    pub fn webhook_attempt(&self, result: &'static str) {
        self.webhook_attempts.get_or_create(&vec![("result", result.into())]).inc();
    }

    /// A carrier's delivery report for a message, as received.
    pub fn delivery_report(&self, connector: &str, status: &str) {
        self.reports.get_or_create(&vec![("connector", connector.into()), ("status", status.into())]).inc();
    }

    /// A final delivery report arrived `lag` after the message was sent.
    pub fn delivery_lag(&self, connector: &str, lag: Duration) {
        self.dlr_lag.get_or_create(&vec![("connector", connector.into())]).observe(lag.as_secs_f64());
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = vec![("method", method.into()), ("route", route.into()), ("status", status.to_string())];
        self.http_requests.get_or_create(&labels).inc();
        self.http_seconds.get_or_create(&vec![("route", route.into())]).observe(took.as_secs_f64());
    }

    /// Sets a queue's gauges (read at scrape time).
    pub fn set_queue(&self, queue: &'static str, reading: QueueDepth) {
        let labels = vec![("queue", queue.to_string())];
        self.queue_depth.get_or_create(&labels).set(reading.depth);
        self.queue_oldest.get_or_create(&labels).set(reading.oldest_seconds);
    }

    /// Sets a connector gate's gauges (read at scrape time).
    pub fn set_gate(&self, reading: &GateReading) {
        let labels = vec![("connector", reading.connector.clone())];
        self.connector_in_flight.get_or_create(&labels).set(reading.in_flight);
        self.connector_circuit_open.get_or_create(&labels).set(i64::from(reading.circuit_open));
        self.connector_rate.get_or_create(&labels).set(reading.rate_per_second);
    }

    /// The name of every family exposed (`switchboard_…_total` for
    /// counters), whether or not it has samples yet.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// The exposition, in Prometheus' text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Registers families and notes the names they are exposed under.
struct Registrar<'a> {
    registry: &'a mut Registry,
    families: &'a mut Vec<String>,
}

impl Registrar<'_> {
    fn note(&mut self, name: &str, unit: Option<&str>, counter: bool) {
        let unit = unit.map(|u| format!("_{u}")).unwrap_or_default();
        let total = if counter { "_total" } else { "" };
        self.families.push(format!("switchboard_{name}{unit}{total}"));
    }

    fn register<M: prometheus_client::registry::Metric>(&mut self, name: &str, help: &str, metric: M) {
        let counter = matches!(metric.metric_type(), MetricType::Counter);
        self.note(name, None, counter);
        self.registry.register(name, help, metric);
    }

    fn register_with_unit<M: prometheus_client::registry::Metric>(
        &mut self,
        name: &str,
        help: &str,
        unit: Unit,
        metric: M,
    ) {
        let counter = matches!(metric.metric_type(), MetricType::Counter);
        self.note(name, Some(unit.as_str()), counter);
        self.registry.register_with_unit(name, help, unit, metric);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_labels_only_when_turned_on() {
        let off = Metrics::new(false);
        off.outbound("twilio", "sent", "t_123");
        assert!(!off.encode().contains("t_123"));
        let on = Metrics::new(true);
        on.outbound("twilio", "sent", "t_123");
        let text = on.encode();
        assert!(
            text.contains(r#"switchboard_outbound_messages_total{connector="twilio",status="sent",tenant="t_123"} 1"#),
            "{text}"
        );
    }
}
