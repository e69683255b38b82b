//! Host-side bindings generated from `sdk-guest/wit/plugin.wit`.
//!
//! Every import is `async` (kv reads hit the database) and `trappable` (a
//! host function can end the invocation, e.g. on a host bug); what a plugin
//! can handle comes back inside the WIT `result`.

wasmtime::component::bindgen!({
    path: "../sdk-guest/wit",
    world: "switchboard:plugin/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::switchboard::plugin::types::{DeliveryStatus, Error as PluginError};
pub use self::switchboard::plugin::{clock, config, http, kv, log, messaging, timers, types};

/// The WIT package and version this engine provides.
pub const WIT_PACKAGE: &str = "switchboard:plugin";
pub const WIT_VERSION: &str = "0.1.0";
