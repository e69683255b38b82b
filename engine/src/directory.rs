//! The in-memory directory: tenants, their numbers, keys' tenants, active
//! plugins and routes, loaded from the store and swapped whole on change.
//!
//! Hot paths (routing an inbound message, authorising a send) read it
//! without touching the database.

use crate::store::{
    ApiKeyRow, CanaryPlan, Database, EventKind, EventRow, NumberRow, PluginVersionRow, RouteKind, SenderIdRow,
    StoreResult, Tenant,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A number or sender ID a tenant sends from, and the connector behind it.
#[derive(Debug, Clone)]
pub struct Sender {
    pub address: String,
    pub connector: String,
    /// The number's inbound webhook app (Twilio's `SmsUrl`), if any.
    pub sms_url: Option<String>,
}

pub use crate::tenancy::TenantSettings;

/// What the engine needs to know about a tenant on hot paths.
#[derive(Debug, Clone)]
pub struct TenantProfile {
    pub id: String,
    pub name: String,
    pub active: bool,
    /// ISO region used to read numbers given without a country code.
    pub default_region: Option<String>,
    pub senders: HashMap<String, Sender>,
    pub default_sender: Option<String>,
    pub settings: TenantSettings,
}

impl TenantProfile {
    pub fn sender(&self, address: &str) -> Option<&Sender> {
        if let Some(s) = self.senders.get(address) {
            return Some(s);
        }
        let normalized = crate::phone::normalize(address, self.default_region.as_deref()).ok()?;
        self.senders.get(&normalized)
    }

    pub fn default_sender(&self) -> Option<&Sender> {
        self.default_sender.as_ref().and_then(|a| self.senders.get(a))
    }
}

/// A deployed plugin (its active version) as the router sees it.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub row: PluginVersionRow,
    pub keywords: Vec<String>,
    pub catch_all: bool,
    pub events: Vec<String>,
    pub delivery: bool,
    /// Cron schedules (expression, parsed), read in `timezone`.
    pub cron: Vec<(String, cron::Schedule)>,
    pub timezone: chrono_tz::Tz,
    /// A version that takes part of the events (on the active version's
    /// triggers), while it is judged.
    pub canary: Option<Arc<Canary>>,
}

/// A plugin's canary: its version and plan.
#[derive(Debug)]
pub struct Canary {
    pub row: PluginVersionRow,
    pub plan: CanaryPlan,
}

impl Canary {
    /// Whether `event` goes to the canary: decided by the customer it is
    /// about, so one customer sees one version (see [`customer_of`]).
    pub fn takes(&self, event: &EventRow) -> bool {
        canary_bucket(&event.plugin_id, &customer_of(event)) < self.plan.percent
    }
}

/// Who an event is about: an inbound message's sender, a delivery
/// report's recipient, and for business events and timers the first of
/// the payload's `to`, `phone`, `customer`, `from` fields that is text;
/// else the event itself.
pub fn customer_of(event: &EventRow) -> String {
    let payload = serde_json::from_str::<serde_json::Value>(&event.payload).ok();
    let field = |names: &[&str]| {
        names.iter().find_map(|n| payload.as_ref()?.get(*n)?.as_str().filter(|s| !s.is_empty()).map(str::to_string))
    };
    let found = match event.kind {
        EventKind::Inbound => field(&["from"]),
        EventKind::Delivery => field(&["to"]),
        _ => field(&["to", "phone", "customer", "from"]),
    };
    found.unwrap_or_else(|| event.id.clone())
}

/// A stable bucket 0–99 of a customer within a plugin (the same on every
/// node and across restarts).
pub fn canary_bucket(plugin_id: &str, customer: &str) -> u8 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(plugin_id).chain_update([0]).chain_update(customer).finalize();
    (u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 100) as u8
}

impl PluginEntry {
    /// Whether the plugin subscribes to business event `name` (`*` matches
    /// all, `order.*` a prefix).
    pub fn wants_event(&self, name: &str) -> bool {
        self.events.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }
}

#[derive(Default)]
pub struct Snapshot {
    pub tenants: HashMap<String, Arc<TenantProfile>>,
    /// Receiving number → tenant id.
    pub numbers: HashMap<String, String>,
    /// Plugin id → plugin.
    pub plugins: HashMap<String, Arc<PluginEntry>>,
    /// (tenant id, plugin name) → plugin id.
    pub plugin_names: HashMap<(String, String), String>,
    /// (tenant id, upper-case keyword) → plugin ids.
    pub keywords: HashMap<(String, String), Vec<String>>,
    /// Tenant id → catch-all plugin ids.
    pub catch_all: HashMap<String, Vec<String>>,
    /// SHA-256 of a key → the key.
    pub api_keys: HashMap<Vec<u8>, ApiKeyRow>,
    /// Twilio-style account SID → the hash of its credential (a key of `api_keys`).
    pub twilio_accounts: HashMap<String, Vec<u8>>,
}

