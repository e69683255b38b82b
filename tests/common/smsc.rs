//! A small SMSC for the tests: an SMPP 3.4 server on loopback (PDUs by
//! `rusmpp`, as on the wire). It checks the bind's credentials, answers
//! `submit_sm` with message ids, sends a delivery receipt per part, and
//! can misbehave on demand: throttle the next submits (`ESME_RTHROTTLED`),
//! or drop the TCP connection once some submits are in flight unanswered.
//! It can also deliver MO messages to the bound ESME.

use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiverResp, DeliverSm, SubmitSmResp};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass};
use rusmpp::{Command, CommandStatus, Pdu};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::Framed;

/// A `submit_sm` the SMSC received.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub source: String,
    pub destination: String,
    pub esm_class: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
    /// The id it answered with (none if it never answered).
    pub message_id: Option<String>,
}

impl Submitted {
    /// (reference, total, sequence) from an 8-bit-reference UDH.
    pub fn concat(&self) -> Option<(u8, u8, u8)> {
        if self.esm_class & 0x40 == 0 {
            return None;
        }
        match &self.short_message[..6] {
            [0x05, 0x00, 0x03, r, t, s] => Some((*r, *t, *s)),
            _ => None,
        }
    }

    /// The payload without its UDH, as text.
    pub fn text(&self) -> String {
        let payload = if self.esm_class & 0x40 != 0 { &self.short_message[6..] } else { &self.short_message[..] };
        match self.data_coding {
            8 => switchboard::sms::encoding::decode_ucs2(payload),
            _ => switchboard::sms::encoding::decode_gsm7(payload),
        }
    }
}

#[derive(Default)]
struct State {
    submits: Mutex<Vec<Submitted>>,
    arrived: Notify,
    binds: AtomicUsize,
    unbinds: AtomicUsize,
    next_id: AtomicU32,
    /// Throttle this many of the next submits.
    throttle: AtomicUsize,
    /// Once this many more submits arrived, leave them unanswered and drop
    /// the connection.
    drop_after: Mutex<Option<usize>>,
    /// The bound session's writer, to deliver MO messages.
    session: Mutex<Option<mpsc::UnboundedSender<Command>>>,
}

#[derive(Clone)]
pub struct Smsc {
    pub port: u16,
    state: Arc<State>,
}

pub const SYSTEM_ID: &str = "switchbd";
pub const PASSWORD: &str = "s3cr3t!";

