//! Switchboard: a WebAssembly-scriptable SMS automation engine.
//!
//! # The event flow
//!
//! ```text
//! carrier webhook / API call / timer / cron fire
//!   → persisted event            (pipeline::ingest, pipeline::outbound, scheduler; pipeline::writer)
//!     STOP/START/HELP: consent + one confirmation, not routed  (compliance)
//!   → inbound routing (tenant, keyword)  (pipeline::inbound_routing over the directory)
//!   → per-tenant queue, fair turns, quotas                    (pipeline::fair, pipeline::worker)
//!   → plugin in a fresh sandbox  (runtime; one module per capability)
//!   → effects committed with the event (store: sends, kv, timers, event done — one transaction)
//!   → outbox → connector → carrier      (pipeline::dispatcher, connectors)
//!   → delivery report → status (+ the plugin's on-delivery)   (pipeline::delivery)
//!   → signed status webhook to the tenant                       (pipeline::webhooks)
//! ```
//!
//! Every arrow is durable: work exists in the database before anything
//! acknowledges it, and in-memory queues only carry rows leased to this node.
//!
//! # Map, by layer (lowest first)
//!
//! A module imports only from the layers below its own, and from the modules
//! listed before it in its layer (ARCHITECTURE.md; `engine/tests/tidy.rs`
//! checks it).
//!
//! 1. Foundations: [`ids`] (prefixed, time-ordered ids), [`clock`] (the
//!    controllable clock), [`limits`] (every limit and its default),
//!    [`billing`] (prices and amounts), [`secrets`] (API keys, sealed
//!    secrets, webhook signatures), [`net`] (which addresses outgoing
//!    requests may reach; the vetted resolver; listening sockets),
//!    [`metrics`] (what the engine counts and measures, for `GET
//!    /metrics`), [`telemetry`] (one trace per message: stored trace
//!    contexts, the OTLP exporter).
//! 2. [`store`]: the `Database` traits, one body of SQL for SQLite (one
//!    node) and PostgreSQL (several nodes on one database), migrations.
//! 3. Domain: [`sms`] (GSM-7/UCS-2, segments, templates, keywords),
//!    [`phone`] (E.164, masking), [`compliance`] (STOP/START/HELP, consent
//!    checks, quiet hours), [`tenancy`] (what a tenant configures: quotas,
//!    routes), [`manifest`] (the plugin manifest and its capabilities),
//!    [`directory`] (the in-memory view of tenants, numbers, keys, plugins).
//! 4. Carriers and plugins: [`connectors`] (carriers behind one trait,
//!    listed in one table), [`runtime`] (the wasmtime host, one module per
//!    capability).
//! 5. Work: [`pipeline`] (ingest, API sends, routing, fair queues, workers,
//!    the writer (one transaction per cycle), dispatcher, delivery reports, webhooks, sweeper,
//!    retention; its [`pipeline::Context`] and the one way to enqueue work),
//!    [`scheduler`] (due timers and cron fires become events), [`deploy`]
//!    (validation, versions, rollback, replays of recorded invocations,
//!    canaries), [`control`] (operations that change
//!    tenants, keys and plugins), [`senders`] (numbers and sender IDs).
//! 6. [`api`]: the HTTP API (axum), `api::router(ctx)` for tests,
//!    `api::run` to serve; the web console at `/console` (`api::console`:
//!    server-rendered pages that call the API in-process as the signed-in
//!    session).
//! 7. [`app`]: the wiring; settings, and `App::start`, which builds every
//!    part and hands each what it uses.
//! 8. Commands: [`bench`] (the load harness behind `switchboard bench`),
//!    [`toolchain`] (building plugins from Rust, JavaScript or Python
//!    source; the projects `plugin new` writes), [`cli`] (the `switchboard`
//!    command, `run`, and the demo tenant).

pub mod api;
pub mod app;
pub mod bench;
pub mod billing;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod connectors;
pub mod control;
pub mod deploy;
pub mod directory;
pub mod ids;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod net;
pub mod phone;
pub mod pipeline;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod senders;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod toolchain;

#[cfg(test)]
mod properties;
