//! Where the capabilities' calls go: the engine's imports when built as a
//! component, the [`testing`](crate::testing) host in memory otherwise (so
//! handlers run under `cargo test`).

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::wit::switchboard::plugin::{clock, config, http, kv, log, messaging, timers};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::imports::{clock, config, http, kv, log, messaging, timers};
