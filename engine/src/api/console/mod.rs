//! The web console at `/console`: server-rendered HTML pages, embedded in
//! the binary, for tenants (conversations, messages, plugins, dead letters,
//! usage) and for the operator (tenants, connectors, queues).
//!
//! Every page is a client of the JSON API: a handler calls the API
//! in-process ([`Console::call`]) as the signed-in session (the API's
//! extractors honour [`crate::api::auth::ConsoleAuthority`]), then renders
//! the answer with a template. The console can do nothing the API would
//! refuse the same credential, and tenant isolation is the API's own.
//!
//! Pages work without JavaScript (plain links and forms, post/redirect/
//! get). One small script makes pages marked live follow changes: it
//! listens to `/console/live` (server-sent events from the pipeline's
//! notifications, filtered to the session's tenant) and swaps in the
//! page's fresh live regions. Why no front-end framework: see
//! ARCHITECTURE.md.

mod config_form;
mod live;
mod operator;
mod pages;
mod session;

use super::Context;
use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use session::Session;
use std::sync::Arc;
use tower::ServiceExt;

/// What the console needs: the engine (sessions, notifications), the API
/// it calls, its templates, and a bound on live streams.
pub struct Console {
    ctx: Arc<Context>,
    api: Router,
    templates: minijinja::Environment<'static>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// The templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("conversations.html", include_str!("templates/conversations.html")),
    ("conversation.html", include_str!("templates/conversation.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("plugin.html", include_str!("templates/plugin.html")),
    ("dead_letters.html", include_str!("templates/dead_letters.html")),
    ("account.html", include_str!("templates/account.html")),
    ("operator.html", include_str!("templates/operator.html")),
];

/// Static files: (name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
];

/// What every page's layout shows: its title, which navigation entry is
/// current, who is signed in and the CSRF token its forms carry.
#[derive(Serialize)]
pub struct Page {
    title: String,
    nav: &'static str,
    tenant: Option<String>,
    operator: bool,
    csrf: String,
    /// Whether the page follows changes (see `assets/console.js`).
    live: bool,
}

impl Page {
    pub fn anonymous(title: &str) -> Page {
        Page { title: title.to_string(), nav: "", tenant: None, operator: false, csrf: String::new(), live: false }
    }

    pub fn of(session: &Session, nav: &'static str, title: impl Into<String>) -> Page {
        let (tenant, operator) = match &session.role {
            session::Role::Tenant { name, .. } => (Some(name.clone()), false),
            session::Role::Operator => (None, true),
        };
        Page { title: title.into(), nav, tenant, operator, csrf: session.csrf.clone(), live: false }
    }

    pub fn live(mut self) -> Page {
        self.live = true;
        self
    }
}

/// An API call that did not succeed: its status and error body.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

/// Largest API answer a page reads.
const ANSWER_BYTES: usize = 16 << 20;

impl Console {
    fn new(ctx: Arc<Context>, api: Router) -> Console {
        let mut templates = minijinja::Environment::new();
        templates.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        templates.add_filter("short_time", |t: String| t.get(..19).unwrap_or(&t).replace('T', " "));
        let streams = Arc::new(tokio::sync::Semaphore::new(ctx.engine.limits.console_streams));
        Console { ctx, api, templates, streams }
    }

    /// Calls the API as `session`: `body` is sent as JSON.
    pub async fn call(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .map_err(|e| Failure { status: StatusCode::BAD_REQUEST, message: e.to_string(), field: None })?;
        request.extensions_mut().insert(session.authority.clone());
        let response = self.api.clone().oneshot(request).await.expect("a router never fails");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_BYTES).await.map_err(|_| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: "the answer was too large to show".into(),
            field: None,
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(Failure {
            status,
            message: error["message"].as_str().unwrap_or("the request failed").to_string(),
            field: error["field"].as_str().map(str::to_string),
        })
    }

    pub async fn get(&self, session: &Session, uri: &str) -> Result<serde_json::Value, Failure> {
        self.call(session, Method::GET, uri, None).await
    }

    pub fn render(&self, template: &str, page: Page, data: minijinja::Value) -> Response {
        self.render_status(StatusCode::OK, template, page, data)
    }

    pub fn render_status(&self, status: StatusCode, template: &str, page: Page, data: minijinja::Value) -> Response {
        let rendered =
            self.templates.get_template(template).and_then(|t| t.render(minijinja::context! { page => page, ..data }));
        match rendered {
            Ok(html) => {
                let mut response = (status, Html(html)).into_response();
                let headers = response.headers_mut();
                // Pages carry per-tenant data: never cached, never framed.
                headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
                headers.insert(header::X_FRAME_OPTIONS, "DENY".parse().expect("a header value"));
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
                        .parse()
                        .expect("a header value"),
                );
                response
            }
            Err(e) => {
                tracing::error!(error = %e, template, "a console page could not be rendered");
                (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>This page could not be shown</h1>")).into_response()
            }
        }
    }

    /// A page that only says what went wrong.
    pub fn failure(&self, status: StatusCode, message: &str) -> Response {
        self.render_status(status, "error.html", Page::anonymous("Error"), minijinja::context! { message })
    }

    /// An API call failed while showing a page for `session`.
    pub fn failed(&self, session: &Session, failure: Failure) -> Response {
        let page = Page::of(session, "", "Error");
        self.render_status(failure.status, "error.html", page, minijinja::context! { message => failure.message })
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// The console's routes; `api` is the JSON API the pages call.
pub fn routes(ctx: &Arc<Context>, api: Router) -> Router<Arc<Context>> {
    let console = Arc::new(Console::new(ctx.clone(), api));
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/assets/{name}", get(asset))
        .route("/console/live", get(live::stream))
        .route("/console/conversations", get(pages::conversations))
        .route("/console/conversations/{number}", get(pages::conversation))
        .route("/console/messages", get(pages::messages))
        .route("/console/messages/{id}", get(pages::message))
        .route("/console/plugins", get(pages::plugins))
        .route("/console/plugins/{name}", get(pages::plugin))
        .route("/console/plugins/{name}/{action}", post(pages::plugin_action))
        .route("/console/dead-letters", get(pages::dead_letters))
        .route("/console/dead-letters/{plugin}/{id}/retry", post(pages::retry))
        .route("/console/account", get(pages::account))
        .route("/console/operator", get(operator::overview))
        .layer(Extension(console))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        let mut env = minijinja::Environment::new();
        for (name, source) in super::TEMPLATES {
            env.add_template(name, source).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
