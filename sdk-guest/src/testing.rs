//! A host in memory, for unit tests of handlers under `cargo test`.
//!
//! Compiled for the machine running the tests (not `wasm32`), every
//! capability of this crate talks to the [`MockHost`] installed on the
//! current thread: kv and timers live in maps, sends and log lines are
//! captured, the clock and the configuration are yours to set.
//!
//! ```ignore
//! use switchboard_sdk::testing::{self, MockHost};
//!
//! #[test]
//! fn a_visit_is_counted() {
//!     MockHost::new().config(serde_json::json!({ "followup_after_s": 60 })).kv("visits:+15551234567", "2").install();
//!     testing::run(|| VisitBot::on_inbound(testing::inbound("+15551234567", "VISIT"))).unwrap();
//!     assert_eq!(testing::sent()[0].body, "Welcome! This is visit #3.");
//!     assert_eq!(testing::kv_get("visits:+15551234567").as_deref(), Some(&b"3"[..]));
//! }
//! ```
//!
//! As on the real host, [`run`] commits a handler's effects only when it
//! returns `Ok`: on `Err` the kv, timers, sends and logs are as before it.
//! Arguments are checked loosely (empty keys, non-E.164 recipients, the
//! sends-per-invocation limit); quotas, consent and prices are the engine's,
//! and `switchboard run` tests a built component against them.

use crate::types::{HostError, InboundMessage, Result};
use crate::wit::switchboard::plugin::http::{Request, Response};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z: where a mock clock starts.
pub const START_MS: i64 = 1_767_225_600_000;
/// The tenant number messages arrive on unless a test says otherwise.
pub const NUMBER: &str = "+15550000000";
const SENDS_PER_INVOCATION: usize = 100;

/// A message a handler sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub id: String,
    pub to: String,
    /// `None`: the tenant's default number.
    pub from: Option<String>,
    pub body: String,
    pub reference: Option<String>,
    pub schedule_at: Option<i64>,
}

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTimer {
    pub key: String,
    pub at_ms: i64,
    pub payload: String,
}

type HttpHandler = Box<dyn FnMut(&Request) -> Result<Response, HostError>>;

/// The state of the host one test sees.
#[derive(Default)]
pub struct MockHost {
    now_ms: i64,
    config: String,
    kv: BTreeMap<String, Vec<u8>>,
    timers: BTreeMap<String, (i64, String)>,
    sent: Vec<SentSms>,
    logs: Vec<(String, String)>,
    http: Option<HttpHandler>,
    next_id: u64,
    sends_in_run: usize,
}

