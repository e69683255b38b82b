//! `GET /metrics`: the engine's figures in Prometheus' text format.
//!
//! Counters and histograms are recorded as work happens (see
//! [`crate::metrics`]); queue depths and connector gates are read here, at
//! scrape time. The admin token is required unless the operator opened the
//! endpoint (`[metrics] open = true`).

use super::Context;
use super::admin::Admin;
use crate::metrics::{GateReading, QueueDepth};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn scrape(State(ctx): State<Arc<Context>>, request: Request<axum::body::Body>) -> Response {
    if !ctx.metrics_open {
        let (mut parts, _) = request.into_parts();
        if let Err(refused) = Admin::from_request_parts(&mut parts, &ctx).await {
            return refused.into_response();
        }
    }
    let engine = &ctx.engine;
    match engine.db.queue_depths().await {
        Ok(rows) => {
            let now = engine.clock.now_ms();
            for row in rows {
                let Some(queue) = ["events", "outbox", "timers", "webhooks"].into_iter().find(|q| *q == row.queue)
                else {
                    continue;
                };
                let waited = row.earliest_due.map_or(0, |due| (now - due).max(0));
                engine
                    .metrics
                    .set_queue(queue, QueueDepth { depth: row.depth, oldest_seconds: waited as f64 / 1000.0 });
            }
        }
        // The other figures are still worth a scrape; the gauges keep their last values.
        Err(e) => tracing::warn!(error = %e, "could not read queue depths for /metrics"),
    }
    for name in engine.connectors.names() {
        let Some(registered) = engine.connectors.get(name) else { continue };
        let gate = &registered.gate;
        engine.metrics.set_gate(&GateReading {
            connector: name.to_string(),
            in_flight: gate.in_flight() as i64,
            circuit_open: !matches!(gate.state(), crate::connectors::gate::CircuitState::Closed),
            rate_per_second: gate.rate_per_second().map_or(0, i64::from),
        });
    }
    let mut response = engine.metrics.encode().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response
}

/// Records each request's method, route template and status.
pub async fn count_requests(
    State(ctx): State<Arc<Context>>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    // The template, never the raw path: paths carry numbers and ids.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    ctx.engine.metrics.http_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    response
}
