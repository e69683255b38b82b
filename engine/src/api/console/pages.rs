//! A tenant's pages: conversations, message search and history, plugins
//! (versions, enable/disable/rollback, config, invocations, logs), dead
//! letters, usage and balance. Each reads and changes through the API.

use super::config_form;
use super::session::{Role, Session};
use super::{Console, Failure, Page};
use axum::Extension;
use axum::extract::{Path, RawForm, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde_json::json;
use std::sync::Arc;

/// Encodes a path segment or query value (`+` in numbers included).
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The tenant pages are for tenants; the operator has its own.
fn tenant_only(session: &Session) -> Result<(), Response> {
    match session.role {
        Role::Tenant { .. } => Ok(()),
        Role::Operator => Err(Redirect::to("/console/operator").into_response()),
    }
}

macro_rules! tenant {
    ($session:expr) => {
        if let Err(r) = tenant_only(&$session) {
            return r;
        }
    };
}

macro_rules! api {
    ($console:expr, $session:expr, $call:expr) => {
        match $call.await {
            Ok(v) => v,
            Err(failure) => return $console.failed(&$session, failure),
        }
    };
}

pub async fn home(session: Session) -> Redirect {
    match session.role {
        Role::Tenant { .. } => Redirect::to("/console/conversations"),
        Role::Operator => Redirect::to("/console/operator"),
    }
}

/// The other party of a message: who wrote in, or who it was sent to.
fn counterpart(m: &serde_json::Value) -> &str {
    let key = if m["direction"] == "inbound" { "from" } else { "to" };
    m[key].as_str().unwrap_or("")
}

/// The latest messages grouped by the other party's number, newest first.
pub async fn conversations(Extension(console): Extension<Arc<Console>>, session: Session) -> Response {
    tenant!(session);
    let page = api!(console, session, console.get(&session, "/v1/messages?limit=200"));
    let mut threads: Vec<serde_json::Value> = Vec::new();
    for m in page["data"].as_array().into_iter().flatten() {
        let number = counterpart(m);
        if let Some(thread) = threads.iter_mut().find(|t| t["number"] == number) {
            thread["count"] = json!(thread["count"].as_u64().unwrap_or(0) + 1);
            continue;
        }
        // Messages come newest first: the first one seen is the latest.
        threads.push(json!({ "number": number, "href": encode(number), "last": m, "count": 1 }));
    }
    let page = Page::of(&session, "conversations", "Conversations").live();
    console.render("conversations.html", page, context! { threads => Value::from_serialize(&threads) })
}

/// A number's messages either way (the API's lists for `query`, already
/// encoded, to it and from it, merged), newest first.
async fn to_and_from(
    console: &Console,
    session: &Session,
    query: &str,
    number: &str,
) -> Result<Vec<serde_json::Value>, Failure> {
    let n = encode(number);
    let to = console.get(session, &format!("/v1/messages?{query}&to={n}")).await?;
    let from = console.get(session, &format!("/v1/messages?{query}&from={n}")).await?;
    let mut all: Vec<serde_json::Value> =
        to["data"].as_array().into_iter().chain(from["data"].as_array()).flatten().cloned().collect();
    // Ids sort by time of creation.
    all.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    all.dedup_by(|a, b| a["id"] == b["id"]);
    Ok(all)
}

/// One conversation: every message to and from a number, oldest first.
pub async fn conversation(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    Path(number): Path<String>,
) -> Response {
    tenant!(session);
    let mut messages = api!(console, session, to_and_from(&console, &session, "limit=200", &number));
    messages.reverse();
    let page = Page::of(&session, "conversations", format!("Conversation with {number}")).live();
    console.render(
        "conversation.html",
        page,
        context! { number => number, messages => Value::from_serialize(&messages) },
    )
}

/// The filters the search form passes on to `GET /v1/messages`.
const SEARCH_FIELDS: &[&str] = &["text", "number", "direction", "status", "since", "until", "cursor"];

/// Message search: by text, number (either side), direction, status and time.
pub async fn messages(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Response {
    tenant!(session);
    let fields = match super::session::parse_form(query.unwrap_or_default().as_bytes()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let value =
        |name: &str| fields.iter().find(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_string());
    let mut filters: Vec<(String, String)> = Vec::new();
    for name in SEARCH_FIELDS.iter().filter(|n| **n != "number") {
        if let Some(v) = value(name) {
            // The form's datetime-local fields carry no zone: read as UTC.
            let v = if (*name == "since" || *name == "until") && v.len() == 16 { format!("{v}:00Z") } else { v };
            filters.push((name.to_string(), v));
        }
    }
    let mut query: Vec<(&str, &str)> = vec![("limit", "50")];
    query.extend(filters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let query = serde_urlencoded::to_string(query).expect("pairs of strings encode");
    let (data, next) = match value("number") {
        Some(n) => (api!(console, session, to_and_from(&console, &session, &query, &n)), None),
        None => {
            let page = api!(console, session, console.get(&session, &format!("/v1/messages?{query}")));
            let next = page["next_cursor"].as_str().map(|c| {
                let mut q: Vec<(String, String)> = filters.iter().filter(|(k, _)| k != "cursor").cloned().collect();
                q.push(("cursor".into(), c.to_string()));
                serde_urlencoded::to_string(q).expect("pairs of strings encode")
            });
            (page["data"].as_array().cloned().unwrap_or_default(), next)
        }
    };
    let form: serde_json::Map<String, serde_json::Value> =
        SEARCH_FIELDS.iter().filter_map(|n| Some((n.to_string(), json!(value(n)?)))).collect();
    console.render(
        "messages.html",
        Page::of(&session, "messages", "Messages"),
        context! {
            messages => Value::from_serialize(&data),
            next => next,
            form => Value::from_serialize(&form),
            statuses => crate::store::MessageStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        },
    )
}

/// One message: every field, its status history, trace id and webhooks.
pub async fn message(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    tenant!(session);
    let id = encode(&id);
    let message = api!(console, session, console.get(&session, &format!("/v1/messages/{id}")));
    let webhooks = api!(console, session, console.get(&session, &format!("/v1/messages/{id}/webhooks")));
    let page = Page::of(&session, "messages", "Message").live();
    console.render(
        "message.html",
        page,
        context! {
            message => Value::from_serialize(&message),
            counterpart => counterpart(&message),
            counterpart_href => encode(counterpart(&message)),
            webhooks => Value::from_serialize(&webhooks["data"]),
        },
    )
}

pub async fn plugins(Extension(console): Extension<Arc<Console>>, session: Session) -> Response {
    tenant!(session);
    let list = api!(console, session, console.get(&session, "/v1/plugins"));
    console.render(
        "plugins.html",
        Page::of(&session, "plugins", "Plugins"),
        context! { plugins => Value::from_serialize(&list["data"]) },
    )
}

/// What a plugin page shows after an action (a fixed text per action).
fn notice(query: Option<&str>) -> Option<&'static str> {
    match query? {
        "done=enable" => Some("The plugin is enabled."),
        "done=disable" => Some("The plugin is disabled: its events wait as dead letters."),
        "done=rollback" => Some("Rolled back: the next event runs the version marked active."),
        "done=config" => Some("Saved as a new version, active now."),
        "done=retry" => Some("The event is queued to run again."),
        _ => None,
    }
}

/// Renders a plugin's page, with an error and the form's values when a
/// change was refused.
async fn plugin_page(
    console: &Console,
    session: &Session,
    name: &str,
    notice: Option<&str>,
    refused: Option<(Failure, Vec<(String, String)>)>,
) -> Response {
    let n = encode(name);
    let detail = api!(console, session, console.get(session, &format!("/v1/plugins/{n}")));
    let invocations = api!(console, session, console.get(session, &format!("/v1/plugins/{n}/invocations?limit=20")));
    let logs = api!(console, session, console.get(session, &format!("/v1/plugins/{n}/logs?limit=50")));
    let dead = api!(console, session, console.get(session, &format!("/v1/plugins/{n}/events?status=dead&limit=50")));
    let (status, error, error_field, submitted) = match refused {
        Some((f, fields)) => (f.status, Some(f.message), f.field, Some(fields)),
        None => (StatusCode::OK, None, None, None),
    };
    let form = match (&detail["config_schema"], &submitted) {
        (serde_json::Value::Null, _) => None,
        (schema, Some(fields)) => Some(config_form::fields_from_form(schema, fields)),
        (schema, None) => Some(config_form::fields(schema, &detail["config"])),
    };
    let config_text = match &submitted {
        Some(fields) => fields.iter().find(|(k, _)| k == "config_json").map(|(_, v)| v.clone()),
        None => None,
    }
    .unwrap_or_else(|| serde_json::to_string_pretty(&detail["config"]).unwrap_or_default());
    let mut logs = logs["data"].as_array().cloned().unwrap_or_default();
    logs.sort_by_key(|l| std::cmp::Reverse(l["id"].as_i64()));
    let page = Page::of(session, "plugins", format!("Plugin {name}"));
    console.render_status(
        status,
        "plugin.html",
        page,
        context! {
            plugin => Value::from_serialize(&detail),
            href => n,
            invocations => Value::from_serialize(&invocations["data"]),
            logs => Value::from_serialize(&logs),
            dead => Value::from_serialize(&dead["data"]),
            form => form.map(|f| Value::from_serialize(&f)),
            config_text => config_text,
            notice => notice,
            error => error,
            error_field => error_field,
        },
    )
}

pub async fn plugin(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    tenant!(session);
    plugin_page(&console, &session, &name, notice(query.as_deref()), None).await
}

/// Enable, disable, roll back (to a chosen version) or change the config.
pub async fn plugin_action(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    form: RawForm,
) -> Response {
    tenant!(session);
    let form = match session.check(&headers, form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let n = encode(&name);
    let result = match action.as_str() {
        "enable" | "disable" => console.call(&session, Method::POST, &format!("/v1/plugins/{n}/{action}"), None).await,
        "rollback" => {
            let body = form.get("version").filter(|v| !v.is_empty()).map(|v| json!({ "version": v }));
            console.call(&session, Method::POST, &format!("/v1/plugins/{n}/rollback"), body).await
        }
        "config" => {
            let schema = match console.get(&session, &format!("/v1/plugins/{n}")).await {
                Ok(detail) => detail["config_schema"].clone(),
                Err(failure) => return console.failed(&session, failure),
            };
            let config = if schema.is_null() {
                // No schema: the config is edited as JSON.
                serde_json::from_str(form.get("config_json").unwrap_or("")).map_err(|e| Failure {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("the config is not valid JSON: {e}"),
                    field: Some("config".into()),
                })
            } else {
                config_form::config_from_form(&schema, &form.0)
            };
            match config {
                Ok(config) => {
                    console
                        .call(
                            &session,
                            Method::PUT,
                            &format!("/v1/plugins/{n}/config"),
                            Some(json!({ "config": config })),
                        )
                        .await
                }
                Err(failure) => Err(failure),
            }
        }
        _ => return console.failure(StatusCode::NOT_FOUND, "There is no such action."),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/console/plugins/{n}?done={action}")).into_response(),
        Err(failure) => plugin_page(&console, &session, &name, None, Some((failure, form.0))).await,
    }
}

/// Every plugin's dead-lettered events, with a retry button each.
pub async fn dead_letters(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Response {
    tenant!(session);
    let list = api!(console, session, console.get(&session, "/v1/plugins"));
    let mut dead = Vec::new();
    for plugin in list["data"].as_array().into_iter().flatten() {
        let name = plugin["name"].as_str().unwrap_or("");
        let uri = format!("/v1/plugins/{}/events?status=dead&limit=100", encode(name));
        let events = api!(console, session, console.get(&session, &uri));
        for event in events["data"].as_array().into_iter().flatten() {
            dead.push(json!({ "plugin": name, "plugin_href": encode(name), "event": event,
                "href": encode(event["id"].as_str().unwrap_or("")) }));
        }
    }
    let page = Page::of(&session, "dead-letters", "Dead letters").live();
    console.render(
        "dead_letters.html",
        page,
        context! { dead => Value::from_serialize(&dead), notice => notice(query.as_deref()) },
    )
}

pub async fn retry(
    Extension(console): Extension<Arc<Console>>,
    session: Session,
    Path((plugin, id)): Path<(String, String)>,
    headers: HeaderMap,
    form: RawForm,
) -> Response {
    tenant!(session);
    if let Err(r) = session.check(&headers, form) {
        return r;
    }
    let uri = format!("/v1/plugins/{}/events/{}/retry", encode(&plugin), encode(&id));
    api!(console, session, console.call(&session, Method::POST, &uri, None));
    Redirect::to("/console/dead-letters?done=retry").into_response()
}

/// Balance, usage by day, and the latest ledger entries.
pub async fn account(Extension(console): Extension<Arc<Console>>, session: Session) -> Response {
    tenant!(session);
    let account = api!(console, session, console.get(&session, "/v1/account?days=30"));
    let ledger = api!(console, session, console.get(&session, "/v1/account/ledger?limit=20"));
    console.render(
        "account.html",
        Page::of(&session, "account", "Usage and balance"),
        context! { account => Value::from_serialize(&account), ledger => Value::from_serialize(&ledger["data"]) },
    )
}
