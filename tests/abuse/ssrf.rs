//! Edge 9: outgoing requests cannot be pointed inside. Every IANA
//! special-purpose range is refused for status webhooks and the plugin
//! `http` capability alike, and the connection goes to the address that
//! was checked: a name that answers public, then loopback, never reaches
//! loopback.

use super::*;
use futures::future::BoxFuture;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard::net::Dns;
use switchboard::net::Lookup;

/// A resolver that answers from a script: the n-th query gets the n-th
/// answer (the last one repeats).
struct Scripted {
    answers: Vec<Vec<IpAddr>>,
    asked: Arc<AtomicUsize>,
}

impl Lookup for Scripted {
    fn lookup(&self, _host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers[n.min(self.answers.len() - 1)].clone();
        Box::pin(async move { Ok(answer) })
    }
}

fn scripted(answers: &[&[&str]]) -> (Dns, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let answers = answers.iter().map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect()).collect();
    (Dns(Some(Arc::new(Scripted { answers, asked: asked.clone() }))), asked)
}

/// A local server counting what reaches it.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "reached"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

/// The webhook deliveries of a message, once each has been attempted.
async fn failed_webhooks(h: &Harness, id: &str) -> Vec<Value> {
    let uri = format!("/v1/messages/{id}/webhooks");
    let attempted = |all: &[Value]| all.len() == 3 && all.iter().all(|d| !d["attempts"].as_array().unwrap().is_empty());
    eventually("every webhook was attempted", || async { attempted(h.get(&uri).await["data"].as_array().unwrap()) })
        .await;
    h.get(&uri).await["data"].as_array().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_special_purpose_literals_are_refused() {
    let (port, hits) = counting_server().await;
    let h = harness().plugins(&[]).start().await;
    for url in [
        format!("http://198.18.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://[::127.0.0.1]:{port}/hook"),
        format!("http://[64:ff9b::7f00:1]:{port}/hook"),
        format!("http://[fec0::1]:{port}/hook"),
        format!("http://[2002:7f00:1::1]:{port}/hook"),
    ] {
        let m = h
            .post("/v1/messages", json!({"to": CUSTOMER, "message": "x", "webhook_url": url}), StatusCode::ACCEPTED)
            .await;
        for d in failed_webhooks(&h, m["id"].as_str().unwrap()).await {
            let error = d["attempts"][0]["error"].as_str().unwrap_or_default().to_string();
            assert!(error.contains("special-purpose address"), "{url}: {error}");
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the local server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_rebinds_to_loopback_never_reaches_it() {
    let (port, hits) = counting_server().await;
    // Public first (a check would pass), loopback after (a second lookup
    // would connect there).
    let (dns, asked) = scripted(&[&["2606:4700:4700::1111"], &["127.0.0.1"]]);
    let h = harness().plugins(&[]).settings(move |s| s.dns = dns).start().await;
    let url = format!("http://rebind.test:{port}/hook");
    let m =
        h.post("/v1/messages", json!({"to": CUSTOMER, "message": "x", "webhook_url": url}), StatusCode::ACCEPTED).await;
    let deliveries = failed_webhooks(&h, m["id"].as_str().unwrap()).await;
    let attempts: usize = deliveries.iter().map(|d| d["attempts"].as_array().unwrap().len()).sum();
    assert_eq!(hits.load(Ordering::SeqCst), 0, "loopback was never reached");
    assert!(deliveries.iter().all(|d| d["attempts"][0]["status_code"].is_null()), "{deliveries:?}");
    assert!(asked.load(Ordering::SeqCst) <= attempts, "one lookup per attempt, no second look");
    // Answers that are loopback from the start are refused outright.
    let (dns, _) = scripted(&[&["127.0.0.1"]]);
    let h = harness().plugins(&[]).settings(move |s| s.dns = dns).start().await;
    let m =
        h.post("/v1/messages", json!({"to": CUSTOMER, "message": "x", "webhook_url": url}), StatusCode::ACCEPTED).await;
    for d in failed_webhooks(&h, m["id"].as_str().unwrap()).await {
        let error = d["attempts"][0]["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("special-purpose address"), "{error}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_http_request_is_vetted_at_the_connection_too() {
    let (port, hits) = counting_server().await;
    let (dns, _) = scripted(&[&["2606:4700:4700::1111"], &["127.0.0.1"]]);
    let h = harness().plugins(&["chaos"]).settings(move |s| s.dns = dns).start().await;
    // allowed.example is on the chaos plugin's allow-list.
    h.inbound(CUSTOMER, &format!("FETCH http://allowed.example:{port}/hello")).await;
    let first = h.sent(1).await.remove(0).body;
    assert!(!first.starts_with("status"), "{first}");
    h.inbound(CUSTOMER, &format!("FETCH http://allowed.example:{port}/hello")).await;
    let second = h.sent(2).await.remove(1).body;
    assert!(second.starts_with("access-denied") && second.contains("special-purpose address"), "{second}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "loopback was never reached");
}
