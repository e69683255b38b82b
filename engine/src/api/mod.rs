//! The HTTP API (axum): [`router`] builds it (tests drive it with
//! `oneshot`, no port), [`run`] serves it on a bound listener until the
//! shutdown future resolves.
//!
//! Every route is registered through `utoipa-axum`'s router from its
//! `#[utoipa::path]` description, so `GET /openapi.json` cannot drift from
//! what is served.

mod account;
mod admin;
mod auth;
mod carriers;
mod compliance;
mod console;
mod contract;
mod error;
mod events;
mod json;
mod messages;
mod metrics;
mod numbers;
mod objects_only;
mod params;
mod plugin_lifecycle;
mod plugin_state;
mod plugins;
mod rate_limit;
mod replays;
mod routes;
mod sandbox;
mod send;
mod templates;
mod twilio;

pub use error::ApiError;
pub use rate_limit::RateLimits;

/// What the API's handlers use: the engine's context (to read and to
/// accept work), the control operations (to change configuration), and
/// the API's own state.
pub struct Context {
    pub engine: Arc<crate::pipeline::Context>,
    pub control: Arc<crate::control::Control>,
    /// Per-key request limits and failed-authentication counts.
    pub rate_limits: RateLimits,
    /// The admin API's token; without one the admin API is closed.
    pub admin_token: Option<crate::secrets::Secret>,
    /// The URL carriers use to reach this engine (see `Settings`).
    pub public_base_url: Option<String>,
    /// Each configured connector's kind (`twilio`, `smpp`, …) by name.
    pub connector_kinds: std::collections::HashMap<String, &'static str>,
    /// `/metrics` without the admin token (see `MetricsSettings::open`).
    pub metrics_open: bool,
    /// Cancelled when [`run`] begins to shut down: what would keep a
    /// connection open forever (the console's live streams) ends with it.
    pub closing: tokio_util::sync::CancellationToken,
}

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "SMS gateway and WebAssembly-scriptable SMS automation engine."),
    modifiers(&Security),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "messages", description = "Send, schedule, list and cancel SMS"),
        (name = "numbers", description = "Number lookup, the tenant's numbers and sender IDs"),
        (name = "templates", description = "Message templates"),
        (name = "account", description = "Balance, usage, ledger, webhooks"),
        (name = "keys", description = "API keys"),
        (name = "plugins", description = "Deploying plugins, their versions, events, logs and invocations"),
        (name = "compliance", description = "Opt-outs (consent records), STOP/START/HELP, quiet hours"),
        (name = "routes", description = "Outbound routes over carrier connectors"),
        (name = "inbound", description = "Carrier webhooks"),
        (name = "admin", description = "Operator API"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant API key; `X-API-Key: <key>` works too"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The tenant API (rate limited per key).
fn tenant_api(ctx: &Arc<Context>) -> OpenApiRouter<Arc<Context>> {
    // Components are bigger than any other request body.
    let uploads = OpenApiRouter::new()
        .routes(routes!(plugins::list, plugin_lifecycle::deploy))
        .layer(DefaultBodyLimit::max(ctx.engine.limits.plugin_upload_bytes));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(messages::list, send::send))
        .routes(routes!(send::send_batch))
        .routes(routes!(messages::get, send::cancel))
        .routes(routes!(send::webhooks))
        .routes(routes!(numbers::list, numbers::register))
        .routes(routes!(numbers::lookup, numbers::update))
        .routes(routes!(numbers::verify))
        .routes(routes!(numbers::list_sender_ids, numbers::add_sender_id))
        .routes(routes!(numbers::delete_sender_id))
        .routes(routes!(sandbox::inbound))
        .routes(routes!(templates::list, templates::put))
        .routes(routes!(templates::get, templates::delete))
        .routes(routes!(account::get))
        .routes(routes!(account::ledger))
        .routes(routes!(account::get_webhook, account::put_webhook))
        .routes(routes!(account::get_region, account::put_region))
        .routes(routes!(account::rotate_webhook_secret))
        .routes(routes!(account::list_keys, account::create_key))
        .routes(routes!(account::revoke_key))
        .routes(routes!(routes::get, routes::put))
        .routes(routes!(events::post))
        .routes(routes!(events::get))
        .routes(routes!(events::list))
        .routes(routes!(events::retry))
        .routes(routes!(plugin_state::list))
        .routes(routes!(plugin_state::get))
        .routes(routes!(plugin_state::timers))
        .routes(routes!(plugins::get))
        .routes(routes!(plugins::logs))
        .routes(routes!(plugins::invocations))
        .routes(routes!(plugin_lifecycle::rollback))
        .routes(routes!(plugin_lifecycle::disable))
        .routes(routes!(plugin_lifecycle::enable))
        .routes(routes!(plugin_lifecycle::put_config))
        .routes(routes!(plugin_lifecycle::promote_canary))
        .routes(routes!(plugin_lifecycle::rollback_canary))
        .routes(routes!(replays::start, replays::list))
        .routes(routes!(replays::get))
        .routes(routes!(compliance::list, compliance::import))
        .routes(routes!(compliance::get, compliance::put))
}

