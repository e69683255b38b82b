//! A plugin that misbehaves on request, to prove the engine contains it.
//! Each keyword picks a behaviour:
//!
//! - `TRAP`: sends a reply and writes kv, then panics (nothing may commit).
//! - `LOOP`: spins forever (the CPU limit must stop it).
//! - `BOMB`: allocates until the memory limit stops it.
//! - `FAIL`: returns an error.
//! - `COUNT`: increments a kv counter and replies with it.
//! - `SPAM`: tries to send more than the per-invocation limit; replies with
//!   the error it got.
//! - `SPOOF`: tries to send from a number its tenant does not own; replies
//!   with the error it got.
//!
//! - `FRESH`: bumps a global counter and replies with it: always 1 when
//!   every event gets a fresh instance.
//! - `LATER`: schedules a reply an hour ahead.
//! - `DICE`: replies with a number from the sandbox's random source and
//!   the guest's own wall clock (what a replay must reproduce from its
//!   recording).
//! - `PEEK`: replies with what the `trap` key holds (it must be nothing).
//!
//! - `DLR`: sends a probe with reference `dlr-probe`; its delivery report
//!   comes back to `on_delivery`, which texts the status to the sender.
//!
//! - `FETCH <url>`: fetches the URL through the `http` capability and
//!   replies with the status and body, or the error it got.
//! - `NOTIFY <number>`: texts the number and replies with the outcome
//!   (`opted-out` once that number has texted STOP).
//! - `FILL`: writes kv keys until the tenant's quota refuses one; replies
//!   with how many it wrote and the error.
//! - `TIMERS`: schedules timers until the tenant's quota refuses one.
//!
//! - `FORK`: a timer fork bomb: schedules 16 timers due at once, and each
//!   of them, firing, schedules 16 more (until the tenant's limits stop it).
//! - `KVFLOOD`: writes 60 KB kv values under new keys until something
//!   refuses one; replies with how many it wrote and the error.
//! - `LOGFLOOD`: writes 10,000 log lines of 2 KB; replies `logged`.
//! - `NUL`: tries to store text holding U+0000 (a message body, a kv key,
//!   a timer key and payload) and logs a line with one; replies with the
//!   errors it got.
//!
//! The `count` event increments the counter without replying. Cron fires
//! (`on-timer` with a `cron` payload) increment the `cron` counter and log
//! the fire.

use std::sync::atomic::{AtomicU32, Ordering};
use switchboard_sdk::{
    DeliveryReport, DeliveryStatus, Event, HostError, InboundMessage, Plugin, Result, export_plugin, kv, messaging,
};

static INVOCATIONS_IN_THIS_INSTANCE: AtomicU32 = AtomicU32::new(0);

struct Chaos;

fn describe(e: &HostError) -> String {
    match e {
        HostError::AccessDenied(m) => format!("access-denied: {m}"),
        HostError::QuotaExceeded(m) => format!("quota-exceeded: {m}"),
        HostError::InvalidArgument(m) => format!("invalid-argument: {m}"),
        HostError::Internal(m) => format!("internal: {m}"),
        HostError::OptedOut(m) => format!("opted-out: {m}"),
    }
}