impl Smsc {
    pub async fn start() -> Smsc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(s.clone(), stream));
            }
        });
        Smsc { port, state }
    }

    /// Connector settings (TOML) for this SMSC.
    pub fn connector_toml(&self, extra: &str) -> String {
        format!(
            "kind = \"smpp\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"{SYSTEM_ID}\"\npassword = \"{PASSWORD}\"\n\
             reconnect_initial_ms = 20\nreconnect_max_ms = 200\nresponse_timeout_ms = 5000\n{extra}",
            self.port
        )
    }

    pub fn throttle_next(&self, n: usize) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    pub fn drop_connection_after(&self, n: usize) {
        *self.state.drop_after.lock().unwrap() = Some(n);
    }

    pub fn binds(&self) -> usize {
        self.state.binds.load(Ordering::SeqCst)
    }

    pub fn unbinds(&self) -> usize {
        self.state.unbinds.load(Ordering::SeqCst)
    }

    pub fn submits(&self) -> Vec<Submitted> {
        self.state.submits.lock().unwrap().clone()
    }

    /// Waits until `n` submits were answered with an id.
    pub async fn wait_accepted(&self, n: usize) -> Vec<Submitted> {
        tokio::time::timeout(super::GUARD, async {
            loop {
                let notified = self.state.arrived.notified();
                let accepted: Vec<Submitted> = self.submits().into_iter().filter(|s| s.message_id.is_some()).collect();
                if accepted.len() >= n {
                    return accepted;
                }
                notified.await;
            }
        })
        .await
        .expect("the SMSC accepted the submits")
    }

    /// Waits until an ESME is bound.
    pub async fn wait_bound(&self) {
        tokio::time::timeout(super::GUARD, async {
            loop {
                let notified = self.state.arrived.notified();
                if self.state.session.lock().unwrap().is_some() {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("an ESME bound")
    }

    /// Delivers an MO message (GSM text) to the bound ESME.
    pub fn deliver_mo(&self, from: &str, to: &str, text: &str) {
        let deliver = DeliverSm::builder()
            .source_addr(COctetString::from_str(from).unwrap())
            .destination_addr(COctetString::from_str(to).unwrap())
            .data_coding(DataCoding::from(0u8))
            .short_message(OctetString::from_vec(switchboard::sms::encoding::encode_gsm7(text).unwrap()).unwrap())
            .build();
        let seq = 0x4000_0000 + self.state.next_id.fetch_add(1, Ordering::SeqCst);
        let session = self.state.session.lock().unwrap().clone().expect("a bound session");
        session.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::DeliverSm(deliver))).unwrap();
    }
}

fn receipt(id: &str, destination: &str) -> Pdu {
    let text =
        format!("id:{id} sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:");
    Pdu::DeliverSm(
        DeliverSm::builder()
            .source_addr(COctetString::from_str(destination).unwrap())
            .destination_addr(COctetString::from_str("0").unwrap())
            .esm_class(EsmClass::from(0x04u8))
            .short_message(OctetString::from_vec(text.into_bytes()).unwrap())
            .build(),
    )
}

async fn serve(state: Arc<State>, stream: tokio::net::TcpStream) {
    let (mut sink, mut source) = Framed::new(stream, CommandCodec::new()).split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let writer = tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if sink.send(cmd).await.is_err() {
                break;
            }
        }
    });
    let mut unanswered = 0;
    while let Some(Ok(cmd)) = source.next().await {
        let seq = cmd.sequence_number();
        let answer = |status: CommandStatus, pdu: Pdu| {
            let _ = tx.send(Command::new(status, seq, pdu));
        };
        match cmd.pdu() {
            Some(Pdu::BindTransceiver(bind)) => {
                let ok = bind.system_id.as_str() == SYSTEM_ID && bind.password.as_str() == PASSWORD;
                let status = if ok { CommandStatus::EsmeRok } else { CommandStatus::EsmeRinvpaswd };
                answer(
                    status,
                    Pdu::BindTransceiverResp(
                        BindTransceiverResp::builder().system_id(COctetString::from_str("smsc").unwrap()).build(),
                    ),
                );
                if ok {
                    state.binds.fetch_add(1, Ordering::SeqCst);
                    *state.session.lock().unwrap() = Some(tx.clone());
                    state.arrived.notify_waiters();
                }
            }
            Some(Pdu::SubmitSm(submit)) => {
                let mut record = Submitted {
                    source: submit.source_addr.as_str().to_string(),
                    destination: submit.destination_addr.as_str().to_string(),
                    esm_class: u8::from(submit.esm_class),
                    data_coding: u8::from(submit.data_coding),
                    short_message: submit.short_message().as_ref().to_vec(),
                    message_id: None,
                };
                let dropping = {
                    let mut drop_after = state.drop_after.lock().unwrap();
                    match *drop_after {
                        Some(n) => {
                            unanswered += 1;
                            if unanswered >= n {
                                *drop_after = None;
                            }
                            Some(unanswered >= n)
                        }
                        None => None,
                    }
                };
                match dropping {
                    Some(drop_now) => {
                        state.submits.lock().unwrap().push(record);
                        state.arrived.notify_waiters();
                        if drop_now {
                            // Mid-window: the submits in flight never get an answer.
                            break;
                        }
                        continue;
                    }
                    None => {}
                }
                if state.throttle.load(Ordering::SeqCst) > 0 {
                    state.throttle.fetch_sub(1, Ordering::SeqCst);
                    state.submits.lock().unwrap().push(record);
                    answer(CommandStatus::EsmeRthrottled, Pdu::SubmitSmResp(SubmitSmResp::builder().build()));
                    state.arrived.notify_waiters();
                    continue;
                }
                let id = format!("{:08X}", 0x1000 + state.next_id.fetch_add(1, Ordering::SeqCst));
                record.message_id = Some(id.clone());
                let destination = record.destination.clone();
                state.submits.lock().unwrap().push(record);
                answer(
                    CommandStatus::EsmeRok,
                    Pdu::SubmitSmResp(SubmitSmResp::builder().message_id(COctetString::from_str(&id).unwrap()).build()),
                );
                let receipt_seq = 0x2000_0000 + state.next_id.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(Command::new(CommandStatus::EsmeRok, receipt_seq, receipt(&id, &destination)));
                state.arrived.notify_waiters();
            }
            Some(Pdu::EnquireLink) => answer(CommandStatus::EsmeRok, Pdu::EnquireLinkResp),
            Some(Pdu::Unbind) => {
                state.unbinds.fetch_add(1, Ordering::SeqCst);
                answer(CommandStatus::EsmeRok, Pdu::UnbindResp);
                break;
            }
            // deliver_sm_resp and the like need nothing.
            _ => {}
        }
    }
    *state.session.lock().unwrap() = None;
    writer.abort();
}
