//! The gate in front of each connector: a token-bucket rate limit shared
//! by every worker on this node (or, on a shared database, by every node:
//! nodes take tokens from one bucket in the database, a few at a time), a
//! cap on concurrent requests, a pause when
//! the carrier says "retry after", and a circuit breaker that stops sending
//! to a carrier that keeps failing (open after N consecutive transient
//! failures, one probe after the cool-down, closed again on success).
//! Per-prefix prices here drive least-cost routing.

use crate::billing::{Micros, parse_amount};
use crate::clock::{Clock, Millis};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `[connectors.NAME.gate]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSettings {
    /// Messages per second to this connector (none: unlimited).
    pub rate_per_second: Option<u32>,
    /// Messages that may go at once above the steady rate. Default: a
    /// fiftieth of a second's worth (at least 1), which absorbs timer
    /// jitter without letting the long-run rate exceed the limit.
    pub burst: Option<u32>,
    /// Requests in flight at once. Default 64.
    pub max_concurrency: u32,
    /// Consecutive transient failures that open the circuit. Default 5.
    pub circuit_failures: u32,
    /// How long an open circuit waits before a probe. Default 30 s.
    pub circuit_cooldown_ms: u64,
    /// Price per segment by destination prefix (for least-cost routes).
    pub prices: HashMap<String, String>,
    /// Only these tenants may send here or hold numbers here (empty:
    /// every tenant).
    pub tenants: Vec<String>,
    /// How tenants get numbers here: `operator` (assigned through the admin
    /// API; the default for carriers), `verify` (a tenant asks, and proves
    /// the number with a code sent to it from `verify_from`), or `open`
    /// (a tenant registers any number; the default for simulators).
    pub registration: Option<Registration>,
    /// The number verification codes are sent from (with `verify`).
    pub verify_from: Option<String>,
}

/// How tenants get numbers on a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Operator,
    Verify,
    Open,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            rate_per_second: None,
            burst: None,
            max_concurrency: 64,
            circuit_failures: 5,
            circuit_cooldown_ms: 30_000,
            prices: HashMap::new(),
            tenants: Vec::new(),
            registration: None,
            verify_from: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Millis,
    },
    /// One probe is allowed through; `probing` while it is in flight.
    HalfOpen {
        probing: bool,
    },
}

pub struct Gate {
    limiter: Option<DefaultDirectRateLimiter>,
    /// The cluster-wide bucket, when nodes share the database.
    shared: Option<SharedBucket>,
    /// Waiters for a token queue here, in order: one sleeps on the bucket
    /// at a time instead of all waking for every token.
    turn: tokio::sync::Mutex<()>,
    concurrency: Arc<Semaphore>,
    max_concurrency: usize,
    rate_per_second: Option<u32>,
    circuit: Mutex<Circuit>,
    paused_until: Mutex<Option<Millis>>,
    failures_to_open: u32,
    cooldown: Duration,
    /// Cool-downs and pauses run on the engine's clock (tests shift it).
    clock: Clock,
    /// Longest prefix first.
    prices: Vec<(String, Micros)>,
    tenants: Vec<String>,
}

/// A token bucket in the database that every node draws on. A node takes
/// at most a burst's worth at once and spends it before asking again, so
/// what the cluster sends over any span stays within rate × span + burst
/// (plus at most a burst per node held but unspent).
struct SharedBucket {
    db: Arc<dyn crate::store::Database>,
    key: String,
    rate: u32,
    burst: u32,
    /// Tokens taken from the database and not yet spent (under `turn`).
    held: std::sync::atomic::AtomicU32,
}

impl SharedBucket {
    /// Waits for one token. `Err` when the database cannot be asked.
    async fn take_one(&self) -> Result<(), crate::store::StoreError> {
        use std::sync::atomic::Ordering;
        loop {
            let held = self.held.load(Ordering::Relaxed);
            if held > 0 {
                self.held.store(held - 1, Ordering::Relaxed);
                return Ok(());
            }
            let tokens = self.db.take_tokens(&self.key, self.rate, self.burst, self.burst).await?;
            if tokens.granted > 0 {
                self.held.store(tokens.granted, Ordering::Relaxed);
                continue;
            }
            // Sleep until the bucket holds a whole token again.
            let wait = ((1.0 - tokens.left).max(0.0) / f64::from(self.rate)).max(0.001);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// Leave to send one message; dropping it frees the concurrency slot.
pub struct Pass {
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// `cluster`: the shared database and this connector's bucket key,
    /// when the rate must hold across nodes.
    pub fn new(
        s: &GateSettings,
        clock: Clock,
        cluster: Option<(Arc<dyn crate::store::Database>, String)>,
    ) -> Result<Self, String> {
        let (limiter, shared) = match s.rate_per_second {
            None => (None, None),
            Some(rate) => {
                let rate = NonZeroU32::new(rate).ok_or("gate.rate_per_second must be positive")?;
                let burst = NonZeroU32::new(s.burst.unwrap_or(rate.get() / 50).max(1)).expect("positive");
                let shared = cluster.map(|(db, key)| SharedBucket {
                    db,
                    key,
                    rate: rate.get(),
                    burst: burst.get(),
                    held: Default::default(),
                });
                (Some(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))), shared)
            }
        };
        let mut prices = s
            .prices
            .iter()
            .map(|(p, v)| parse_amount(v).map(|m| (p.clone(), m)).map_err(|e| format!("gate.prices: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        prices.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Ok(Gate {
            limiter,
            shared,
            turn: tokio::sync::Mutex::new(()),
            concurrency: Arc::new(Semaphore::new(s.max_concurrency.max(1) as usize)),
            max_concurrency: s.max_concurrency.max(1) as usize,
            rate_per_second: s.rate_per_second,
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
            paused_until: Mutex::new(None),
            failures_to_open: s.circuit_failures.max(1),
            cooldown: Duration::from_millis(s.circuit_cooldown_ms),
            clock,
            prices,
            tenants: s.tenants.clone(),
        })
    }

    /// Carrier requests holding a concurrency slot now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency.saturating_sub(self.concurrency.available_permits())
    }

    /// The messages per second this gate holds the connector to, if any.
    pub fn rate_per_second(&self) -> Option<u32> {
        self.rate_per_second
    }

    pub fn state(&self) -> CircuitState {
        match *self.circuit.lock().expect("circuit lock") {
            Circuit::Closed { .. } => CircuitState::Closed,
            Circuit::Open { until } if self.clock.now_ms() >= until => CircuitState::HalfOpen,
            Circuit::Open { .. } => CircuitState::Open,
            Circuit::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a message may try this connector now: always when closed;
    /// when the cool-down is over, one probe at a time; never when open.
    pub fn admit(&self) -> bool {
        let mut circuit = self.circuit.lock().expect("circuit lock");
        match *circuit {
            Circuit::Closed { .. } => true,
            Circuit::Open { until } if self.clock.now_ms() >= until => {
                *circuit = Circuit::HalfOpen { probing: true };
                true
            }
            Circuit::Open { .. } => false,
            Circuit::HalfOpen { probing: true } => false,
            Circuit::HalfOpen { probing: false } => {
                *circuit = Circuit::HalfOpen { probing: true };
                true
            }
        }
    }

    /// Waits for a concurrency slot, the end of a carrier-requested pause,
    /// and a rate-limit token.
    pub async fn pass(&self) -> Pass {
        let permit = self.concurrency.clone().acquire_owned().await.expect("semaphore is never closed");
        loop {
            let paused = *self.paused_until.lock().expect("pause lock");
            match paused {
                Some(until) if until > self.clock.now_ms() => self.clock.sleep_until(until).await,
                _ => break,
            }
        }
        if let Some(shared) = &self.shared {
            let _turn = self.turn.lock().await;
            match shared.take_one().await {
                Ok(()) => return Pass { _permit: permit },
                // The node's own limit still holds until the database is back.
                Err(e) => tracing::warn!(error = %e, "shared send rate unavailable; limiting this node alone"),
            }
        }
        if let Some(limiter) = &self.limiter {
            let _turn = self.turn.lock().await;
            while let Err(not_until) = limiter.check() {
                tokio::time::sleep(
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())),
                )
                .await;
            }
        }
        Pass { _permit: permit }
    }

    /// The carrier asked for a pause (429 `Retry-After`, SMPP throttling).
    pub fn pause(&self, for_: Duration) {
        let until = self.clock.now_ms() + for_.as_millis() as i64;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// Records the outcome of an attempt for the circuit breaker. Only
    /// transient failures count: a refused number says nothing about the
    /// carrier's health.
    pub fn record(&self, healthy: bool) {
        let mut circuit = self.circuit.lock().expect("circuit lock");
        *circuit = match (&*circuit, healthy) {
            (_, true) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, false) if failures + 1 < self.failures_to_open => {
                Circuit::Closed { failures: failures + 1 }
            }
            (_, false) => {
                tracing::warn!("circuit opened after repeated carrier failures");
                Circuit::Open { until: self.clock.now_ms() + self.cooldown.as_millis() as i64 }
            }
        };
    }

    /// A probe that ended without an outcome (e.g. throttled) frees the slot.
    pub fn release_probe(&self) {
        let mut circuit = self.circuit.lock().expect("circuit lock");
        if let Circuit::HalfOpen { probing: true } = *circuit {
            *circuit = Circuit::HalfOpen { probing: false };
        }
    }

    /// Whether `tenant_id` may send through this connector.
    pub fn allows(&self, tenant_id: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant_id)
    }

    /// This connector's price per segment to `to`, if it has one.
    pub fn price(&self, to: &str) -> Option<Micros> {
        self.prices.iter().find(|(p, _)| to.starts_with(p.as_str())).map(|(_, m)| *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(failures: u32, cooldown_ms: u64) -> Gate {
        Gate::new(
            &GateSettings { circuit_failures: failures, circuit_cooldown_ms: cooldown_ms, ..Default::default() },
            Clock::frozen(0),
            None,
        )
        .unwrap()
    }

    #[test]
    fn the_circuit_opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let g = gate(3, 0);
        g.record(false);
        g.record(true);
        g.record(false);
        g.record(false);
        assert_eq!(g.state(), CircuitState::Closed, "failures must be consecutive");
        g.record(false);
        // Cool-down of 0: the next admit is the probe; others wait for it.
        assert!(g.admit());
        assert!(!g.admit());
        g.record(true);
        assert_eq!(g.state(), CircuitState::Closed);
        assert!(g.admit() && g.admit());
    }

    #[test]
    fn an_open_circuit_refuses_until_its_cool_down_ends() {
        let g = gate(1, 60_000);
        g.record(false);
        assert_eq!(g.state(), CircuitState::Open);
        assert!(!g.admit());
        g.clock.advance(Duration::from_millis(59_999));
        assert!(!g.admit());
        g.clock.advance(Duration::from_millis(1));
        assert!(g.admit(), "the probe");
    }

    #[test]
    fn a_failed_probe_reopens() {
        let g = gate(1, 0);
        g.record(false);
        assert!(g.admit());
        g.record(false);
        assert!(matches!(*g.circuit.lock().unwrap(), Circuit::Open { .. }));
    }

    #[test]
    fn longest_price_prefix_wins() {
        let mut s = GateSettings::default();
        s.prices.insert("+4".into(), "0.02".into());
        s.prices.insert("+44".into(), "0.01".into());
        let g = Gate::new(&s, Clock::frozen(0), None).unwrap();
        assert_eq!(g.price("+447911123456"), Some(10_000));
        assert_eq!(g.price("+491511234567"), Some(20_000));
        assert_eq!(g.price("+15551234567"), None);
    }
}