impl Plugin for Chaos {
    fn on_inbound(message: InboundMessage) -> Result<()> {
        match message.keyword().as_str() {
            "TRAP" => {
                message.reply("this reply must never be sent")?;
                kv::set("trap", b"written before the trap")?;
                panic!("deliberate trap after send");
            }
            "LOOP" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "BOMB" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "FAIL" => Err("deliberate failure".into()),
            "FRESH" => {
                let n = INVOCATIONS_IN_THIS_INSTANCE.fetch_add(1, Ordering::SeqCst) + 1;
                message.reply(format!("instance call {n}"))?;
                Ok(())
            }
            "DICE" => {
                use std::hash::BuildHasher;
                // `RandomState` seeds itself from WASI's random source.
                let roll = std::collections::hash_map::RandomState::new().hash_one(0u8) % 1_000_000;
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                message.reply(format!("dice {roll} at {now}"))?;
                Ok(())
            }
            "LATER" => {
                let at = switchboard_sdk::clock::now_ms() + 3_600_000;
                messaging::Sms::new(&message.from, "an hour later").schedule_at(at).send()?;
                Ok(())
            }
            "DLR" => {
                messaging::Sms::new(&message.from, "delivery probe").reference("dlr-probe").send()?;
                Ok(())
            }
            "PEEK" => {
                let value = kv::get("trap")?.map(|v| String::from_utf8_lossy(&v).into_owned());
                message.reply(format!("trap key: {}", value.as_deref().unwrap_or("absent")))?;
                Ok(())
            }
            "FETCH" => {
                let outcome = match switchboard_sdk::http::get(message.rest()) {
                    Ok(r) => format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
                    Err(e) => describe(&e),
                };
                message.reply(outcome)?;
                Ok(())
            }
            "NOTIFY" => {
                let outcome = match messaging::send(message.rest(), "a notification") {
                    Ok(_) => "notified".to_string(),
                    Err(e) => describe(&e),
                };
                message.reply(outcome)?;
                Ok(())
            }
            "FILL" => {
                let mut written = 0;
                let outcome = loop {
                    match kv::set(format!("fill-{written}"), [b'x'; 100]) {
                        Ok(()) => written += 1,
                        Err(e) => break describe(&e),
                    }
                    if written == 1000 {
                        break "no quota".to_string();
                    }
                };
                message.reply(format!("filled {written}: {outcome}"))?;
                Ok(())
            }
            "TIMERS" => {
                let mut scheduled = 0;
                let outcome = loop {
                    match switchboard_sdk::timers::schedule_after(
                        format!("t-{scheduled}"),
                        std::time::Duration::from_secs(3600),
                        "later",
                    ) {
                        Ok(()) => scheduled += 1,
                        Err(e) => break describe(&e),
                    }
                    if scheduled == 50 {
                        break "no quota".to_string();
                    }
                };
                message.reply(format!("scheduled {scheduled}: {outcome}"))?;
                Ok(())
            }
            "FORK" => {
                fork(0)?;
                message.reply("forked")?;
                Ok(())
            }
            "KVFLOOD" => {
                let value = vec![b'x'; 60_000];
                let mut written = 0u32;
                let outcome = loop {
                    match kv::set(format!("flood-{written}"), &value) {
                        Ok(()) => written += 1,
                        Err(e) => break describe(&e),
                    }
                    if written == 100_000 {
                        break "no limit".to_string();
                    }
                };
                message.reply(format!("flooded {written}: {outcome}"))?;
                Ok(())
            }
            "LOGFLOOD" => {
                let line = "y".repeat(2048);
                for _ in 0..10_000 {
                    switchboard_sdk::log::info(&line);
                }
                message.reply("logged")?;
                Ok(())
            }
            "NUL" => {
                let outcomes = [
                    messaging::Sms::new(&message.from, "a\0b").send().map(|_| ()),
                    kv::set("a\0b", b"x"),
                    switchboard_sdk::timers::schedule_after("a\0b", std::time::Duration::from_secs(60), "x"),
                    switchboard_sdk::timers::schedule_after("k", std::time::Duration::from_secs(60), "a\0b"),
                ];
                switchboard_sdk::log::info("a\0b");
                let described: Vec<String> =
                    outcomes.iter().map(|o| o.as_ref().map_or_else(describe, |_| "ok".to_string())).collect();
                message.reply(described.join("; "))?;
                Ok(())
            }
            "COUNT" => {
                let n = kv::increment("count", 1)?;
                message.reply(format!("count {n}"))?;
                Ok(())
            }
            "SPAM" => {
                let many = (0..1000).map(|i| messaging::Sms::new(&message.from, format!("spam {i}")));
                let outcome = match messaging::send_many(many) {
                    Ok(ids) => format!("sent {}", ids.len()),
                    Err(e) => describe(&e),
                };
                message.reply(outcome)?;
                Ok(())
            }
            "SPOOF" => {
                let outcome = match messaging::Sms::new(&message.from, "spoofed").from("+15559999999").send() {
                    Ok(_) => "sent as someone else".to_string(),
                    Err(e) => describe(&e),
                };
                message.reply(outcome)?;
                Ok(())
            }
            other => {
                message.reply(format!("chaos: unknown command {other}"))?;
                Ok(())
            }
        }
    }

    fn on_delivery(report: DeliveryReport) -> Result<()> {
        // Only the probe's final report answers, so answers never loop.
        if report.reference.as_deref() == Some("dlr-probe") && report.status != DeliveryStatus::Sent {
            let status = match report.status {
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Undelivered => "undelivered",
                DeliveryStatus::Failed => "failed",
                DeliveryStatus::Expired => "expired",
                _ => "other",
            };
            messaging::send(&report.to, format!("probe {status} ({})", report.error_code.as_deref().unwrap_or("-")))?;
        }
        Ok(())
    }

    fn on_timer(payload: String) -> Result<()> {
        if let Some(generation) = payload.strip_prefix("fork:") {
            return fork(generation.parse().unwrap_or(0));
        }
        let fire: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
        if let Some(schedule) = fire["cron"].as_str() {
            let n = kv::increment("cron", 1)?;
            switchboard_sdk::log::info(format!(
                "cron {schedule} fired for {} (fire {n})",
                fire["fire"].as_str().unwrap_or("?")
            ));
        }
        Ok(())
    }

    fn on_event(event: Event) -> Result<()> {
        if event.name == "count" {
            kv::increment("count", 1)?;
        }
        Ok(())
    }
}

/// Schedules the next generation of the fork bomb: 16 timers due now,
/// each with a key of its own.
fn fork(generation: u64) -> Result<()> {
    for i in 1..=16u64 {
        let child = generation.wrapping_mul(16).wrapping_add(i);
        switchboard_sdk::timers::schedule_after(
            format!("fork-{child}"),
            std::time::Duration::ZERO,
            format!("fork:{child}"),
        )?;
    }
    Ok(())
}

export_plugin!(Chaos);
