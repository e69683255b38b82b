//! The simulator: a carrier that lives in the engine, for demos, tests and
//! development. It records what it is asked to send, answers with its own
//! ids, and reports delivery: `delivered` unless the destination is listed
//! under `outcomes` (e.g. `"+15550009999" = "undelivered:30003"`, or
//! `"failed:21211"` to refuse at send time, or `"timeout"` to fail
//! transiently). Its reports live in memory: those not yet emitted when
//! the process dies are lost, as a real carrier's are once its webhook
//! retries run out.

use super::gate::GateSettings;
use super::{Accepted, Connector, ConnectorError, Context, OutboundSms, ProviderReport};
use crate::store::MessageStatus;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Destination number → outcome (`delivered`, `undelivered:CODE`,
    /// `expired`, `failed:CODE`, `timeout`).
    pub outcomes: HashMap<String, String>,
    pub gate: GateSettings,
}

/// The sandbox's magic destinations (test-mode keys): any other number is
/// delivered.
pub const SANDBOX_OUTCOMES: [(&str, &str); 5] = [
    ("+15550100001", "delivered"),
    ("+15550100002", "undelivered:30003"),
    ("+15550100003", "failed:21211"),
    ("+15550100004", "timeout"),
    ("+15550100005", "expired"),
];

impl SimulatorSettings {
    pub fn sandbox() -> Self {
        SimulatorSettings {
            outcomes: SANDBOX_OUTCOMES.iter().map(|(n, o)| (n.to_string(), o.to_string())).collect(),
            gate: GateSettings::default(),
        }
    }
}

/// A message the simulator "sent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedSms {
    pub provider_id: String,
    pub message_id: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
}

pub struct Simulator {
    name: String,
    settings: SimulatorSettings,
    ctx: Context,
    /// Ids are `SIM` + this process's start (base 36) + a counter: unique
    /// across restarts, as a real carrier's are.
    id_prefix: String,
    next_id: AtomicU64,
    sent: Mutex<Vec<SimulatedSms>>,
    count: watch::Sender<usize>,
}

impl Simulator {
    pub fn new(name: String, settings: SimulatorSettings, ctx: Context) -> Self {
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
                ^ u64::from(rand::random::<u16>());
        Simulator {
            name,
            settings,
            ctx,
            id_prefix: format!("SIM{}-", base36(started)),
            next_id: AtomicU64::new(1),
            sent: Mutex::default(),
            count: watch::channel(0).0,
        }
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<SimulatedSms> {
        self.sent.lock().expect("simulator lock").clone()
    }

    /// Waits until at least `n` messages have been sent; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<SimulatedSms> {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
        self.sent()
    }
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

#[async_trait]
impl Connector for Simulator {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError> {
        let outcome = self.settings.outcomes.get(&sms.to).map(String::as_str).unwrap_or("delivered");
        let (kind, code) = outcome.split_once(':').unwrap_or((outcome, ""));
        match kind {
            "timeout" => return Err(ConnectorError::transient("simulated carrier timeout")),
            "failed" => {
                return Err(ConnectorError::Permanent {
                    code: code.to_string(),
                    message: "simulated carrier rejection".into(),
                });
            }
            _ => {}
        }
        let provider_id = format!("{}{:010}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed));
        self.sent.lock().expect("simulator lock").push(SimulatedSms {
            provider_id: provider_id.clone(),
            message_id: sms.message_id.clone(),
            tenant_id: sms.tenant_id.clone(),
            from: sms.from.clone(),
            to: sms.to.clone(),
            body: sms.body.clone(),
        });
        self.count.send_modify(|n| *n += 1);
        let status = match kind {
            "undelivered" => MessageStatus::Undelivered,
            "expired" => MessageStatus::Expired,
            _ => MessageStatus::Delivered,
        };
        let report = ProviderReport {
            connector: self.name.clone(),
            provider_id: provider_id.clone(),
            status,
            error_code: (!code.is_empty()).then(|| code.to_string()),
            at: self.ctx.clock.now_ms(),
        };
        // A real carrier reports after it has answered the send.
        let reports = self.ctx.sinks.reports.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            reports.send(super::Acked::new(report));
        });
        Ok(Accepted { provider_ids: vec![provider_id] })
    }
}
