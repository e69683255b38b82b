//! Canaries: a new version takes a share of a plugin's customers (chosen
//! stably, see `directory::Canary::takes`) while it is compared with the
//! active version, and is rolled back by itself when it does worse.
//!
//! The watcher judges a canary after each of its plugin's invocations and
//! every few seconds: from the invocation records since the canary
//! started, once each version has `min_invocations`,
//! - a failure rate above the active version's by more than
//!   `max_failure_increase`, or a mean duration more than
//!   `max_latency_ratio` times the active version's (and at least
//!   [`LATENCY_FLOOR_US`] more), rolls it back (its failed events run the
//!   active version again);
//! - otherwise, once `promote_after_ms` has passed (when set), it is
//!   promoted.
//!
//! Each decision is in the audit log with the figures it was made on. The
//! store ends a canary only once, so nodes racing to decide agree.

use crate::directory::Canary;
use crate::pipeline::{Context, Notification};
use crate::store::{AuditEntry, CanaryPlan, StoreError, VersionStats};
use serde::Serialize;
use std::sync::Arc;

/// Defaults of a canary's plan (each can be set at deploy).
pub const DEFAULT_MIN_INVOCATIONS: i64 = 20;
pub const DEFAULT_MAX_FAILURE_INCREASE: f64 = 0.05;
pub const DEFAULT_MAX_LATENCY_RATIO: f64 = 3.0;
/// A canary is judged slower only when its mean duration is also this much
/// above the active version's: handlers take microseconds, and a ratio of
/// microseconds is noise (a cold cache, a busy core).
pub const LATENCY_FLOOR_US: f64 = 20_000.0;
/// How often canaries are judged when no invocation wakes the watcher.
const JUDGE_EVERY_MS: i64 = 5_000;

/// A canary and how both versions did, as `GET /v1/plugins/{name}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CanaryView {
    pub version: String,
    pub percent: u8,
    pub started_at: String,
    /// `watching` (too few invocations yet), `healthy`, or `failing` (a
    /// rollback is being made).
    pub state: &'static str,
    pub min_invocations: i64,
    pub max_failure_increase: f64,
    pub max_latency_ratio: f64,
    pub promote_at: Option<String>,
    pub canary: VersionFigures,
    pub active: VersionFigures,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct VersionFigures {
    pub invocations: i64,
    pub failures: i64,
    pub failure_rate: f64,
    pub mean_duration_ms: f64,
}

impl From<&VersionStats> for VersionFigures {
    fn from(s: &VersionStats) -> Self {
        VersionFigures {
            invocations: s.invocations,
            failures: s.failures,
            failure_rate: rate(s),
            mean_duration_ms: (s.mean_duration_us / 10.0).round() / 100.0,
        }
    }
}

fn rate(s: &VersionStats) -> f64 {
    if s.invocations == 0 { 0.0 } else { s.failures as f64 / s.invocations as f64 }
}

/// What the figures say.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few invocations to tell.
    Watching,
    Healthy,
    /// Worse than allowed, and why.
    Failing(String),
}

/// Judges a canary's figures against the active version's.
pub fn judge(plan: &CanaryPlan, canary: &VersionStats, active: &VersionStats) -> Verdict {
    if canary.invocations < plan.min_invocations {
        return Verdict::Watching;
    }
    let (c, a) = (rate(canary), rate(active));
    if c - a > plan.max_failure_increase {
        return Verdict::Failing(format!(
            "failure rate {:.1}% against {:.1}% (allowed: {:.1} points more)",
            c * 100.0,
            a * 100.0,
            plan.max_failure_increase * 100.0
        ));
    }
    if active.invocations >= plan.min_invocations
        && active.mean_duration_us > 0.0
        && canary.mean_duration_us > active.mean_duration_us * plan.max_latency_ratio
        && canary.mean_duration_us - active.mean_duration_us > LATENCY_FLOOR_US
    {
        return Verdict::Failing(format!(
            "mean duration {:.2} ms against {:.2} ms (allowed: {}×)",
            canary.mean_duration_us / 1000.0,
            active.mean_duration_us / 1000.0,
            plan.max_latency_ratio
        ));
    }
    Verdict::Healthy
}

/// Both versions' figures since the canary started.
pub async fn figures(
    ctx: &Context,
    active_version_id: &str,
    canary: &Canary,
) -> Result<(VersionStats, VersionStats), StoreError> {
    let ids = [canary.row.version_id.as_str(), active_version_id];
    let mut stats = ctx.db.version_stats(&canary.row.plugin_id, &ids, canary.plan.started_at).await?;
    let active = stats.pop().unwrap_or_default();
    let canary = stats.pop().unwrap_or_default();
    Ok((canary, active))
}

/// The canary's state, for the API.
pub async fn view(ctx: &Context, active_version_id: &str, canary: &Canary) -> Result<CanaryView, StoreError> {
    let (c, a) = figures(ctx, active_version_id, canary).await?;
    let plan = &canary.plan;
    let state = match judge(plan, &c, &a) {
        Verdict::Watching => "watching",
        Verdict::Healthy => "healthy",
        Verdict::Failing(_) => "failing",
    };
    Ok(CanaryView {
        version: canary.row.version.clone(),
        percent: plan.percent,
        started_at: crate::clock::to_rfc3339(plan.started_at),
        state,
        min_invocations: plan.min_invocations,
        max_failure_increase: plan.max_failure_increase,
        max_latency_ratio: plan.max_latency_ratio,
        promote_at: plan.promote_after_ms.map(|ms| crate::clock::to_rfc3339(plan.started_at + ms)),
        canary: VersionFigures::from(&c),
        active: VersionFigures::from(&a),
    })
}

