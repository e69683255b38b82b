//! The HTTP API (axum): [`router`] builds it (tests drive it with
//! `oneshot`, no port), [`run`] serves it on a bound listener until the
//! shutdown future resolves.

mod auth;
mod error;
mod events;
mod inbound;
mod json;
mod messages;
mod plugins;

pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.settings.limits.http_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/inbound/generic", post(inbound::generic))
        .route("/v1/messages", get(messages::list))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/events/{id}", get(events::get).post(events::post))
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/plugins/{name}/logs", get(plugins::logs))
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such endpoint") })
        .layer(DefaultBodyLimit::max(body_limit))
        // Spans name the route template, never the raw path or query, which
        // can carry phone numbers.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .with_state(app)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await
}
