//! `config`: the plugin's JSON configuration, validated at deploy time.

use super::bindings::config;
use std::sync::Arc;

pub struct ConfigState {
    pub(super) json: Arc<str>,
}

impl config::Host for ConfigState {
    async fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.json.to_string())
    }
}