thread_local! {
    static HOST: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

impl MockHost {
    /// Empty kv, no timers, config `{}`, the clock at [`START_MS`]; `http`
    /// refuses every request until [`MockHost::http`] is given.
    pub fn new() -> Self {
        MockHost { now_ms: START_MS, config: "{}".into(), ..Default::default() }
    }

    /// The plugin's configuration (what `config::get` deserializes).
    pub fn config(mut self, config: impl serde::Serialize) -> Self {
        self.config = serde_json::to_string(&config).expect("the configuration serializes");
        self
    }

    /// A kv entry before the test.
    pub fn kv(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.kv.insert(key.into(), value.as_ref().to_vec());
        self
    }

    /// The clock, in milliseconds since the Unix epoch.
    pub fn at(mut self, now_ms: i64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Answers the plugin's `http::fetch` calls.
    pub fn http(mut self, handler: impl FnMut(&Request) -> Result<Response, HostError> + 'static) -> Self {
        self.http = Some(Box::new(handler));
        self
    }

    /// Makes this the host of the current thread (each test has its own).
    pub fn install(self) {
        HOST.with(|h| *h.borrow_mut() = Some(self));
    }
}

fn with<T>(f: impl FnOnce(&mut MockHost) -> T) -> T {
    HOST.with(|h| {
        let mut host = h.borrow_mut();
        let host = host.get_or_insert_with(MockHost::new);
        f(host)
    })
}

/// Runs one handler call as the host does: its effects stay only if it
/// returns `Ok`.
pub fn run<T>(handler: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = with(|h| {
        h.sends_in_run = 0;
        (h.kv.clone(), h.timers.clone(), h.sent.len(), h.logs.len())
    });
    let result = handler();
    if result.is_err() {
        with(|h| {
            (h.kv, h.timers) = (before.0, before.1);
            h.sent.truncate(before.2);
            h.logs.truncate(before.3);
        });
    }
    result
}

/// Messages sent so far, oldest first.
pub fn sent() -> Vec<SentSms> {
    with(|h| h.sent.clone())
}

/// A kv value.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    with(|h| h.kv.get(key).cloned())
}

/// Pending timers, by key.
pub fn timers() -> Vec<PendingTimer> {
    with(|h| {
        h.timers
            .iter()
            .map(|(key, (at_ms, payload))| PendingTimer { key: key.clone(), at_ms: *at_ms, payload: payload.clone() })
            .collect()
    })
}

/// Log lines so far, as (level, message).
pub fn logs() -> Vec<(String, String)> {
    with(|h| h.logs.clone())
}

/// Moves the clock forward; returns the timers now due (removed from the
/// pending ones), earliest first, for the test to pass to `on_timer`.
pub fn advance(ms: i64) -> Vec<PendingTimer> {
    with(|h| {
        h.now_ms += ms;
        let now = h.now_ms;
        let due: Vec<String> = h.timers.iter().filter(|(_, (at, _))| *at <= now).map(|(k, _)| k.clone()).collect();
        let mut fired: Vec<PendingTimer> = due
            .into_iter()
            .filter_map(|key| h.timers.remove(&key).map(|(at_ms, payload)| PendingTimer { key, at_ms, payload }))
            .collect();
        fired.sort_by_key(|t| t.at_ms);
        fired
    })
}

/// An inbound SMS from `from` to [`NUMBER`], received now.
pub fn inbound(from: &str, body: &str) -> InboundMessage {
    InboundMessage {
        id: format!("msg_test_{}", with(|h| h.next_id)),
        from: from.to_string(),
        to: NUMBER.to_string(),
        body: body.to_string(),
        received_at: with(|h| h.now_ms),
    }
}

fn invalid(message: &str) -> HostError {
    HostError::InvalidArgument(message.to_string())
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() { Err(invalid("kv key is empty")) } else { Ok(()) }
}

fn e164(number: &str) -> bool {
    number.len() >= 8
        && number.len() <= 16
        && number.starts_with('+')
        && number[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The imports, as this host answers them (same signatures as the
/// generated bindings the component uses).
pub(crate) mod imports {
    use super::*;

    pub mod kv {
        use super::*;

        pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
            check_key(key)?;
            Ok(with(|h| h.kv.get(key).cloned()))
        }
        pub fn set(key: &str, value: &[u8]) -> Result<(), HostError> {
            check_key(key)?;
            with(|h| h.kv.insert(key.to_string(), value.to_vec()));
            Ok(())
        }
        pub fn delete(key: &str) -> Result<bool, HostError> {
            check_key(key)?;
            Ok(with(|h| h.kv.remove(key).is_some()))
        }
        pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, HostError> {
            Ok(with(|h| h.kv.keys().filter(|k| k.starts_with(prefix)).take(limit as usize).cloned().collect()))
        }
        pub fn increment(key: &str, delta: i64) -> Result<i64, HostError> {
            check_key(key)?;
            with(|h| {
                let current = match h.kv.get(key) {
                    None => 0,
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| invalid(&format!("kv {key} does not hold an integer")))?,
                };
                let next = current.checked_add(delta).ok_or_else(|| invalid("the sum overflows"))?;
                h.kv.insert(key.to_string(), next.to_string().into_bytes());
                Ok(next)
            })
        }
    }

    pub mod messaging {
        use super::*;
        pub use crate::wit::switchboard::plugin::messaging::OutboundMessage;

        pub fn send(message: &OutboundMessage) -> Result<String, HostError> {
            send_many(std::slice::from_ref(message)).map(|mut ids| ids.remove(0))
        }
        pub fn send_many(messages: &[OutboundMessage]) -> Result<Vec<String>, HostError> {
            for (i, m) in messages.iter().enumerate() {
                if !e164(&m.to) {
                    return Err(invalid(&format!("message {i}: {:?} is not an E.164 number", m.to)));
                }
                if m.body.is_empty() {
                    return Err(invalid(&format!("message {i}: the body is empty")));
                }
            }
            with(|h| {
                if h.sends_in_run + messages.len() > SENDS_PER_INVOCATION {
                    return Err(HostError::QuotaExceeded(format!(
                        "at most {SENDS_PER_INVOCATION} sends per invocation"
                    )));
                }
                h.sends_in_run += messages.len();
                Ok(messages
                    .iter()
                    .map(|m| {
                        h.next_id += 1;
                        let id = format!("msg_test_{}", h.next_id);
                        h.sent.push(SentSms {
                            id: id.clone(),
                            to: m.to.clone(),
                            from: m.from.clone(),
                            body: m.body.clone(),
                            reference: m.reference.clone(),
                            schedule_at: m.schedule_at,
                        });
                        id
                    })
                    .collect())
            })
        }
    }

    pub mod timers {
        use super::*;

        pub fn schedule_at(key: &str, at: i64, payload: &str) -> Result<(), HostError> {
            if key.is_empty() {
                return Err(invalid("timer key is empty"));
            }
            with(|h| h.timers.insert(key.to_string(), (at, payload.to_string())));
            Ok(())
        }
        pub fn schedule_after(key: &str, delay_ms: u64, payload: &str) -> Result<(), HostError> {
            let at = with(|h| h.now_ms).saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            schedule_at(key, at, payload)
        }
        pub fn cancel(key: &str) -> Result<bool, HostError> {
            Ok(with(|h| h.timers.remove(key).is_some()))
        }
    }

    pub mod config {
        pub fn get() -> String {
            super::with(|h| h.config.clone())
        }
    }

    pub mod clock {
        pub fn now() -> i64 {
            super::with(|h| h.now_ms)
        }
    }

    pub mod log {
        pub use crate::wit::switchboard::plugin::log::Level;

        pub fn write(level: Level, message: &str) {
            let level = match level {
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            super::with(|h| h.logs.push((level.to_string(), message.to_string())));
        }
    }

    pub mod http {
        use super::*;
        pub use crate::wit::switchboard::plugin::http::{Request, Response};

        pub fn fetch(request: &Request) -> Result<Response, HostError> {
            // Out of the host while it runs: it may call the SDK itself.
            let Some(mut handler) = with(|h| h.http.take()) else {
                return Err(HostError::AccessDenied("the mock host has no http handler (MockHost::http)".into()));
            };
            let response = handler(request);
            with(|h| h.http = Some(handler));
            response
        }
    }
}
