//! Recording what an invocation saw, and serving it back in a replay.
//!
//! A plugin is deterministic given what the host tells it, so a recording
//! keeps exactly that: the trigger, every clock reading, the message ids
//! the host issued, the kv values it read (with their versions), the
//! answers of lookups and checks against live state (a pending timer, a
//! recipient who opted out, a quota), every `http.fetch` result, and the
//! seed of the sandbox's random source. Its effects are kept beside it, to
//! compare with.
//!
//! In a replay the capabilities ask the [`Tape`] before the world: what
//! was recorded is served back, and nothing reaches the database, the
//! carriers or the network. A new version may ask for something the
//! recording never saw (another kv key, another URL); it gets the neutral
//! answer (absent, no opt-out, `internal` for HTTP) and the replay's notes
//! say so.
//!
//! Each capability uses the same two-step form: `replayed_*` answers when
//! replaying, otherwise the capability asks the world and `record_*` keeps
//! the answer (a no-op when recording is off).

use super::bindings::http::{Request, Response};
use super::bindings::types::Error;
use super::bindings::{DeliveryReport, DeliveryStatus, InboundMessage};
use super::invocation::Trigger;
use crate::clock::{Clock, Millis};
use crate::store::{Effects, TimerOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// The format of stored recordings; a replay refuses other ones.
pub const FORMAT: u32 = 1;

/// Bytes, as text when they are UTF-8 (kv values usually are), else
/// `{"base64": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = serde_json::Map::new();
                map.insert("base64".into(), base64::engine::general_purpose::STANDARD.encode(&self.0).into());
                map.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Base64 { base64: String },
        }
        Ok(Blob(match Form::deserialize(d)? {
            Form::Text(t) => t.into_bytes(),
            Form::Base64 { base64 } => {
                base64::engine::general_purpose::STANDARD.decode(base64).map_err(serde::de::Error::custom)?
            }
        }))
    }
}

/// What the plugin was called for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordedTrigger {
    Inbound {
        id: String,
        from: String,
        to: String,
        body: String,
        received_at: Millis,
    },
    Event {
        name: String,
        payload: String,
    },
    Timer {
        payload: String,
    },
    Delivery {
        message_id: String,
        reference: Option<String>,
        to: String,
        status: String,
        error_code: Option<String>,
        at: Millis,
    },
}

const STATUSES: [(DeliveryStatus, &str); 9] = [
    (DeliveryStatus::Queued, "queued"),
    (DeliveryStatus::Scheduled, "scheduled"),
    (DeliveryStatus::Sending, "sending"),
    (DeliveryStatus::Sent, "sent"),
    (DeliveryStatus::Delivered, "delivered"),
    (DeliveryStatus::Undelivered, "undelivered"),
    (DeliveryStatus::Failed, "failed"),
    (DeliveryStatus::Expired, "expired"),
    (DeliveryStatus::Cancelled, "cancelled"),
];

impl RecordedTrigger {
    pub fn of(trigger: &Trigger) -> Self {
        match trigger {
            Trigger::Inbound(m) => RecordedTrigger::Inbound {
                id: m.id.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                body: m.body.clone(),
                received_at: m.received_at,
            },
            Trigger::Event { name, payload } => RecordedTrigger::Event { name: name.clone(), payload: payload.clone() },
            Trigger::Timer { payload } => RecordedTrigger::Timer { payload: payload.clone() },
            Trigger::Delivery(r) => RecordedTrigger::Delivery {
                message_id: r.message_id.clone(),
                reference: r.reference.clone(),
                to: r.to.clone(),
                status: STATUSES.iter().find(|(s, _)| *s == r.status).map_or("queued", |(_, n)| n).to_string(),
                error_code: r.error_code.clone(),
                at: r.at,
            },
        }
    }

    pub fn trigger(&self) -> Trigger {
        match self.clone() {
            RecordedTrigger::Inbound { id, from, to, body, received_at } => {
                Trigger::Inbound(InboundMessage { id, from, to, body, received_at })
            }
            RecordedTrigger::Event { name, payload } => Trigger::Event { name, payload },
            RecordedTrigger::Timer { payload } => Trigger::Timer { payload },
            RecordedTrigger::Delivery { message_id, reference, to, status, error_code, at } => {
                Trigger::Delivery(DeliveryReport {
                    message_id,
                    reference,
                    to,
                    status: STATUSES.iter().find(|(_, n)| *n == status).map_or(DeliveryStatus::Queued, |(s, _)| *s),
                    error_code,
                    at,
                })
            }
        }
    }

