//! Write Switchboard plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] (every handler has a no-op
//! default) exported with [`export_plugin!`]:
//!
//! ```ignore
//! use switchboard_sdk::{InboundMessage, Plugin, Result, export_plugin};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn on_inbound(message: InboundMessage) -> Result<()> {
//!         message.reply(format!("You said: {}", message.body))?;
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(Echo);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! file is the component to deploy with a `plugin.toml` manifest.
//!
//! Every handler runs in a fresh instance; keep state in [`kv`] and
//! schedule work with [`timers`]. Under `cargo test` the capabilities talk
//! to [`testing::MockHost`], so handlers are unit-tested natively. Effects (sends, kv writes, timers) are
//! committed only if the handler returns `Ok`: return `Err` (or panic) and
//! nothing happened, and the event is retried later.

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "switchboard_sdk::wit",
    });
}

pub mod clock;
pub mod config;
mod host;
pub mod http;
pub mod kv;
pub mod log;
pub mod messaging;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod timers;

mod types;

pub use types::{DeliveryReport, DeliveryStatus, Error, Event, HostError, InboundMessage, Result};

/// A plugin's handlers. Each one you do not implement does nothing.
pub trait Plugin {
    /// An SMS routed to this plugin (by keyword, or as the catch-all).
    fn on_inbound(message: InboundMessage) -> Result<()> {
        let _ = message;
        Ok(())
    }

    /// A business event posted to `POST /v1/events/{plugin}`.
    fn on_event(event: Event) -> Result<()> {
        let _ = event;
        Ok(())
    }

    /// A timer this plugin scheduled is due; `payload` is what it gave.
    fn on_timer(payload: String) -> Result<()> {
        let _ = payload;
        Ok(())
    }

    /// A message this plugin sent changed state (needs
    /// `triggers.delivery = true` in the manifest).
    fn on_delivery(report: DeliveryReport) -> Result<()> {
        let _ = report;
        Ok(())
    }
}

/// Exports a [`Plugin`] implementation as the component's entry points.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __SwitchboardExport;

        impl $crate::wit::Guest for __SwitchboardExport {
            fn on_inbound(
                message: $crate::wit::switchboard::plugin::types::InboundMessage,
            ) -> ::core::result::Result<(), ::std::string::String> {
                <$plugin as $crate::Plugin>::on_inbound(message.into()).map_err(|e| e.to_string())
            }

            fn on_event(
                name: ::std::string::String,
                payload: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::string::String> {
                <$plugin as $crate::Plugin>::on_event($crate::Event { name, payload }).map_err(|e| e.to_string())
            }

            fn on_timer(payload: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                <$plugin as $crate::Plugin>::on_timer(payload).map_err(|e| e.to_string())
            }

            fn on_delivery(
                report: $crate::wit::switchboard::plugin::types::DeliveryReport,
            ) -> ::core::result::Result<(), ::std::string::String> {
                <$plugin as $crate::Plugin>::on_delivery(report.into()).map_err(|e| e.to_string())
            }
        }

        $crate::wit::__export_plugin_world!(__SwitchboardExport with_types_in $crate::wit);
    };
}
