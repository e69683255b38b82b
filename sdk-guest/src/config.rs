//! The plugin's configuration (the `[config]` table of its manifest).

use crate::host::config as raw;
use crate::types::{Error, Result};
use serde::de::DeserializeOwned;

/// The configuration as a JSON document.
pub fn raw() -> String {
    raw::get()
}

/// The configuration deserialized into `T`.
pub fn get<T: DeserializeOwned>() -> Result<T> {
    serde_json::from_str(&raw::get()).map_err(|e| Error(format!("plugin configuration: {e}")))
}
