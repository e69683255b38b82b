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

/// Per-tenant figures of one kind, each with when it was read and whether
/// a read of it is under way.
pub struct Recent<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    read_at: Instant,
    refreshing: bool,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { entries: Mutex::default() }
    }
}

/// What [`Recent::lookup`] found.
pub enum Lookup<V> {
    /// Fresh, or stale while another caller reads it again: use it.
    Use(V),
    /// Read it from the database (this caller is the one reading).
    Read,
}

impl<V: Clone> Recent<V> {
    pub fn get(&self, tenant_id: &str) -> Option<V> {
        let entries = self.entries.lock().expect("usage lock");
        entries.get(tenant_id).filter(|e| e.read_at.elapsed() < FRESH_FOR).map(|e| e.value.clone())
    }

    /// The figure, or the news that this caller is to read it. When it is
    /// stale, one caller reads it while the others go on with the stale
    /// figure (moved by what they admit): no stampede of counting queries
    /// every second.
    pub fn lookup(&self, tenant_id: &str) -> Lookup<V> {
        let mut entries = self.entries.lock().expect("usage lock");
        match entries.get_mut(tenant_id) {
            Some(e) if e.read_at.elapsed() < FRESH_FOR || e.refreshing => Lookup::Use(e.value.clone()),
            Some(e) => {
                e.refreshing = true;
                Lookup::Read
            }
            None => Lookup::Read,
        }
    }

    pub fn put(&self, tenant_id: &str, value: V) {
        let entry = Entry { value, read_at: Instant::now(), refreshing: false };
        self.entries.lock().expect("usage lock").insert(tenant_id.to_string(), entry);
    }

    /// A read that failed: the next caller tries again.
    pub fn read_failed(&self, tenant_id: &str) {
        if let Some(e) = self.entries.lock().expect("usage lock").get_mut(tenant_id) {
            e.refreshing = false;
        }
    }

    /// Moves a figure by what this node just admitted.
    pub fn update(&self, tenant_id: &str, f: impl FnOnce(&mut V)) {
        if let Some(e) = self.entries.lock().expect("usage lock").get_mut(tenant_id) {
            f(&mut e.value);
        }
    }

    pub fn forget(&self, tenant_id: &str) {
        self.entries.lock().expect("usage lock").remove(tenant_id);
    }

    /// The figure, read through `read` when this caller is the one to.
    async fn through<F, Fut>(&self, tenant_id: &str, read: F) -> StoreResult<V>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = StoreResult<V>>,
    {
        if let Lookup::Use(v) = self.lookup(tenant_id) {
            return Ok(v);
        }
        match read().await {
            Ok(v) => {
                self.put(tenant_id, v.clone());
                Ok(v)
            }
            Err(e) => {
                self.read_failed(tenant_id);
                Err(e)
            }
        }
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
        if let Lookup::Use((d, n)) = self.sends.lookup(tenant_id)
            && d == day
        {
            return Ok(n);
        }
        let n = match db.sends_since(tenant_id, day).await {
            Ok(n) => n,
            Err(e) => {
                self.sends.read_failed(tenant_id);
                return Err(e);
            }
        };
        self.sends.put(tenant_id, (day, n));
        Ok(n)
    }

    pub fn admitted_sends(&self, tenant_id: &str, n: i64) {
        self.sends.update(tenant_id, |(_, sent)| *sent += n);
    }

    /// (keys, bytes) the tenant keeps in kv, admitted writes included.
    pub async fn kv(&self, db: &dyn Database, tenant_id: &str) -> StoreResult<(i64, i64)> {
        self.kv.through(tenant_id, || db.kv_usage(tenant_id)).await
    }

    pub fn admitted_kv(&self, tenant_id: &str, keys: i64, bytes: i64) {
        self.kv.update(tenant_id, |(k, b)| {
            *k += keys;
            *b += bytes;
        });
    }

    /// Timers the tenant has pending, admitted ones included.
    pub async fn timers(&self, db: &dyn Database, tenant_id: &str) -> StoreResult<i64> {
        self.timers.through(tenant_id, || db.timers_pending(tenant_id)).await
    }

    pub fn admitted_timer(&self, tenant_id: &str) {
        self.timers.update(tenant_id, |n| *n += 1);
    }
}
