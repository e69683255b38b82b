//! What each tenant has used lately — balance, live sends today, kv keys
//! and bytes, pending timers — shared by every invocation on this node, so
//! that enforcing a quota is not a counting query per invocation.
//!
//! A figure is read from the database when missing or older than
//! [`FRESH_FOR`], and moved locally by what this node admits in between
//! (admitted sends count at once, before they commit), so concurrent
//! invocations cannot each spend the same headroom. The next read puts the
//! committed truth back. Only ever used to *admit*: the commit checks the
//! balance again, and a quota can be passed at most by what other nodes
//! admitted within one freshness window.

use crate::clock::Millis;
use crate::store::{Database, StoreResult};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a figure read from the database is trusted.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Per-tenant figures of one kind, each with when it was read.
pub struct Recent<V> {
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { entries: Mutex::default() }
    }
}

impl<V: Clone> Recent<V> {
    pub fn get(&self, tenant_id: &str) -> Option<V> {
        let entries = self.entries.lock().expect("usage lock");
        entries.get(tenant_id).filter(|(_, at)| at.elapsed() < FRESH_FOR).map(|(v, _)| v.clone())
    }

    pub fn put(&self, tenant_id: &str, value: V) {
        self.entries.lock().expect("usage lock").insert(tenant_id.to_string(), (value, Instant::now()));
    }

    /// Moves a fresh figure by what this node just admitted.
    pub fn update(&self, tenant_id: &str, f: impl FnOnce(&mut V)) {
        if let Some((v, _)) = self.entries.lock().expect("usage lock").get_mut(tenant_id) {
            f(v);
        }
    }

    pub fn forget(&self, tenant_id: &str) {
        self.entries.lock().expect("usage lock").remove(tenant_id);
    }
}

#[derive(Default)]
pub struct Usage {
    /// Prepaid balance, in micros.
    pub balances: Recent<i64>,
    /// (start of the UTC day, live sends since).
    sends: Recent<(Millis, i64)>,
    /// (keys, bytes) in kv.
    kv: Recent<(i64, i64)>,
    /// Timers pending.
    timers: Recent<i64>,
}

impl Usage {
    /// Live sends of the tenant today, admitted ones included.
    pub async fn sends_today(&self, db: &dyn Database, tenant_id: &str, now: Millis) -> StoreResult<i64> {
        let day = crate::clock::start_of_utc_day(now);
        if let Some((d, n)) = self.sends.get(tenant_id)
            && d == day
        {
            return Ok(n);
        }
        let n = db.sends_since(tenant_id, day).await?;
        self.sends.put(tenant_id, (day, n));
        Ok(n)
    }

    pub fn admitted_sends(&self, tenant_id: &str, n: i64) {
        self.sends.update(tenant_id, |(_, sent)| *sent += n);
    }

    /// (keys, bytes) the tenant keeps in kv, admitted writes included.
    pub async fn kv(&self, db: &dyn Database, tenant_id: &str) -> StoreResult<(i64, i64)> {
        if let Some(u) = self.kv.get(tenant_id) {
            return Ok(u);
        }
        let u = db.kv_usage(tenant_id).await?;
        self.kv.put(tenant_id, u);
        Ok(u)
    }

    pub fn admitted_kv(&self, tenant_id: &str, keys: i64, bytes: i64) {
        self.kv.update(tenant_id, |(k, b)| {
            *k += keys;
            *b += bytes;
        });
    }

    /// Timers the tenant has pending, admitted ones included.
    pub async fn timers(&self, db: &dyn Database, tenant_id: &str) -> StoreResult<i64> {
        if let Some(n) = self.timers.get(tenant_id) {
            return Ok(n);
        }
        let n = db.timers_pending(tenant_id).await?;
        self.timers.put(tenant_id, n);
        Ok(n)
    }

    pub fn admitted_timer(&self, tenant_id: &str) {
        self.timers.update(tenant_id, |n| *n += 1);
    }
}