/// Ends a canary: promoted (its version becomes the active one) or rolled
/// back. Returns false when it had ended already (another node, or a
/// switch). Audited as `actor` with `detail`.
pub async fn end(
    ctx: &Context,
    canary: &Canary,
    promote: bool,
    actor: &str,
    detail: serde_json::Value,
) -> Result<bool, StoreError> {
    let routes = crate::manifest::routes_from_json(&canary.row.manifest_json);
    let ended =
        ctx.db.end_canary(&canary.row.plugin_id, &canary.row.version_id, promote.then_some(routes.as_slice())).await?;
    if !ended {
        return Ok(false);
    }
    ctx.reload().await?;
    ctx.pipeline.sweeper.now(); // unbound events run again at once
    let action = if promote { "plugin.canary.promote" } else { "plugin.canary.rollback" };
    let entry = AuditEntry {
        actor: actor.to_string(),
        action: action.to_string(),
        target: canary.row.name.clone(),
        detail: detail.to_string(),
        at: ctx.clock.now_ms(),
    };
    if let Err(e) = ctx.db.audit(&entry).await {
        tracing::error!(error = %e, "could not audit a canary decision");
    }
    tracing::info!(plugin = %canary.row.name, version = %canary.row.version, action, "canary ended");
    Ok(true)
}

/// Judges one plugin's canary, and acts on the verdict.
async fn judge_plugin(ctx: &Context, plugin_id: &str) -> Result<(), StoreError> {
    let Some(entry) = ctx.directory.snapshot().plugins.get(plugin_id).cloned() else { return Ok(()) };
    let Some(canary) = entry.canary.clone() else { return Ok(()) };
    let (c, a) = figures(ctx, &entry.row.version_id, &canary).await?;
    let plan = &canary.plan;
    let detail = |reason: &str| {
        serde_json::json!({
            "version": canary.row.version,
            "active_version": entry.row.version,
            "percent": plan.percent,
            "reason": reason,
            "canary": VersionFigures::from(&c),
            "active": VersionFigures::from(&a),
            "max_failure_increase": plan.max_failure_increase,
            "max_latency_ratio": plan.max_latency_ratio,
            "min_invocations": plan.min_invocations,
        })
    };
    match judge(plan, &c, &a) {
        Verdict::Failing(reason) => {
            tracing::warn!(plugin = %canary.row.name, version = %canary.row.version, %reason, "rolling a canary back");
            end(ctx, &canary, false, "canary", detail(&reason)).await?;
        }
        Verdict::Healthy => {
            if let Some(after) = plan.promote_after_ms
                && ctx.clock.now_ms() >= plan.started_at + after
            {
                end(ctx, &canary, true, "canary", detail("healthy when its promotion was due")).await?;
            }
        }
        Verdict::Watching => {}
    }
    Ok(())
}

/// Judges canaries as their plugins' invocations finish, and every few
/// seconds (a promotion falls due without traffic).
pub async fn watch(ctx: Arc<Context>) {
    let mut notifications = ctx.pipeline.notifications.subscribe();
    let mut next_round = ctx.clock.now_ms() + JUDGE_EVERY_MS;
    loop {
        let woken = tokio::select! {
            n = notifications.recv() => match n {
                Ok(Notification::CanaryInvoked { plugin_id }) => Some(plugin_id),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = ctx.clock.sleep_until(next_round) => None,
        };
        let plugins: Vec<String> = match woken {
            Some(id) => vec![id],
            None if ctx.clock.now_ms() >= next_round => {
                next_round = ctx.clock.now_ms() + JUDGE_EVERY_MS;
                let snapshot = ctx.directory.snapshot();
                snapshot.plugins.values().filter(|p| p.canary.is_some()).map(|p| p.row.plugin_id.clone()).collect()
            }
            None => continue,
        };
        for plugin_id in plugins {
            if let Err(e) = judge_plugin(&ctx, &plugin_id).await {
                tracing::error!(error = %e, "could not judge a canary");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CanaryPlan {
        CanaryPlan {
            percent: 10,
            started_at: 0,
            min_invocations: 20,
            max_failure_increase: 0.05,
            max_latency_ratio: 3.0,
            promote_after_ms: None,
        }
    }

    fn stats(invocations: i64, failures: i64, mean_us: f64) -> VersionStats {
        VersionStats { version_id: String::new(), invocations, failures, mean_duration_us: mean_us }
    }

    #[test]
    fn verdicts() {
        let p = plan();
        assert_eq!(judge(&p, &stats(19, 19, 10.0), &stats(100, 0, 10.0)), Verdict::Watching);
        assert_eq!(judge(&p, &stats(20, 1, 10.0), &stats(100, 0, 10.0)), Verdict::Healthy, "5% is allowed");
        assert!(matches!(judge(&p, &stats(20, 5, 10.0), &stats(100, 0, 10.0)), Verdict::Failing(_)));
        assert!(matches!(judge(&p, &stats(20, 5, 10.0), &stats(0, 0, 0.0)), Verdict::Failing(_)));
        assert_eq!(judge(&p, &stats(20, 5, 10.0), &stats(100, 20, 10.0)), Verdict::Healthy, "the active fails too");
        assert!(matches!(judge(&p, &stats(20, 0, 90_000.0), &stats(20, 0, 20_000.0)), Verdict::Failing(_)));
        assert_eq!(judge(&p, &stats(20, 0, 90_000.0), &stats(19, 0, 20_000.0)), Verdict::Healthy, "too few to compare");
        assert_eq!(judge(&p, &stats(20, 0, 400.0), &stats(20, 0, 100.0)), Verdict::Healthy, "microseconds are noise");
    }
}
