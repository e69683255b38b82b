//! Cron triggers: a plugin's `triggers.cron` schedules call its `on-timer`
//! at each fire, with the payload `{"cron": "<schedule>", "fire": "<RFC 3339>",
//! "fire_ms": <ms>}`.
//!
//! Each fire happens exactly once: it is claimed by moving the schedule's
//! recorded last fire forward (compare-and-set) in the transaction that
//! inserts its event, so neither a second node nor a restart can fire it
//! again. Fires missed while the engine was down are run once, the latest
//! of them, if it is within the grace window (`limits.cron_grace_s`);
//! older ones are skipped. A newly deployed schedule starts after its
//! version's deploy time.

use super::Context;
use crate::clock::Millis;
use crate::directory::PluginEntry;
use crate::store::{EventKind, NewEvent};
use chrono::TimeZone;

/// Fires what is due for every active plugin's schedules; returns when the
/// next fire is due, if any schedule has one.
pub async fn fire_due(ctx: &Context, now: Millis) -> Option<Millis> {
    let snapshot = ctx.directory.snapshot();
    let mut next: Option<Millis> = None;
    let runs = |p: &PluginEntry| {
        p.row.status == "active"
            && !p.cron.is_empty()
            && snapshot.tenants.get(&p.row.tenant_id).is_some_and(|t| t.active)
    };
    for plugin in snapshot.plugins.values().filter(|p| runs(p)) {
        for (expr, schedule) in &plugin.cron {
            match fire_schedule(ctx, plugin, expr, schedule, now).await {
                Ok(Some(due)) => next = Some(next.map_or(due, |n| n.min(due))),
                Ok(None) => {}
                Err(e) => tracing::error!(plugin = %plugin.row.name, schedule = %expr, error = %e, "cron fire failed"),
            }
        }
    }
    next
}

/// Fires one schedule if due; returns its next fire time.
async fn fire_schedule(
    ctx: &Context,
    plugin: &PluginEntry,
    expr: &str,
    schedule: &cron::Schedule,
    now: Millis,
) -> Result<Option<Millis>, crate::store::StoreError> {
    let zone = plugin.timezone;
    let at = |ms: Millis| zone.timestamp_millis_opt(ms).single();
    let last = ctx.db.cron_last_fire(&plugin.row.plugin_id, expr).await?;
    let grace = ctx.cron_grace_ms;
    // Fires after the last one (or the deploy), but none older than the grace window.
    let from = last.unwrap_or(plugin.row.created_at).max(now - grace);
    let Some(from_dt) = at(from) else { return Ok(None) };
    let mut due = None;
    let mut upcoming = None;
    for fire in schedule.after(&from_dt) {
        let ms = fire.timestamp_millis();
        if ms > now {
            upcoming = Some(ms);
            break;
        }
        due = Some(ms);
    }
    let Some(fire_at) = due else { return Ok(upcoming) };
    let fire_text = crate::clock::to_rfc3339(fire_at);
    let event = NewEvent {
        id: crate::ids::event_id(),
        tenant_id: plugin.row.tenant_id.clone(),
        plugin_id: plugin.row.plugin_id.clone(),
        kind: EventKind::Timer,
        name: Some(format!("cron:{expr}")),
        payload: serde_json::json!({ "cron": expr, "fire": fire_text, "fire_ms": fire_at }).to_string(),
        message_id: None,
        run_at: now,
        created_at: now,
        mode: "live",
        trace_context: None,
    };
    let lease = ctx.pipeline.lease(&ctx.clock);
    if ctx.db.fire_cron(&plugin.row.plugin_id, expr, last, fire_at, &event, &lease).await? {
        tracing::info!(plugin = %plugin.row.name, schedule = %expr, fire = %fire_text, "cron fired");
        ctx.pipeline.enqueue_event(event.to_row());
    }
    Ok(upcoming)
}
