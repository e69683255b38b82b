//! SMPP 3.4: an ESME client over TCP (tokio), PDUs encoded by `rusmpp`.
//!
//! One session per connector, kept up by a background task: connect,
//! `bind_transceiver` (system_id, password), then read and write until the
//! link drops, and reconnect with exponential backoff. While bound:
//!
//! - `submit_sm` per part: GSM 03.38 (`data_coding` 0, one octet per
//!   septet) or UCS-2 (`data_coding` 8); long texts as concatenated parts
//!   with an 8-bit-reference UDH (`esm_class` UDHI). At most `window`
//!   PDUs are outstanding; each waits for its response by sequence number.
//! - `enquire_link` every `enquire_link_s`; a missing answer drops the link.
//! - `deliver_sm` is a delivery receipt (`esm_class` receipt bit: the
//!   receipt text's `id:` and `stat:` and `err:`, or the TLVs) or an MO
//!   message (UDH parts reassembled). It is answered only once recorded,
//!   so a crash loses nothing the SMSC handed over.
//! - `ESME_RTHROTTLED` and a full queue mean slow down; a dropped link
//!   fails the PDUs in flight as transient (they are sent again, at least
//!   once); other error statuses are permanent.
//! - On shutdown, `unbind`.

pub mod pdu;
pub mod receipt;

use super::gate::GateSettings;
use super::{Accepted, Acked, Connector, ConnectorError, Context, OutboundSms};
use crate::secrets::Secret;
use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::{Command, CommandStatus, Pdu};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::codec::Framed;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppSettings {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: Secret,
    #[serde(default)]
    pub system_type: String,
    /// Outstanding PDUs at most. Default 10.
    #[serde(default = "default_window")]
    pub window: u32,
    /// Seconds between keep-alives. Default 30.
    #[serde(default = "default_enquire_link")]
    pub enquire_link_s: u64,
    /// Time the SMSC has to answer a PDU. Default 10 s.
    #[serde(default = "default_response_timeout")]
    pub response_timeout_ms: u64,
    /// First reconnect delay; doubles up to `reconnect_max_ms`. Default 200 ms.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    /// Default 30 s.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    #[serde(default)]
    pub gate: GateSettings,
}

fn default_window() -> u32 {
    10
}
fn default_enquire_link() -> u64 {
    30
}
fn default_response_timeout() -> u64 {
    10_000
}
fn default_reconnect_initial() -> u64 {
    200
}
fn default_reconnect_max() -> u64 {
    30_000
}

/// A bound session: how to write, and who waits for which response.
struct Session {
    outgoing: mpsc::UnboundedSender<Command>,
    pending: Mutex<HashMap<u32, oneshot::Sender<Command>>>,
    /// Set when the link is found dead (an unanswered keep-alive).
    broken: tokio_util::sync::CancellationToken,
}

struct Shared {
    name: String,
    settings: SmppSettings,
    ctx: Context,
    session: watch::Sender<Option<Arc<Session>>>,
    sequence: AtomicU32,
    window: Arc<Semaphore>,
    concat_ref: AtomicU8,
    stop: tokio_util::sync::CancellationToken,
}

impl Shared {
    fn next_sequence(&self) -> u32 {
        // 1 ..= 0x7FFFFFFF, wrapping.
        (self.sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF) + 1
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.response_timeout_ms)
    }
}

pub struct Smpp {
    shared: Arc<Shared>,
}

impl Smpp {
    /// Starts the session task; sends wait for the bind.
    pub fn start(name: String, settings: SmppSettings, ctx: Context) -> Result<Self, String> {
        if settings.window == 0 {
            return Err("window must be positive".into());
        }
        let shared = Arc::new(Shared {
            name,
            window: Arc::new(Semaphore::new(settings.window as usize)),
            settings,
            ctx,
            session: watch::channel(None).0,
            sequence: AtomicU32::new(0),
            concat_ref: AtomicU8::new(rand::random()),
            stop: tokio_util::sync::CancellationToken::new(),
        });
        tokio::spawn(keep_bound(shared.clone()));
        Ok(Smpp { shared })
    }

    /// Whether a session is bound now.
    pub fn is_bound(&self) -> bool {
        self.shared.session.borrow().is_some()
    }
}

