//! `kv`: per tenant+plugin key-value storage with optimistic isolation.
//!
//! Reads go to the database (through the overlay of this invocation's own
//! writes) and remember the version they saw; writes stay in the overlay
//! until commit. At commit the store re-checks every remembered version in
//! the same transaction that applies the writes; if one moved, the
//! invocation is re-run. That makes read-modify-write (and `increment`)
//! atomic without locking across plugin code.

use super::bindings::kv;
use super::bindings::types::Error;
use crate::store::Database;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct KvState {
    pub(super) db: Arc<dyn Database>,
    pub(super) tenant_id: String,
    pub(super) plugin_id: String,
    pub(super) key_bytes: usize,
    pub(super) value_bytes: usize,
    pub(super) list_max: u32,
    /// Version seen for each key read from the database (0: absent).
    pub(super) reads: HashMap<String, i64>,
    /// Pending writes; `None` deletes.
    pub(super) writes: BTreeMap<String, Option<Vec<u8>>>,
    pub(super) quota: KvQuota,
}

/// The tenant's kv quota, checked against committed usage plus this
/// invocation's writes. Concurrent invocations each see committed usage
/// only, so together they may pass the quota by their own writes.
pub struct KvQuota {
    max_keys: Option<i64>,
    max_bytes: Option<i64>,
    /// (keys, bytes) in use, read at the first write when there is a quota.
    usage: Option<(i64, i64)>,
    /// Stored size of each key this invocation wrote (`None`: absent).
    stored: HashMap<String, Option<i64>>,
}

impl KvQuota {
    pub fn new(max_keys: Option<i64>, max_bytes: Option<i64>) -> Self {
        KvQuota { max_keys, max_bytes, usage: None, stored: HashMap::new() }
    }
}

impl KvState {
    fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("kv key is empty".into()));
        }
        if key.len() > self.key_bytes {
            return Err(Error::InvalidArgument(format!(
                "kv key is {} bytes; the limit is {}",
                key.len(),
                self.key_bytes
            )));
        }
        Ok(())
    }

    /// The value as this invocation sees it. Database failures trap: the
    /// invocation cannot continue on a guess, and will be retried.
    async fn current(&mut self, key: &str) -> wasmtime::Result<Option<Vec<u8>>> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        let entry = self
            .db
            .kv_get(&self.tenant_id, &self.plugin_id, key)
            .await
            .map_err(|e| wasmtime::format_err!("kv read failed: {e}"))?;
        let version = entry.as_ref().map_or(0, |e| e.version);
        self.reads.entry(key.to_string()).or_insert(version);
        Ok(entry.map(|e| e.value))
    }

    async fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        if value.len() > self.value_bytes {
            return Ok(Err(Error::QuotaExceeded(format!(
                "kv value is {} bytes; the limit is {}",
                value.len(),
                self.value_bytes
            ))));
        }
        let size = (key.len() + value.len()) as i64;
        if let Err(e) = self.account(&key, Some(size)).await? {
            return Ok(Err(e));
        }
        self.writes.insert(key, Some(value));
        Ok(Ok(()))
    }

    /// Moves the quota's usage to `key` having `size` (`None`: deleted),
    /// refusing growth past the quota.
    async fn account(&mut self, key: &str, size: Option<i64>) -> wasmtime::Result<Result<(), Error>> {
        if self.quota.max_keys.is_none() && self.quota.max_bytes.is_none() {
            return Ok(Ok(()));
        }
        let failed = |e: crate::store::StoreError| wasmtime::format_err!("kv usage read failed: {e}");
        let (keys, bytes) = match self.quota.usage {
            Some(u) => u,
            None => self.db.kv_usage(&self.tenant_id).await.map_err(failed)?,
        };
        let before = match self.quota.stored.get(key) {
            Some(s) => *s,
            None => {
                let entry = self.db.kv_get(&self.tenant_id, &self.plugin_id, key).await.map_err(failed)?;
                entry.map(|e| (key.len() + e.value.len()) as i64)
            }
        };
        let (keys, bytes) =
            (keys + size.is_some() as i64 - before.is_some() as i64, bytes + size.unwrap_or(0) - before.unwrap_or(0));
        let grows = size.unwrap_or(0) > before.unwrap_or(0);
        if grows && let Some(max) = self.quota.max_keys.filter(|m| keys > *m) {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's kv quota of {max} keys is used up"))));
        }
        if grows && let Some(max) = self.quota.max_bytes.filter(|m| bytes > *m) {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's kv quota of {max} bytes is used up"))));
        }
        self.quota.usage = Some((keys, bytes));
        self.quota.stored.insert(key.to_string(), size);
        Ok(Ok(()))
    }
}

impl kv::Host for KvState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        Ok(Ok(self.current(&key).await?))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        self.put(key, value).await
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        let existed = self.current(&key).await?.is_some();
        self.account(&key, None).await?.expect("a delete never grows usage");
        self.writes.insert(key, None);
        Ok(Ok(existed))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let limit = limit.min(self.list_max);
        // Fetch enough to survive our own pending deletes, then overlay.
        let pending_deletes = self.writes.values().filter(|v| v.is_none()).count() as u32;
        let stored = self
            .db
            .kv_list(&self.tenant_id, &self.plugin_id, &prefix, limit.saturating_add(pending_deletes))
            .await
            .map_err(|e| wasmtime::format_err!("kv list failed: {e}"))?;
        let mut keys: std::collections::BTreeSet<String> = stored.into_iter().collect();
        for (key, value) in self.writes.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(Ok(keys.into_iter().take(limit as usize).collect()))
    }

    async fn increment(&mut self, key: String, delta: i64) -> wasmtime::Result<Result<i64, Error>> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        let current = match self.current(&key).await? {
            None => 0,
            Some(bytes) => match std::str::from_utf8(&bytes).ok().and_then(|s| s.trim().parse::<i64>().ok()) {
                Some(n) => n,
                None => return Ok(Err(Error::InvalidArgument(format!("kv key {key:?} does not hold an integer")))),
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Ok(Err(Error::InvalidArgument(format!("increment of {key:?} overflows"))));
        };
        Ok(self.put(key, next.to_string().into_bytes()).await?.map(|()| next))
    }
}
