//! The registry of host capabilities: every WIT interface the engine can
//! link into a plugin, in one table.
//!
//! A plugin's manifest grants some of them. Granted ones are linked to their
//! host implementation; ungranted ones to [`Ungranted`], which refuses every
//! call with `access-denied` (see `ungranted.rs` for why a component may
//! import what it is not granted). `http` also needs an allow-list of hosts
//! in the manifest. `log` and `clock` are harmless and always linked.

use super::bindings;
use super::invocation::InvocationState;
use super::ungranted::Ungranted;
use crate::manifest::Capability;
use wasmtime::component::{HasSelf, Linker};

pub struct CapabilityDef {
    pub capability: Capability,
    /// The WIT interface name within `switchboard:plugin`.
    pub interface: &'static str,
    /// Whether a manifest must ask for it (otherwise always linked).
    pub needs_grant: bool,
    link: fn(&mut Linker<InvocationState>) -> wasmtime::Result<()>,
    /// Links the refusing stand-in when the manifest does not grant it.
    deny: fn(&mut Linker<InvocationState>) -> wasmtime::Result<()>,
}

/// Always-linked capabilities have no stand-in.
fn never_denied(_: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    Ok(())
}

pub const CAPABILITIES: [CapabilityDef; 7] = [
    CapabilityDef {
        capability: Capability::Messaging,
        interface: "messaging",
        needs_grant: true,
        link: |l| bindings::messaging::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.messaging),
        deny: |l| {
            bindings::messaging::add_to_linker::<_, HasSelf<Ungranted>>(l, |s: &mut InvocationState| &mut s.ungranted)
        },
    },
    CapabilityDef {
        capability: Capability::Kv,
        interface: "kv",
        needs_grant: true,
        link: |l| bindings::kv::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.kv),
        deny: |l| bindings::kv::add_to_linker::<_, HasSelf<Ungranted>>(l, |s: &mut InvocationState| &mut s.ungranted),
    },
    CapabilityDef {
        capability: Capability::Timers,
        interface: "timers",
        needs_grant: true,
        link: |l| bindings::timers::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.timers),
        deny: |l| {
            bindings::timers::add_to_linker::<_, HasSelf<Ungranted>>(l, |s: &mut InvocationState| &mut s.ungranted)
        },
    },
    CapabilityDef {
        capability: Capability::Config,
        interface: "config",
        needs_grant: true,
        link: |l| bindings::config::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.config),
        deny: |l| {
            bindings::config::add_to_linker::<_, HasSelf<Ungranted>>(l, |s: &mut InvocationState| &mut s.ungranted)
        },
    },
    CapabilityDef {
        capability: Capability::Http,
        interface: "http",
        needs_grant: true,
        link: |l| bindings::http::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.http),
        deny: |l| bindings::http::add_to_linker::<_, HasSelf<Ungranted>>(l, |s: &mut InvocationState| &mut s.ungranted),
    },
    CapabilityDef {
        capability: Capability::Log,
        interface: "log",
        needs_grant: false,
        link: |l| bindings::log::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.log),
        deny: never_denied,
    },
    CapabilityDef {
        capability: Capability::Clock,
        interface: "clock",
        needs_grant: false,
        link: |l| bindings::clock::add_to_linker::<_, HasSelf<_>>(l, |s: &mut InvocationState| &mut s.clock),
        deny: never_denied,
    },
];

impl Capability {
    pub fn def(self) -> &'static CapabilityDef {
        CAPABILITIES.iter().find(|d| d.capability == self).expect("every capability is in the table")
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        CAPABILITIES.iter().find(|d| d.interface == name).map(|d| d.capability)
    }

    pub fn name(self) -> &'static str {
        self.def().interface
    }
}

/// The set of capabilities linked for one plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Grants(u8);

impl Grants {
    pub fn from_capabilities(caps: &[Capability]) -> Self {
        let mut g = Grants(0);
        for d in CAPABILITIES.iter().filter(|d| !d.needs_grant) {
            g.0 |= bit(d.capability);
        }
        for c in caps {
            g.0 |= bit(*c);
        }
        g
    }

    pub fn contains(self, c: Capability) -> bool {
        self.0 & bit(c) != 0
    }

    /// Links WASI (with the deny-by-default context each invocation gets),
    /// the granted capabilities, and the refusing stand-ins of the others.
    pub fn linker(self, engine: &wasmtime::Engine) -> wasmtime::Result<Linker<InvocationState>> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s: &mut InvocationState| s)?;
        for d in &CAPABILITIES {
            if self.contains(d.capability) { (d.link)(&mut linker)? } else { (d.deny)(&mut linker)? }
        }
        Ok(linker)
    }
}

fn bit(c: Capability) -> u8 {
    1 << CAPABILITIES.iter().position(|d| d.capability == c).expect("in table")
}
