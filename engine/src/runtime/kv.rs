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
use super::tape::Tape;
use super::usage::Usage;
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
    /// Bytes of keys and values waiting in `writes`.
    pub(super) pending_bytes: usize,
    /// Most distinct keys, and bytes, `writes` may hold.
    pub(super) max_writes: usize,
    pub(super) max_pending_bytes: usize,
    pub(super) quota: KvQuota,
    pub(super) tape: Tape,
}

/// The tenant's kv quota, checked against its usage (shared by the
/// invocations on this node, see [`Usage`]) plus this invocation's writes.
pub struct KvQuota {
    pub(super) max_keys: i64,
    pub(super) max_bytes: i64,
    pub(super) usage: Arc<Usage>,
    /// Stored size of each key this invocation wrote (`None`: absent).
    stored: HashMap<String, Option<i64>>,
}

impl KvQuota {
    pub fn new(max_keys: i64, max_bytes: i64, usage: Arc<Usage>) -> Self {
        KvQuota { max_keys, max_bytes, usage, stored: HashMap::new() }
    }
}

impl KvState {
    fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("kv key is empty".into()));
        }
        if key.contains('\0') {
            return Err(Error::InvalidArgument(format!("kv key: {}", crate::limits::NUL_REFUSED)));
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
        let (value, version) = match self.tape.replayed_kv(key) {
            Some(seen) => seen.map_or((None, 0), |(v, version)| (Some(v), version)),
            None => {
                let entry = self
                    .db
                    .kv_get(&self.tenant_id, &self.plugin_id, key)
                    .await
                    .map_err(|e| wasmtime::format_err!("kv read failed: {e}"))?;
                let version = entry.as_ref().map_or(0, |e| e.version);
                self.tape.record_kv(key, entry.as_ref().map(|e| e.value.as_slice()), version);
                (entry.map(|e| e.value), version)
            }
        };
        self.reads.entry(key.to_string()).or_insert(version);
        Ok(value)
    }

    async fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        if value.len() > self.value_bytes {
            return Ok(Err(Error::QuotaExceeded(format!(
                "kv value is {} bytes; the limit is {}",
                value.len(),
                self.value_bytes
            ))));
        }
        if let Err(e) = self.check_pending(&key, value.len()) {
            return Ok(Err(e));
        }
        let size = (key.len() + value.len()) as i64;
        if let Err(e) = self.account(&key, Some(size)).await? {
            return Ok(Err(e));
        }
        self.buffer(key, Some(value));
        Ok(Ok(()))
    }

    /// Refuses a write that would take this invocation's buffered writes
    /// past their caps (they live in host memory until commit).
    fn check_pending(&self, key: &str, value_len: usize) -> Result<(), Error> {
        let replaced = self.writes.get(key);
        if replaced.is_none() && self.writes.len() >= self.max_writes {
            return Err(Error::QuotaExceeded(format!("at most {} kv writes per invocation", self.max_writes)));
        }
        let freed = replaced.map_or(0, |v| key.len() + v.as_ref().map_or(0, Vec::len));
        if self.pending_bytes - freed + key.len() + value_len > self.max_pending_bytes {
            return Err(Error::QuotaExceeded(format!(
                "at most {} bytes of kv writes per invocation",
                self.max_pending_bytes
            )));
        }
        Ok(())
    }

    fn buffer(&mut self, key: String, value: Option<Vec<u8>>) {
        let added = key.len() + value.as_ref().map_or(0, Vec::len);
        if let Some(old) = self.writes.insert(key.clone(), value) {
            self.pending_bytes -= key.len() + old.map_or(0, |v| v.len());
        }
        self.pending_bytes += added;
    }

    /// Moves the quota's usage to `key` having `size` (`None`: deleted),
    /// refusing growth past the quota. A replay touches no usage: it
    /// refuses what the recorded invocation was refused.
    async fn account(&mut self, key: &str, size: Option<i64>) -> wasmtime::Result<Result<(), Error>> {
        if self.tape.is_replay() {
            return Ok(match size {
                None => Ok(()),
                Some(_) => self.tape.replayed_check("kv_quota", key).unwrap_or(Ok(())),
            });
        }
        let result = self.account_live(key, size).await?;
        self.tape.record_check("kv_quota", key, &result);
        Ok(result)
    }

    async fn account_live(&mut self, key: &str, size: Option<i64>) -> wasmtime::Result<Result<(), Error>> {
        let failed = |e: crate::store::StoreError| wasmtime::format_err!("kv usage read failed: {e}");
        let (keys, bytes) = self.quota.usage.kv(self.db.as_ref(), &self.tenant_id).await.map_err(failed)?;
        let before = match self.quota.stored.get(key) {
            Some(s) => *s,
            None => {
                let entry = self.db.kv_get(&self.tenant_id, &self.plugin_id, key).await.map_err(failed)?;
                entry.map(|e| (key.len() + e.value.len()) as i64)
            }
        };
        let key_delta = size.is_some() as i64 - before.is_some() as i64;
        let byte_delta = size.unwrap_or(0) - before.unwrap_or(0);
        let grows = byte_delta > 0 || key_delta > 0;
        let max = self.quota.max_keys;
        if grows && keys + key_delta > max {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's kv quota of {max} keys is used up"))));
        }
        let max = self.quota.max_bytes;
        if grows && bytes + byte_delta > max {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's kv quota of {max} bytes is used up"))));
        }
        self.quota.usage.admitted_kv(&self.tenant_id, key_delta, byte_delta);
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
        if let Err(e) = self.check_pending(&key, 0) {
            return Ok(Err(e));
        }
        let existed = self.current(&key).await?.is_some();
        self.account(&key, None).await?.expect("a delete never grows usage");
        self.buffer(key, None);
        Ok(Ok(existed))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Result<Vec<String>, Error>> {
        if prefix.contains('\0') {
            return Ok(Err(Error::InvalidArgument(format!("kv prefix: {}", crate::limits::NUL_REFUSED))));
        }
        let limit = limit.min(self.list_max);
        // Fetch enough to survive our own pending deletes, then overlay.
        let pending_deletes = self.writes.values().filter(|v| v.is_none()).count() as u32;
        let fetch = limit.saturating_add(pending_deletes);
        let stored = match self.tape.replayed_list(&prefix, fetch) {
            Some(keys) => keys,
            None => {
                let keys = self
                    .db
                    .kv_list(&self.tenant_id, &self.plugin_id, &prefix, fetch)
                    .await
                    .map_err(|e| wasmtime::format_err!("kv list failed: {e}"))?;
                self.tape.record_list(&prefix, fetch, &keys);
                keys
            }
        };
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