impl Drop for Smpp {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Sends `cmd` on `session` and waits for its response.
async fn request(shared: &Shared, session: &Session, pdu: impl Into<Pdu>) -> Result<Command, ConnectorError> {
    let sequence = shared.next_sequence();
    let (tx, rx) = oneshot::channel();
    session.pending.lock().expect("pending lock").insert(sequence, tx);
    if session.outgoing.send(Command::new(CommandStatus::EsmeRok, sequence, pdu)).is_err() {
        session.pending.lock().expect("pending lock").remove(&sequence);
        return Err(ConnectorError::transient("SMPP link lost"));
    }
    match tokio::time::timeout(shared.response_timeout(), rx).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(_)) => Err(ConnectorError::transient("SMPP link lost before the SMSC answered")),
        Err(_) => {
            session.pending.lock().expect("pending lock").remove(&sequence);
            Err(ConnectorError::transient("the SMSC did not answer in time"))
        }
    }
}

#[async_trait]
impl Connector for Smpp {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn close(&self) {
        self.shared.stop.cancel();
        // The session task unbinds, then clears the session.
        let mut session = self.shared.session.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(3), session.wait_for(Option::is_none)).await;
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
        let shared = &self.shared;
        let mut bound = shared.session.subscribe();
        let session = match tokio::time::timeout(shared.response_timeout(), bound.wait_for(Option::is_some)).await {
            Ok(Ok(s)) => s.clone().expect("waited for a session"),
            _ => return Err(ConnectorError::transient("not bound to the SMSC")),
        };
        let reference = shared.concat_ref.fetch_add(1, Ordering::Relaxed);
        let parts = pdu::submit_parts(sms, reference)
            .map_err(|e| ConnectorError::Permanent { code: "INVALID_MESSAGE".into(), message: e })?;
        let mut ids = Vec::with_capacity(parts.len());
        for part in parts {
            let _slot = shared.window.clone().acquire_owned().await.expect("window is never closed");
            let response = request(shared, &session, part).await?;
            match response.pdu() {
                Some(Pdu::SubmitSmResp(resp)) if response.status() == CommandStatus::EsmeRok => {
                    ids.push(resp.message_id().to_string());
                }
                _ => return Err(pdu::classify(response.status())),
            }
        }
        Ok(Accepted { provider_ids: ids })
    }
}

