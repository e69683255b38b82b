//! Carrier connectors behind one trait, listed in one table ([`build`]).
//!
//! A connector hands one message to its carrier and says what became of
//! the attempt: accepted (with the carrier's id), a transient failure worth
//! retrying, or a permanent one. Delivery reports arrive later, through the
//! connector's webhook or session, as [`DeliveryUpdate`]s on the sink.

pub mod simulator;

use crate::clock::Clock;
use crate::store::DeliveryUpdate;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A message as a connector sends it.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub message_id: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub reference: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Accepted {
    pub provider_id: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// Worth retrying (timeouts, 5xx, throttling, lost connections).
    #[error("transient carrier failure: {message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying cannot help (invalid number, rejected credentials...).
    #[error("carrier refused the message ({code}): {message}")]
    Permanent { code: String, message: String },
}

#[async_trait]
pub trait Connector: Send + Sync {
    fn name(&self) -> &str;
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ConnectorError>;
}

/// Where connectors deliver the reports they receive.
pub type DeliverySink = crate::pipeline::Tracked<DeliveryUpdate>;

/// Connector settings, by name, from the `[connectors.NAME]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConnectorSettings {
    Simulator(simulator::SimulatorSettings),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorSetupError {
    #[error("connector {name}: {message}")]
    Invalid { name: String, message: String },
}

pub struct Connectors {
    by_name: HashMap<String, Arc<dyn Connector>>,
    simulator: Option<Arc<simulator::Simulator>>,
    sandbox: Option<Arc<simulator::Simulator>>,
}

impl Connectors {
    pub fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.by_name.get(name).cloned()
    }

    /// The simulator named `simulator` (always configured).
    pub fn simulator(&self) -> Option<Arc<simulator::Simulator>> {
        self.simulator.clone()
    }

    /// The sandbox that test-mode messages go to.
    pub fn sandbox(&self) -> Option<Arc<simulator::Simulator>> {
        self.sandbox.clone()
    }
}

/// Builds every configured connector. The one place that knows them all.
pub fn build(
    settings: &HashMap<String, ConnectorSettings>,
    sink: DeliverySink,
    clock: &Clock,
) -> Result<Connectors, ConnectorSetupError> {
    let mut by_name: HashMap<String, Arc<dyn Connector>> = HashMap::new();
    let mut all = settings.clone();
    all.entry("simulator".to_string()).or_insert_with(|| ConnectorSettings::Simulator(Default::default()));
    // Test-mode keys send here and only here.
    all.insert(
        crate::pipeline::outbound::SANDBOX_CONNECTOR.to_string(),
        ConnectorSettings::Simulator(simulator::SimulatorSettings::sandbox()),
    );
    let (mut default_simulator, mut sandbox) = (None, None);
    for (name, s) in all {
        match s {
            ConnectorSettings::Simulator(cfg) => {
                let sim = Arc::new(simulator::Simulator::new(name.clone(), cfg, sink.clone(), clock.clone()));
                match name.as_str() {
                    "simulator" => default_simulator = Some(sim.clone()),
                    crate::pipeline::outbound::SANDBOX_CONNECTOR => sandbox = Some(sim.clone()),
                    _ => {}
                }
                by_name.insert(name, sim);
            }
        }
    }
    Ok(Connectors { by_name, simulator: default_simulator, sandbox })
}
