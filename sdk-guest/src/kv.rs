//! The plugin's key-value store. Reads see this invocation's own writes;
//! writes commit with the invocation; concurrent read-modify-writes are
//! isolated (the host re-runs a handler whose reads went stale).

use crate::host::kv as raw;
use crate::types::{Error, HostError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn get(key: impl AsRef<str>) -> Result<Option<Vec<u8>>, HostError> {
    raw::get(key.as_ref())
}

pub fn set(key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<(), HostError> {
    raw::set(key.as_ref(), value.as_ref())
}

/// Removes `key`; returns whether it existed.
pub fn delete(key: impl AsRef<str>) -> Result<bool, HostError> {
    raw::delete(key.as_ref())
}

/// Keys starting with `prefix`, in order, at most `limit`.
pub fn list_keys(prefix: impl AsRef<str>, limit: u32) -> Result<Vec<String>, HostError> {
    raw::list_keys(prefix.as_ref(), limit)
}

/// Atomically adds `delta` to the integer at `key` (0 if absent).
pub fn increment(key: impl AsRef<str>, delta: i64) -> Result<i64, HostError> {
    raw::increment(key.as_ref(), delta)
}

/// The value at `key`, deserialized from JSON.
pub fn get_json<T: DeserializeOwned>(key: impl AsRef<str>) -> Result<Option<T>> {
    let key = key.as_ref();
    match raw::get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error(format!("kv {key}: {e}"))),
    }
}

/// Stores `value` at `key` as JSON.
pub fn set_json<T: Serialize + ?Sized>(key: impl AsRef<str>, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value)?;
    raw::set(key.as_ref(), &bytes)?;
    Ok(())
}