/// Keeps a session bound until the connector is dropped.
async fn keep_bound(shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(shared.settings.reconnect_initial_ms);
    let max = Duration::from_millis(shared.settings.reconnect_max_ms);
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        match run_session(&shared).await {
            Ok(()) => return, // unbound on purpose
            Err(SessionEnd::Bound(reason)) => {
                tracing::warn!(connector = %shared.name, %reason, "SMPP link lost; reconnecting");
                delay = Duration::from_millis(shared.settings.reconnect_initial_ms);
            }
            Err(SessionEnd::NotBound(reason)) => {
                tracing::warn!(connector = %shared.name, %reason, retry_in = ?delay, "SMPP bind failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.stop.cancelled() => return,
        }
        delay = (delay * 2).min(max);
    }
}

enum SessionEnd {
    /// Failed before the bind: back off further.
    NotBound(String),
    /// A bound session ended: reconnect promptly.
    Bound(String),
}

async fn run_session(shared: &Arc<Shared>) -> Result<(), SessionEnd> {
    let s = &shared.settings;
    let addr = format!("{}:{}", s.host, s.port);
    let stream = tokio::time::timeout(shared.response_timeout(), TcpStream::connect(&addr))
        .await
        .map_err(|_| SessionEnd::NotBound(format!("connecting to {addr} timed out")))?
        .map_err(|e| SessionEnd::NotBound(format!("cannot connect to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, CommandCodec::new());

    // Bind.
    let bind_sequence = shared.next_sequence();
    framed
        .send(Command::new(CommandStatus::EsmeRok, bind_sequence, pdu::bind(s).map_err(SessionEnd::NotBound)?))
        .await
        .map_err(|e| SessionEnd::NotBound(format!("bind not sent: {e}")))?;
    let bound = tokio::time::timeout(shared.response_timeout(), framed.next())
        .await
        .map_err(|_| SessionEnd::NotBound("no bind response".into()))?;
    match bound {
        Some(Ok(resp)) if matches!(resp.pdu(), Some(Pdu::BindTransceiverResp(_))) => {
            if resp.status() != CommandStatus::EsmeRok {
                return Err(SessionEnd::NotBound(format!("bind refused: {:?}", resp.status())));
            }
        }
        Some(Ok(other)) => return Err(SessionEnd::NotBound(format!("unexpected answer to bind: {:?}", other.id()))),
        Some(Err(e)) => return Err(SessionEnd::NotBound(format!("bad bind response: {e}"))),
        None => return Err(SessionEnd::NotBound("the SMSC closed the connection".into())),
    }
    tracing::info!(connector = %shared.name, "SMPP bound");

    let (outgoing, mut to_write) = mpsc::unbounded_channel::<Command>();
    let session = Arc::new(Session { outgoing, pending: Mutex::default(), broken: Default::default() });
    shared.session.send_replace(Some(session.clone()));
    let (mut sink, mut stream) = framed.split();
    let writer = tokio::spawn(async move {
        while let Some(cmd) = to_write.recv().await {
            if sink.send(cmd).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let keepalive = Duration::from_secs(shared.settings.enquire_link_s.max(1));
    let mut ticker = tokio::time::interval(keepalive);
    ticker.tick().await;
    let end: Result<(), String> = loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                // A polite goodbye; the answer is not awaited for long.
                let _ = session.outgoing.send(Command::new(CommandStatus::EsmeRok, shared.next_sequence(), Pdu::Unbind));
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(cmd)) = stream.next().await {
                        if matches!(cmd.pdu(), Some(Pdu::UnbindResp)) {
                            break;
                        }
                    }
                })
                .await;
                break Ok(());
            }
            _ = session.broken.cancelled() => break Err("the SMSC did not answer a keep-alive".into()),
            _ = ticker.tick() => {
                let (shared, session) = (shared.clone(), session.clone());
                tokio::spawn(async move {
                    if request(&shared, &session, Pdu::EnquireLink).await.is_err() {
                        session.broken.cancel();
                    }
                });
            }
            next = stream.next() => match next {
                None => break Err("the SMSC closed the connection".into()),
                Some(Err(e)) => break Err(format!("undecodable PDU: {e}")),
                Some(Ok(cmd)) => {
                    if let Some(reason) = handle_incoming(shared, &session, cmd) {
                        break Err(reason);
                    }
                }
            },
        }
    };
    shared.session.send_replace(None);
    // Whoever waits on this session learns the link is gone.
    session.pending.lock().expect("pending lock").clear();
    drop(session);
    writer.abort();
    end.map_err(SessionEnd::Bound)
}

/// Handles one PDU from the SMSC; `Some(reason)` ends the session.
fn handle_incoming(shared: &Arc<Shared>, session: &Arc<Session>, cmd: Command) -> Option<String> {
    let sequence = cmd.sequence_number();
    let reply = |pdu: Pdu, status: CommandStatus| {
        let _ = session.outgoing.send(Command::new(status, sequence, pdu));
    };
    match cmd.pdu() {
        Some(Pdu::DeliverSm(deliver)) => {
            let received = pdu::parse_deliver(&shared.name, deliver, shared.ctx.clock.now_ms()).storable();
            let sinks = shared.ctx.sinks.clone();
            let outgoing = session.outgoing.clone();
            // Answered once recorded; other PDUs keep flowing meanwhile.
            tokio::spawn(async move {
                let recorded = match received {
                    pdu::Delivered::Receipt(r) => {
                        let (acked, done) = Acked::acknowledged(r);
                        sinks.reports.send(acked);
                        done.await.is_ok()
                    }
                    pdu::Delivered::Message(m) => {
                        let (acked, done) = Acked::acknowledged(m);
                        sinks.inbound.send(acked);
                        done.await.is_ok()
                    }
                    pdu::Delivered::Part(p) => {
                        let (acked, done) = Acked::acknowledged(p);
                        sinks.parts.send(acked);
                        done.await.is_ok()
                    }
                    pdu::Delivered::Unreadable(reason) => {
                        tracing::warn!(%reason, "unreadable deliver_sm acknowledged and dropped");
                        true
                    }
                };
                // A temporary application error asks the SMSC to retry.
                let status = if recorded { CommandStatus::EsmeRok } else { CommandStatus::Other(0x64) };
                let _ = outgoing.send(Command::new(status, sequence, Pdu::DeliverSmResp(Default::default())));
            });
            None
        }
        Some(Pdu::EnquireLink) => {
            reply(Pdu::EnquireLinkResp, CommandStatus::EsmeRok);
            None
        }
        Some(Pdu::Unbind) => {
            reply(Pdu::UnbindResp, CommandStatus::EsmeRok);
            Some("the SMSC unbound".into())
        }
        // Responses (and generic_nack) go to whoever waits for them.
        _ => {
            if let Some(waiter) = session.pending.lock().expect("pending lock").remove(&sequence) {
                let _ = waiter.send(cmd);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests;
