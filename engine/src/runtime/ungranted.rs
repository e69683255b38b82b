//! What a plugin gets for a capability its manifest does not grant.
//!
//! A component may import an interface of the world that its manifest does
//! not grant. Toolchains for interpreted languages (componentize-js,
//! componentize-py) keep every import of the world they build against,
//! whether the code calls it or not, so refusing such a component at deploy
//! would force a JavaScript or Python plugin to be granted everything.
//!
//! Instead the interface is linked to the functions below: each refuses with
//! `access-denied` naming the capability, which the plugin handles like any
//! other refusal. The granted host implementation is never reached, so an
//! ungranted import is exactly as powerless as a missing one. `config.get`
//! cannot return an error, so calling it ungranted traps: that is a bug in
//! the manifest, and the trap message says which line to add.

use super::bindings::http::{Request, Response};
use super::bindings::messaging::OutboundMessage;
use super::bindings::{PluginError as Error, config, http, kv, messaging, timers};

/// The host of every ungranted interface. It holds nothing.
#[derive(Debug, Default)]
pub struct Ungranted;

/// The refusal for `capability`.
pub fn refusal(capability: &str) -> Error {
    Error::AccessDenied(format!(
        "this plugin's manifest does not grant the {capability:?} capability; \
         add it to `capabilities` in plugin.toml"
    ))
}

type Refused<T> = wasmtime::Result<Result<T, Error>>;

impl messaging::Host for Ungranted {
    async fn send(&mut self, _: OutboundMessage) -> Refused<String> {
        Ok(Err(refusal("messaging")))
    }
    async fn send_many(&mut self, _: Vec<OutboundMessage>) -> Refused<Vec<String>> {
        Ok(Err(refusal("messaging")))
    }
}

impl kv::Host for Ungranted {
    async fn get(&mut self, _: String) -> Refused<Option<Vec<u8>>> {
        Ok(Err(refusal("kv")))
    }
    async fn set(&mut self, _: String, _: Vec<u8>) -> Refused<()> {
        Ok(Err(refusal("kv")))
    }
    async fn delete(&mut self, _: String) -> Refused<bool> {
        Ok(Err(refusal("kv")))
    }
    async fn list_keys(&mut self, _: String, _: u32) -> Refused<Vec<String>> {
        Ok(Err(refusal("kv")))
    }
    async fn increment(&mut self, _: String, _: i64) -> Refused<i64> {
        Ok(Err(refusal("kv")))
    }
}

impl timers::Host for Ungranted {
    async fn schedule_at(&mut self, _: String, _: i64, _: String) -> Refused<()> {
        Ok(Err(refusal("timers")))
    }
    async fn schedule_after(&mut self, _: String, _: u64, _: String) -> Refused<()> {
        Ok(Err(refusal("timers")))
    }
    async fn cancel(&mut self, _: String) -> Refused<bool> {
        Ok(Err(refusal("timers")))
    }
}

impl http::Host for Ungranted {
    async fn fetch(&mut self, _: Request) -> Refused<Response> {
        Ok(Err(refusal("http")))
    }
}

impl config::Host for Ungranted {
    async fn get(&mut self) -> wasmtime::Result<String> {
        Err(wasmtime::Error::msg(
            "config.get called, but this plugin's manifest does not grant the \"config\" capability; \
             add it to `capabilities` in plugin.toml",
        ))
    }
}
