//! What a tenant (or the operator, for it) configures: quotas, API rate
//! limits, routes, and compliance — opt-out keywords and their replies,
//! HELP, quiet hours. Stored as JSON with the tenant.

use crate::compliance::Compliance;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// ISO 3166 region for numbers given without a country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    /// API requests per second per key (else the engine default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// API requests per UTC day per key (else the engine default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    /// Outbound routes; they win over the operator's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    pub quotas: Quotas,
    pub compliance: Compliance,
}

/// Per-tenant quotas, set by the operator. Absent: the engine's default
/// (`limits.tenant_*`; see [`Quotas::resolve`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Fuel per invocation (caps the engine limit and the manifest's).
    #[schema(minimum = 1)]
    pub fuel: Option<u64>,
    /// Linear memory per invocation, in bytes.
    #[schema(minimum = 1)]
    pub memory_bytes: Option<usize>,
    /// Plugin invocations per minute; more wait for the next minute.
    #[schema(minimum = 1)]
    pub invocations_per_minute: Option<u32>,
    /// Bytes the tenant's plugins keep in kv (keys and values).
    #[schema(minimum = 1)]
    pub kv_bytes: Option<i64>,
    /// Keys the tenant's plugins keep in kv.
    #[schema(minimum = 1)]
    pub kv_keys: Option<i64>,
    /// Live messages sent per UTC day (API and plugins).
    #[schema(minimum = 1)]
    pub sends_per_day: Option<i64>,
    /// Timers pending at once.
    #[schema(minimum = 1)]
    pub timers_pending: Option<i64>,
}

impl Quotas {
    /// The quotas in force: the tenant's own, else the engine's defaults.
    pub fn resolve(&self, limits: &crate::limits::Limits) -> crate::limits::TenantQuotas {
        crate::limits::TenantQuotas {
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            invocations_per_minute: self.invocations_per_minute.unwrap_or(limits.tenant_invocations_per_minute),
            kv_bytes: self.kv_bytes.unwrap_or(limits.tenant_kv_bytes),
            kv_keys: self.kv_keys.unwrap_or(limits.tenant_kv_keys),
            sends_per_day: self.sends_per_day.unwrap_or(limits.tenant_sends_per_day),
            timers_pending: self.timers_pending.unwrap_or(limits.tenant_timers_pending),
        }
    }
}

/// An outbound route: which connectors carry messages to destinations
/// starting with `prefix` (applied by `pipeline::outbound_routing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the order listed.
    #[default]
    Priority,
    /// Cheapest per segment first (connectors without a price last).
    LeastCost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix, e.g. `+44`; empty matches every destination.
    #[serde(default)]
    #[schema(pattern = "^(\\+[0-9]{0,15})?$")]
    pub prefix: String,
    /// Connector names, in failover order.
    #[schema(min_items = 1)]
    pub connectors: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
}