    /// Who the event is about: the customer's number where there is one.
    pub fn customer(&self) -> Option<&str> {
        match self {
            RecordedTrigger::Inbound { from, .. } => Some(from),
            RecordedTrigger::Delivery { to, .. } => Some(to),
            _ => None,
        }
    }
}

/// A host-function error as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedError {
    pub kind: String,
    pub message: String,
}

impl RecordedError {
    pub fn of(e: &Error) -> Self {
        let (kind, message) = match e {
            Error::AccessDenied(m) => ("access-denied", m),
            Error::QuotaExceeded(m) => ("quota-exceeded", m),
            Error::InvalidArgument(m) => ("invalid-argument", m),
            Error::OptedOut(m) => ("opted-out", m),
            Error::Internal(m) => ("internal", m),
        };
        RecordedError { kind: kind.into(), message: message.clone() }
    }

    pub fn error(&self) -> Error {
        let m = self.message.clone();
        match self.kind.as_str() {
            "access-denied" => Error::AccessDenied(m),
            "quota-exceeded" => Error::QuotaExceeded(m),
            "invalid-argument" => Error::InvalidArgument(m),
            "opted-out" => Error::OptedOut(m),
            _ => Error::Internal(m),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvSeen {
    pub key: String,
    pub value: Option<Blob>,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListSeen {
    pub prefix: String,
    pub limit: u32,
    pub keys: Vec<String>,
}

/// A yes/no question about live state (`timer_pending` for a key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LookupSeen {
    pub what: String,
    pub key: String,
    pub answer: bool,
}

/// A check against live state that refused (consent, quotas, balance).
/// Checks that passed are not kept: a replay passes what is not here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Refusal {
    pub check: String,
    pub key: String,
    pub error: RecordedError,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpSeen {
    pub method: String,
    pub url: String,
    /// SHA-256 of the request body (hex), when there was one.
    pub body_sha256: Option<String>,
    pub result: Result<RecordedResponse, RecordedError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Blob,
}

/// One message the invocation queued, as compared across versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecordedSend {
    pub id: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub reference: Option<String>,
    pub scheduled_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecordedKvWrite {
    pub key: String,
    /// The value written (text, or `{"base64": ...}`); null deletes.
    #[schema(value_type = Option<Object>)]
    pub value: Option<Blob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecordedTimer {
    /// `schedule` or `cancel`.
    pub op: String,
    pub key: String,
    pub due_at: Option<Millis>,
    pub payload: Option<String>,
}

/// What an invocation committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecordedEffects {
    pub sends: Vec<RecordedSend>,
    pub kv_writes: Vec<RecordedKvWrite>,
    pub timers: Vec<RecordedTimer>,
}

impl RecordedEffects {
    pub fn of(effects: &Effects) -> Self {
        RecordedEffects {
            sends: effects
                .sends
                .iter()
                .map(|m| RecordedSend {
                    id: m.id.clone(),
                    to: m.to.clone(),
                    from: m.from.clone(),
                    body: m.body.clone(),
                    reference: m.reference.clone(),
                    scheduled_at: m.scheduled_at,
                })
                .collect(),
            kv_writes: effects
                .kv_writes
                .iter()
                .map(|(k, v)| RecordedKvWrite { key: k.clone(), value: v.clone().map(Blob) })
                .collect(),
            timers: effects
                .timer_ops
                .iter()
                .map(|op| match op {
                    TimerOp::Schedule { key, due_at, payload, .. } => RecordedTimer {
                        op: "schedule".into(),
                        key: key.clone(),
                        due_at: Some(*due_at),
                        payload: Some(payload.clone()),
                    },
                    TimerOp::Cancel { key } => {
                        RecordedTimer { op: "cancel".into(), key: key.clone(), due_at: None, payload: None }
                    }
                })
                .collect(),
        }
    }
}

/// Everything one invocation saw, and what it committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    pub format: u32,
    pub trigger: RecordedTrigger,
    /// `live` or `test`: the mode of the event.
    pub mode: String,
    /// The seed of the sandbox's random sources (hex, 32 bytes).
    pub seed: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock: Vec<Millis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv: Vec<KvSeen>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListSeen>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<LookupSeen>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpSeen>,
    /// What it committed; `None` when it failed.
    pub effects: Option<RecordedEffects>,
}

impl Recording {
    pub fn parse(bytes: &[u8]) -> Result<Recording, String> {
        let r: Recording = serde_json::from_slice(bytes).map_err(|e| format!("unreadable recording: {e}"))?;
        if r.format != FORMAT {
            return Err(format!("recording format {} is not {FORMAT}", r.format));
        }
        Ok(r)
    }

    fn seed_bytes(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        if let Ok(bytes) = hex::decode(&self.seed) {
            let n = bytes.len().min(32);
            seed[..n].copy_from_slice(&bytes[..n]);
        }
        seed
    }
}

enum Mode {
    Record(Box<Recording>),
    Replay(Box<Replaying>),
}

struct Replaying {
    recording: Recording,
    clock_next: usize,
    ids_next: usize,
    http_used: Vec<bool>,
    notes: Vec<String>,
}

impl Replaying {
    fn note(&mut self, note: String) {
        if self.notes.len() < 20 && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// One invocation's tape: off, recording, or replaying. Cloned into every
/// capability of the invocation (they share it).
#[derive(Clone, Default)]
pub struct Tape(Option<Arc<Mutex<Mode>>>);

fn body_digest(body: &Option<Vec<u8>>) -> Option<String> {
    body.as_ref().map(|b| hex::encode(Sha256::digest(b)))
}

impl Tape {
    /// Passes everything through and keeps nothing.
    pub fn off() -> Self {
        Tape(None)
    }

    /// The tape of a live invocation: recording, unless
    /// `limits.record_invocations` is off.
    pub fn live(limits: &crate::limits::Limits, trigger: &Trigger, mode: &str) -> Self {
        if limits.record_invocations { Tape::record(trigger, mode) } else { Tape::off() }
    }

    /// Records an invocation of `trigger`, with a fresh random seed.
    pub fn record(trigger: &Trigger, mode: &str) -> Self {
        let seed: [u8; 32] = rand::random();
        let recording = Recording {
            format: FORMAT,
            trigger: RecordedTrigger::of(trigger),
            mode: mode.to_string(),
            seed: hex::encode(seed),
            clock: vec![],
            ids: vec![],
            kv: vec![],
            lists: vec![],
            lookups: vec![],
            refusals: vec![],
            http: vec![],
            effects: None,
        };
        Tape(Some(Arc::new(Mutex::new(Mode::Record(Box::new(recording))))))
    }

    /// Serves `recording` back to a run of (possibly another version of) its plugin.
    pub fn replay(recording: Recording) -> Self {
        let http_used = vec![false; recording.http.len()];
        Tape(Some(Arc::new(Mutex::new(Mode::Replay(Box::new(Replaying {
            recording,
            clock_next: 0,
            ids_next: 0,
            http_used,
            notes: vec![],
        }))))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Mode) -> T) -> Option<T> {
        self.0.as_ref().map(|m| f(&mut m.lock().expect("tape lock")))
    }

    /// Whether it records or replays (off: every call passes through).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn records(&self) -> bool {
        self.with(|m| matches!(m, Mode::Record(_))).unwrap_or(false)
    }

    pub fn is_replay(&self) -> bool {
        self.with(|m| matches!(m, Mode::Replay(_))).unwrap_or(false)
    }

    /// The random seed the sandbox uses, when there is a tape.
    pub fn seed(&self) -> Option<[u8; 32]> {
        self.with(|m| match m {
            Mode::Record(r) => r.seed_bytes(),
            Mode::Replay(r) => r.recording.seed_bytes(),
        })
    }

    /// The time, as the invocation sees it.
    pub fn now(&self, clock: &Clock) -> Millis {
        self.with(|m| match m {
            Mode::Record(r) => {
                let now = clock.now_ms();
                r.clock.push(now);
                now
            }
            Mode::Replay(r) => {
                let seen = &r.recording.clock;
                let now = seen.get(r.clock_next).or(seen.last()).copied().unwrap_or_else(|| clock.now_ms());
                r.clock_next += 1;
                now
            }
        })
        .unwrap_or_else(|| clock.now_ms())
    }

    /// A new message id (the recorded one, in order, when replaying).
    pub fn message_id(&self) -> String {
        self.with(|m| match m {
            Mode::Record(r) => {
                let id = crate::ids::message_id();
                r.ids.push(id.clone());
                id
            }
            Mode::Replay(r) => {
                let id = r.recording.ids.get(r.ids_next).cloned().unwrap_or_else(crate::ids::message_id);
                r.ids_next += 1;
                id
            }
        })
        .unwrap_or_else(crate::ids::message_id)
    }

    /// When replaying: the recorded value and version of `key` (absent, and
    /// noted, when the recording never read it).
    pub fn replayed_kv(&self, key: &str) -> Option<Option<(Vec<u8>, i64)>> {
        self.with(|m| match m {
            Mode::Record(_) => None,
            Mode::Replay(r) => match r.recording.kv.iter().find(|s| s.key == key) {
                Some(seen) => Some(seen.value.as_ref().map(|v| (v.0.clone(), seen.version))),
                None => {
                    r.note(format!("kv key {key:?} was not read by the recorded invocation: read as absent"));
                    Some(None)
                }
            },
        })
        .flatten()
    }

    pub fn record_kv(&self, key: &str, value: Option<&[u8]>, version: i64) {
        self.with(|m| {
            if let Mode::Record(r) = m
                && !r.kv.iter().any(|s| s.key == key)
            {
                r.kv.push(KvSeen { key: key.to_string(), value: value.map(|v| Blob(v.to_vec())), version });
            }
        });
    }

    pub fn replayed_list(&self, prefix: &str, limit: u32) -> Option<Vec<String>> {
        self.with(|m| match m {
            Mode::Record(_) => None,
            Mode::Replay(r) => {
                let seen = r.recording.lists.iter().find(|l| l.prefix == prefix && l.limit == limit);
                match seen {
                    Some(l) => Some(l.keys.clone()),
                    None => {
                        r.note(format!("kv keys under {prefix:?} were not listed by the recorded invocation: none"));
                        Some(vec![])
                    }
                }
            }
        })
        .flatten()
    }

    pub fn record_list(&self, prefix: &str, limit: u32, keys: &[String]) {
        self.with(|m| {
            if let Mode::Record(r) = m {
                r.lists.push(ListSeen { prefix: prefix.to_string(), limit, keys: keys.to_vec() });
            }
        });
    }

    pub fn replayed_lookup(&self, what: &str, key: &str) -> Option<bool> {
        self.with(|m| match m {
            Mode::Record(_) => None,
            Mode::Replay(r) => {
                Some(r.recording.lookups.iter().find(|l| l.what == what && l.key == key).is_some_and(|l| l.answer))
            }
        })
        .flatten()
    }

    pub fn record_lookup(&self, what: &str, key: &str, answer: bool) {
        self.with(|m| {
            if let Mode::Record(r) = m
                && !r.lookups.iter().any(|l| l.what == what && l.key == key)
            {
                r.lookups.push(LookupSeen { what: what.to_string(), key: key.to_string(), answer });
            }
        });
    }

    /// When replaying: the recorded refusal of `check` for `key`, or a pass.
    pub fn replayed_check(&self, check: &str, key: &str) -> Option<Result<(), Error>> {
        self.with(|m| match m {
            Mode::Record(_) => None,
            Mode::Replay(r) => Some(match r.recording.refusals.iter().find(|f| f.check == check && f.key == key) {
                Some(f) => Err(f.error.error()),
                None => Ok(()),
            }),
        })
        .flatten()
    }

    pub fn record_check(&self, check: &str, key: &str, result: &Result<(), Error>) {
        let Err(e) = result else { return };
        self.with(|m| {
            if let Mode::Record(r) = m {
                r.refusals.push(Refusal {
                    check: check.to_string(),
                    key: key.to_string(),
                    error: RecordedError::of(e),
                });
            }
        });
    }

    /// When replaying: the recorded answer to the same request (method,
    /// URL and body), each used once; an unrecorded request is `internal`.
    pub fn replayed_http(&self, request: &Request) -> Option<Result<Response, Error>> {
        let digest = body_digest(&request.body);
        self.with(|m| match m {
            Mode::Record(_) => None,
            Mode::Replay(r) => {
                let found = r.recording.http.iter().enumerate().position(|(i, h)| {
                    !r.http_used[i] && h.method == request.method && h.url == request.url && h.body_sha256 == digest
                });
                Some(match found {
                    Some(i) => {
                        r.http_used[i] = true;
                        match &r.recording.http[i].result {
                            Ok(resp) => Ok(Response {
                                status: resp.status,
                                headers: resp.headers.clone(),
                                body: resp.body.0.clone(),
                            }),
                            Err(e) => Err(e.error()),
                        }
                    }
                    None => {
                        r.note(format!("{} {} was not made by the recorded invocation", request.method, request.url));
                        Err(Error::Internal("not in the recording: a replay makes no HTTP requests".into()))
                    }
                })
            }
        })
        .flatten()
    }

    pub fn record_http(&self, request: &Request, result: &Result<Response, Error>) {
        self.with(|m| {
            if let Mode::Record(r) = m {
                r.http.push(HttpSeen {
                    method: request.method.clone(),
                    url: request.url.clone(),
                    body_sha256: body_digest(&request.body),
                    result: match result {
                        Ok(resp) => Ok(RecordedResponse {
                            status: resp.status,
                            headers: resp.headers.clone(),
                            body: Blob(resp.body.clone()),
                        }),
                        Err(e) => Err(RecordedError::of(e)),
                    },
                });
            }
        });
    }

    /// The finished recording, serialized (recording mode only), or `None`
    /// when it is over `max_bytes`: such an invocation is not replayable.
    pub fn finish(&self, effects: Option<&Effects>, max_bytes: usize) -> Option<Vec<u8>> {
        self.with(|m| match m {
            Mode::Record(r) => {
                r.effects = effects.map(RecordedEffects::of);
                let bytes = serde_json::to_vec(&**r).expect("a recording serializes");
                (bytes.len() <= max_bytes).then_some(bytes)
            }
            Mode::Replay(_) => None,
        })
        .flatten()
    }

    /// What the replayed version asked for that the recording did not hold.
    pub fn notes(&self) -> Vec<String> {
        self.with(|m| match m {
            Mode::Replay(r) => r.notes.clone(),
            Mode::Record(_) => vec![],
        })
        .unwrap_or_default()
    }
}

/// `wasi:clocks/wall-clock` read through the tape, so a guest's own
/// `Date.now()` or `SystemTime::now()` replays too.
pub(super) struct TapeWallClock {
    pub(super) tape: Tape,
    pub(super) clock: Clock,
}

impl wasmtime_wasi::HostWallClock for TapeWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tape.now(&self.clock).max(0) as u64)
    }
}

/// The sandbox's random sources, from the tape's seed: unpredictable when
/// recording (a fresh seed from the OS), the same when replaying.
pub(super) fn seeded_wasi(builder: &mut wasmtime_wasi::WasiCtxBuilder, seed: [u8; 32]) {
    use wasi_rand::SeedableRng as _;
    let mut insecure = seed;
    insecure[0] ^= 0x5a; // a different stream for the insecure interface
    builder
        .secure_random(wasi_rand::rngs::StdRng::from_seed(seed))
        .insecure_random(wasi_rand::rngs::StdRng::from_seed(insecure))
        .insecure_random_seed(u128::from_le_bytes(seed[..16].try_into().expect("16 bytes")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_text_when_they_can_be() {
        let text = serde_json::to_string(&Blob(b"hello".to_vec())).unwrap();
        assert_eq!(text, "\"hello\"");
        let binary = serde_json::to_string(&Blob(vec![0xff, 0x00])).unwrap();
        assert_eq!(binary, r#"{"base64":"/wA="}"#);
        for json in [text, binary] {
            let back: Blob = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
    }

    #[test]
    fn a_replay_serves_back_what_was_recorded_in_order() {
        let clock = Clock::frozen(1_000);
        let trigger = Trigger::Timer { payload: "x".into() };
        let tape = Tape::record(&trigger, "live");
        assert_eq!(tape.now(&clock), 1_000);
        clock.advance(std::time::Duration::from_millis(5));
        assert_eq!(tape.now(&clock), 1_005);
        let id = tape.message_id();
        tape.record_kv("count", Some(b"3"), 7);
        tape.record_check("consent", "+15550001111", &Err(Error::OptedOut("no".into())));
        tape.record_check("consent", "+15550002222", &Ok(()));
        let bytes = tape.finish(None, 1 << 20).unwrap();
        let recording = Recording::parse(&bytes).unwrap();
        assert_eq!(recording.refusals.len(), 1, "passes are not kept");

        let replay = Tape::replay(recording.clone());
        let later = Clock::frozen(9_999);
        assert_eq!((replay.now(&later), replay.now(&later), replay.now(&later)), (1_000, 1_005, 1_005));
        assert_eq!(replay.message_id(), id);
        assert_eq!(replay.replayed_kv("count"), Some(Some((b"3".to_vec(), 7))));
        assert_eq!(replay.replayed_kv("other"), Some(None));
        assert!(matches!(replay.replayed_check("consent", "+15550001111"), Some(Err(Error::OptedOut(_)))));
        assert!(matches!(replay.replayed_check("consent", "+15550002222"), Some(Ok(()))));
        assert_eq!(replay.notes().len(), 1, "{:?}", replay.notes());
        assert_eq!(replay.seed(), Some(recording.seed_bytes()));
        assert!(replay.finish(None, 1 << 20).is_none());
    }

    #[test]
    fn an_oversized_recording_is_not_kept() {
        let tape = Tape::record(&Trigger::Timer { payload: "x".repeat(100) }, "live");
        assert!(tape.finish(None, 50).is_none());
        assert!(Tape::off().finish(None, 1 << 20).is_none());
    }
}