/// The operator's API (one rate limit for all callers).
fn admin_api() -> OpenApiRouter<Arc<Context>> {
    OpenApiRouter::new()
        .routes(routes!(admin::credit))
        .routes(routes!(admin::create_tenant, admin::list_tenants))
        .routes(routes!(admin::get_tenant))
        .routes(routes!(admin::disable_tenant))
        .routes(routes!(admin::enable_tenant))
        .routes(routes!(admin::put_limits))
        .routes(routes!(admin::create_key))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::add_number))
        .routes(routes!(admin::add_sender_id))
        .routes(routes!(admin::approve_sender_id))
        .routes(routes!(admin::reject_sender_id))
        .routes(routes!(admin::connectors))
        .routes(routes!(admin::queues))
        .routes(routes!(admin::audit))
}

/// The routes and the OpenAPI document describing them, completed with
/// what the layers around the handlers answer (see `contract`).
pub fn routes_and_spec(ctx: &Arc<Context>) -> (Router<Arc<Context>>, serde_json::Value) {
    let (routes, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenant_api(ctx).layer(axum::middleware::from_fn_with_state(ctx.clone(), rate_limit::limit)))
        .routes(routes!(carriers::inbound_post, carriers::inbound_get))
        .routes(routes!(carriers::status_post, carriers::status_get))
        .merge(admin_api().layer(axum::middleware::from_fn_with_state(ctx.clone(), rate_limit::limit_admin)))
        .split_for_parts();
    let mut spec = serde_json::to_value(spec).expect("the OpenAPI document serializes");
    contract::complete(&mut spec, &ctx.engine.limits);
    (routes, spec)
}

/// A handler that panics answers 500 in our error form (the panic is a
/// bug: logged, never shown).
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::internal("a request handler panicked").into_response()
}

/// What makes every answer, the framework's included, our JSON error form:
/// panics become 500, the body limit 413, and the extractors' plain-text
/// rejections (405, 415, unreadable queries...) are rewritten by
/// `error::json_errors`.
fn json_error_layers<S: Clone + Send + Sync + 'static>(routes: Router<S>, body_limit: usize) -> Router<S> {
    routes
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(error::json_errors))
}

pub fn router(ctx: Arc<Context>) -> Router {
    let body_limit = ctx.engine.limits.http_body_bytes;
    let (routes, spec) = routes_and_spec(&ctx);
    let spec = Arc::new(spec);
    let routes = routes
        .merge(twilio::routes(&ctx))
        .route("/openapi.json", get(move || async move { axum::Json(spec.as_ref().clone()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::scrape));
    let not_found = || async { ApiError::not_found("NOT_FOUND", "no such endpoint") };
    // The console's pages call the API in-process, past the layers below
    // (their own request is the one counted, traced and limited).
    let api = json_error_layers(routes.clone().fallback(not_found), body_limit).with_state(ctx.clone());
    let routes = routes.merge(console::routes(&ctx, api)).fallback(not_found);
    json_error_layers(routes, body_limit)
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), rate_limit::limit_failures))
        // Spans name the route template, never the raw path or query, which
        // can carry phone numbers.
        // A caller's `traceparent` makes the request part of its trace.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let route =
                        req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
                    let span = tracing::info_span!(
                        "http",
                        otel.name = format!("{} {route}", req.method()),
                        otel.kind = "server",
                        http.request.method = %req.method(),
                        http.route = route,
                        http.response.status_code = tracing::field::Empty,
                    );
                    // Carriers' callbacks are not API calls: an outsider's
                    // header does not pick their traces or their sampling.
                    if !route.starts_with("/v1/inbound/") && !route.starts_with("/v1/status/") {
                        crate::telemetry::follow_request(&span, req.headers());
                    }
                    span
                })
                .on_response(|res: &axum::http::Response<_>, _: std::time::Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", res.status().as_u16());
                }),
        )
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), metrics::count_requests))
        .with_state(ctx)
}

/// `/metrics` alone, for a listener of its own (`[metrics] listen`).
pub fn metrics_router(ctx: Arc<Context>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such endpoint") });
    json_error_layers(routes, 1024).with_state(ctx)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn run(
    ctx: Arc<Context>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = ctx.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.cancel();
    };
    // The peer's address counts failed authentications (see `rate_limit`).
    let service = router(ctx).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    async fn answer(routes: Router, req: Request<Body>) -> (StatusCode, String, serde_json::Value) {
        let response = json_error_layers(routes, 16).oneshot(req).await.expect("the router answers");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("a body");
        (status, content_type, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_form_without_the_panic() {
        async fn boom() -> &'static str {
            panic!("secret detail +15551234567")
        }
        let routes = Router::new().route("/boom", get(boom));
        let (status, content_type, body) = answer(routes, Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, "application/json");
        assert_eq!(body["error"]["code"], "INTERNAL", "{body}");
        assert!(!body.to_string().contains("secret"), "the panic's message is not shown: {body}");
    }

    #[tokio::test]
    async fn the_frameworks_rejections_answer_in_the_error_form() {
        let routes = || Router::new().route("/echo", axum::routing::post(|body: String| async move { body }));
        let (status, _, body) =
            answer(routes(), Request::post("/echo").body(Body::from("x".repeat(17))).unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE"))
        );
        let (status, _, body) = answer(routes(), Request::get("/echo").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("METHOD_NOT_ALLOWED"))
        );
    }
}
