//! The operator's page: tenants and their numbers, connectors with their
//! gate state, and queue depths, read through the admin API.

use super::session::{Role, Session};
use super::{Console, Page};
use axum::Extension;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use std::sync::Arc;

pub async fn overview(Extension(console): Extension<Arc<Console>>, session: Session) -> Response {
    if session.role != Role::Operator {
        return Redirect::to("/console/conversations").into_response();
    }
    let mut answers = Vec::new();
    for uri in ["/admin/v1/tenants", "/admin/v1/connectors", "/admin/v1/queues"] {
        match console.get(&session, uri).await {
            Ok(v) => answers.push(v),
            Err(failure) => return console.failed(&session, failure),
        }
    }
    let [tenants, connectors, queues] = <[serde_json::Value; 3]>::try_from(answers).expect("three answers");
    console.render(
        "operator.html",
        Page::of(&session, "operator", "Operator").live(),
        context! {
            tenants => Value::from_serialize(&tenants["data"]),
            connectors => Value::from_serialize(&connectors["data"]),
            queues => Value::from_serialize(&queues["data"]),
        },
    )
}
