//! A fake carrier for benchmarks and cluster tests: an HTTP gateway (the
//! generic `http` connector's wire format) that accepts every send at once
//! and records when each recipient's message arrived. Like gateways that
//! honour `Idempotency-Key`, it takes a repeated key as the same message:
//! answered with the first answer, not sent again, counted as a repeat.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Default)]
struct Arrivals {
    /// (recipient, when it arrived)
    log: Mutex<Vec<(String, Instant)>>,
    /// Idempotency key → the id it was answered with.
    keys: Mutex<std::collections::HashMap<String, String>>,
    repeats: AtomicUsize,
}

pub struct FakeCarrier {
    /// Where the connector posts messages.
    pub url: String,
    arrivals: Arc<Arrivals>,
    /// Arrivals so far. The count lives in the channel itself: counted
    /// apart and published after, two arrivals could publish out of order
    /// and leave the channel one short.
    counted: Arc<watch::Sender<usize>>,
}

#[derive(Clone)]
struct Shared {
    arrivals: Arc<Arrivals>,
    counted: Arc<watch::Sender<usize>>,
}

async fn accept(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> axum::Json<serde_json::Value> {
    let at = Instant::now();
    let id = format!("fc-{}", uuid::Uuid::now_v7().simple());
    if let Some(k) = headers.get("idempotency-key").and_then(|k| k.to_str().ok()) {
        // Checked and recorded under one lock: two sends with one key
        // at once still make one message.
        let mut keys = s.arrivals.keys.lock().expect("keys");
        if let Some(first) = keys.get(k) {
            s.arrivals.repeats.fetch_add(1, Ordering::SeqCst);
            return axum::Json(serde_json::json!({ "id": first }));
        }
        keys.insert(k.to_string(), id.clone());
    }
    let to = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("to").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default();
    s.arrivals.log.lock().expect("arrivals").push((to, at));
    s.counted.send_modify(|c| *c += 1);
    axum::Json(serde_json::json!({ "id": id }))
}

impl FakeCarrier {
    pub async fn start() -> std::io::Result<Self> {
        let listener = crate::net::listen_loopback()?;
        let url = format!("http://{}/send", listener.local_addr()?);
        let arrivals = Arc::new(Arrivals::default());
        let counted = Arc::new(watch::channel(0).0);
        let shared = Shared { arrivals: arrivals.clone(), counted: counted.clone() };
        let app = axum::Router::new().route("/send", post(accept)).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCarrier { url, arrivals, counted })
    }

    /// Waits until `n` messages have arrived in all; false on timeout.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.counted.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await.is_ok_and(|r| r.is_ok())
    }

    /// Sends that repeated an idempotency key already seen (not sent again).
    pub fn repeats(&self) -> usize {
        self.arrivals.repeats.load(Ordering::SeqCst)
    }

    /// What arrived so far (first arrivals only), in order.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.arrivals.log.lock().expect("arrivals").clone()
    }

    /// What arrived so far, forgotten here.
    pub fn take(&self) -> Vec<(String, Instant)> {
        let taken = std::mem::take(&mut *self.arrivals.log.lock().expect("arrivals"));
        self.counted.send_replace(0);
        taken
    }
}
