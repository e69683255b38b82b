//! Switchboard: a WebAssembly-scriptable SMS automation engine.
//!
//! # The event flow
//!
//! ```text
//! carrier webhook / API call / timer / cron fire
//!   → persisted event            (pipeline::ingest, pipeline::outbound, scheduler; group commit)
//!     STOP/START/HELP: consent + one confirmation, not routed  (pipeline::compliance)
//!   → router (tenant, keyword)   (pipeline::router over the directory)
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
//! # Map
//!
//! - [`app`]: settings, the shared [`app::App`], tenant and plugin admin operations.
//!   [`senders`]: who may send as what — numbers (assigned, open or proven
//!   with a code) and sender IDs (approved by the operator, brands refused).
//! - [`api`]: the HTTP API (axum). `api::router(app)` for tests, `api::run` to serve.
//! - [`cli`]: the `switchboard` command (serve, simulate, plugin, tenant, key, number, bench).
//! - [`bench`]: the load harness behind `switchboard bench` (engine, fake carrier, load generator).
//! - [`runtime`]: the wasmtime host — compile cache, limits, one module per capability
//!   (`messaging`, `kv`, `timers`, `config`, `http`, `log`, `clock`) and their registry.
//! - [`pipeline`]: ingest (inbound), outbound (API sends), compliance, router, fair
//!   queues, workers, group commit, dispatcher, delivery reports, signed webhooks,
//!   sweeper, retention.
//! - [`scheduler`]: due timers and cron fires become events.
//! - [`tenancy`]: per-tenant quotas and compliance settings (keywords, quiet hours).
//! - [`connectors`]: carriers behind one trait, listed in one table; the simulator.
//! - [`store`]: the `Database` trait, its SQLite (one node) and PostgreSQL (several
//!   nodes on one database) implementations, with migrations.
//! - [`deploy`]: plugin manifests, validation, versions and rollback, the demo tenant.
//! - [`directory`]: the in-memory view of tenants, numbers, keys, plugins and routes.
//! - [`limits`]: every limit and its default. [`clock`]: the controllable clock.
//! - [`sms`]: GSM-7/UCS-2 encoding and segmentation. [`phone`]: E.164 and masking.
//! - [`secrets`]: API keys (hashed, constant-time), sealed secrets, webhook signatures.
//!   [`ids`]: prefixed, time-ordered ids.
//! - [`billing`]: prices per segment and money amounts. [`net`]: which addresses webhooks may call.

pub mod api;
pub mod app;
pub mod bench;
pub mod billing;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod connectors;
pub mod deploy;
pub mod directory;
pub mod ids;
pub mod limits;
pub mod manifest;
pub mod net;
pub mod phone;
pub mod pipeline;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod senders;
pub mod sms;
pub mod store;
pub mod tenancy;

#[cfg(test)]
mod properties;