#[derive(Default)]
pub struct Directory {
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time: a reload that read the store earlier must not
    /// finish later and put older state back.
    reloading: tokio::sync::Mutex<()>,
}

impl Directory {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("directory lock").clone()
    }

    /// Rebuilds the directory from the store.
    pub async fn reload(&self, db: &dyn Database) -> StoreResult<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let tenants = db.list_tenants().await?;
        let numbers = db.list_numbers().await?;
        let plugins = db.active_plugins().await?;
        let canaries = db.canaries().await?;
        let sender_ids = db.list_sender_ids().await?;
        let mut snapshot = build(tenants, numbers, sender_ids, plugins, &self.snapshot().plugins);
        for (row, plan) in canaries {
            let Ok(plan) = serde_json::from_str::<CanaryPlan>(&plan) else { continue };
            if let Some(entry) = snapshot.plugins.get_mut(&row.plugin_id) {
                let mut with_canary = PluginEntry::clone(entry);
                with_canary.canary = Some(Arc::new(Canary { row, plan }));
                *entry = Arc::new(with_canary);
            }
        }
        snapshot.api_keys = db.list_api_keys().await?.into_iter().map(|k| (k.hash.clone(), k)).collect();
        snapshot.twilio_accounts = snapshot
            .api_keys
            .values()
            .filter_map(|k| k.twilio.as_ref().map(|t| (t.account_sid.clone(), k.hash.clone())))
            .collect();
        *self.current.write().expect("directory lock") = Arc::new(snapshot);
        Ok(())
    }
}

fn build(
    tenants: Vec<Tenant>,
    numbers: Vec<NumberRow>,
    sender_ids: Vec<SenderIdRow>,
    plugins: Vec<PluginVersionRow>,
    previous: &HashMap<String, Arc<PluginEntry>>,
) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut profiles: HashMap<String, TenantProfile> = tenants
        .into_iter()
        .map(|t| {
            let settings: TenantSettings = serde_json::from_str(&t.settings_json).unwrap_or_default();
            let profile = TenantProfile {
                id: t.id.clone(),
                name: t.name,
                active: t.status == "active",
                default_region: settings.default_region.clone(),
                senders: HashMap::new(),
                default_sender: None,
                settings,
            };
            (t.id, profile)
        })
        .collect();
    for n in numbers {
        snap.numbers.insert(n.number.clone(), n.tenant_id.clone());
        if let Some(p) = profiles.get_mut(&n.tenant_id) {
            if n.is_default || p.default_sender.is_none() {
                p.default_sender = Some(n.number.clone());
            }
            p.senders
                .insert(n.number.clone(), Sender { address: n.number, connector: n.connector, sms_url: n.sms_url });
        }
    }
    // Alphanumeric sender IDs send through the tenant's default number's
    // connector (they cannot receive).
    for SenderIdRow { tenant_id, sender_id, status, .. } in sender_ids {
        // Pending and rejected sender IDs send nothing.
        if status != "approved" {
            continue;
        }
        if let Some(p) = profiles.get_mut(&tenant_id) {
            let connector = p.default_sender().map_or_else(|| "simulator".to_string(), |s| s.connector.clone());
            p.senders.insert(sender_id.clone(), Sender { address: sender_id, connector, sms_url: None });
        }
    }
    snap.tenants = profiles.into_iter().map(|(id, p)| (id, Arc::new(p))).collect();
    for row in plugins {
        // A version's manifest never changes: parse it once, not at every reload.
        let entry = match previous.get(&row.plugin_id).filter(|p| p.row.version_id == row.version_id) {
            Some(known) => PluginEntry { row, canary: None, ..PluginEntry::clone(known) },
            None => entry_of(row),
        };
        let tenant = entry.row.tenant_id.clone();
        let id = entry.row.plugin_id.clone();
        snap.plugin_names.insert((tenant.clone(), entry.row.name.clone()), id.clone());
        if entry.row.status == "active" {
            for k in &entry.keywords {
                snap.keywords.entry((tenant.clone(), k.clone())).or_default().push(id.clone());
            }
            if entry.catch_all {
                snap.catch_all.entry(tenant.clone()).or_default().push(id.clone());
            }
        }
        snap.plugins.insert(id, Arc::new(entry));
    }
    snap
}

/// A plugin version's triggers, read from its stored manifest.
fn entry_of(row: PluginVersionRow) -> PluginEntry {
    let manifest = crate::manifest::stored(&row.manifest_json);
    let mut entry = PluginEntry {
        row,
        keywords: vec![],
        catch_all: false,
        events: vec![],
        delivery: false,
        cron: manifest.triggers.schedules(),
        timezone: manifest.triggers.zone(),
        canary: None,
    };
    for r in manifest.routes() {
        match r.kind {
            RouteKind::Keyword => entry.keywords.push(r.pattern),
            RouteKind::CatchAll => entry.catch_all = true,
            RouteKind::Event => entry.events.push(r.pattern),
            RouteKind::Delivery => entry.delivery = true,
        }
    }
    entry
}
