//! Limits an attacker cannot multiply:
//!
//! - per tenant, across all its keys: a token bucket per second (GCRA,
//!   `governor`) and a count per UTC day, configurable per tenant. On a
//!   database other nodes share, the bucket and the count live in the
//!   database, so a tenant's limit holds across the cluster rather than per
//!   node. Every keyed response says where the caller stands
//!   (`X-RateLimit-Limit`, `-Remaining`, `-Reset`); over the limit is 429
//!   with `Retry-After`;
//! - the admin API: one bucket for all callers (`admin_requests_per_second`);
//! - failed authentications per source address (bad keys, admin tokens,
//!   carrier signatures): past `failed_auth_per_minute`, the address gets
//!   429 on every request until the minute ends.

use super::auth;
use super::error::ApiError;
use crate::api::Context;
use crate::secrets;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

type SecondLimiter =
    RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock, StateInformationMiddleware>;

struct KeyLimits {
    per_second: u32,
    second: SecondLimiter,
    per_day: u64,
    day: i64,
    used_today: u64,
}

/// The limiters of every tenant seen on this node (by tenant id), the admin API's, and
/// the failed authentications per source address.
#[derive(Default)]
pub struct RateLimits {
    keys: Mutex<HashMap<String, KeyLimits>>,
    admin: Mutex<Option<(u32, SecondLimiter)>>,
    /// Source address → (minute, failures in it).
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// Addresses whose failures are remembered at once; past this, entries of
/// earlier minutes are dropped first.
const FAILURE_ENTRIES: usize = 100_000;

/// Marks a response as a failed authentication (set by `ApiError`).
#[derive(Clone, Copy)]
pub struct AuthFailed;

enum Verdict {
    Allowed { limit: u64, remaining: u64, reset: i64 },
    Refused { limit: u64, reset: i64, retry_after: u64 },
}

impl RateLimits {
    /// The cluster-wide check: the same verdicts, from the database.
    async fn check_shared(
        db: &dyn crate::store::Database,
        tenant_id: &str,
        per_second: u32,
        per_day: u64,
        now_ms: i64,
    ) -> Result<Verdict, crate::store::StoreError> {
        let now_s = now_ms / 1000;
        let per_second = per_second.max(1);
        let tokens = db.take_tokens(&format!("api:{tenant_id}"), per_second, per_second, 1).await?;
        if tokens.granted == 0 {
            let retry_after = ((1.0 - tokens.left).max(0.0) / f64::from(per_second)).ceil().max(1.0) as u64;
            return Ok(Verdict::Refused { limit: per_second as u64, reset: now_s + retry_after as i64, retry_after });
        }
        let today = now_ms / 86_400_000;
        if db.count_within(&format!("api-day:{tenant_id}"), today, 1, per_day).await?.is_none() {
            let midnight = (today + 1) * 86_400;
            return Ok(Verdict::Refused {
                limit: per_day,
                reset: midnight,
                retry_after: (midnight - now_s).max(1) as u64,
            });
        }
        let remaining = tokens.left.floor().max(0.0) as u64;
        let refill = ((f64::from(per_second) - tokens.left) / f64::from(per_second)).ceil().max(0.0) as i64;
        Ok(Verdict::Allowed { limit: per_second as u64, remaining, reset: now_s + refill })
    }

    /// Whether `ip` has used up its failed authentications this minute.
    fn blocked(&self, ip: IpAddr, limit: u32, now_ms: i64) -> Option<u64> {
        let minute = now_ms / 60_000;
        let failures = self.failures.lock().expect("failures lock");
        match failures.get(&ip) {
            Some((m, n)) if *m == minute && *n >= limit => Some((60 - (now_ms / 1000) % 60).max(1) as u64),
            _ => None,
        }
    }

    fn failed(&self, ip: IpAddr, now_ms: i64) {
        let minute = now_ms / 60_000;
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= FAILURE_ENTRIES {
            failures.retain(|_, (m, _)| *m == minute);
        }
        let entry = failures.entry(ip).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
    }

    fn check_admin(&self, per_second: u32) -> Result<(), u64> {
        let mut admin = self.admin.lock().expect("admin limit lock");
        if admin.as_ref().is_none_or(|(rate, _)| *rate != per_second) {
            let quota = Quota::per_second(NonZeroU32::new(per_second.max(1)).expect("non-zero"));
            *admin = Some((per_second, RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>()));
        }
        let (_, limiter) = admin.as_ref().expect("set above");
        limiter.check().map(|_| ()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    fn check(&self, tenant_id: &str, per_second: u32, per_day: u64, now_ms: i64) -> Verdict {
        let mut keys = self.keys.lock().expect("rate limit lock");
        let fresh = || KeyLimits {
            per_second,
            second: RateLimiter::direct(Quota::per_second(NonZeroU32::new(per_second.max(1)).expect("non-zero")))
                .with_middleware::<StateInformationMiddleware>(),
            per_day,
            day: now_ms / 86_400_000,
            used_today: 0,
        };
        let k = keys.entry(tenant_id.to_string()).or_insert_with(fresh);
        if k.per_second != per_second || k.per_day != per_day {
            *k = fresh(); // the tenant's limits changed
        }
        let today = now_ms / 86_400_000;
        if k.day != today {
            k.day = today;
            k.used_today = 0;
        }
        let now_s = now_ms / 1000;
        if k.used_today >= k.per_day {
            let midnight = (today + 1) * 86_400;
            return Verdict::Refused {
                limit: k.per_day,
                reset: midnight,
                retry_after: (midnight - now_s).max(1) as u64,
            };
        }
        match k.second.check() {
            Ok(state) => {
                k.used_today += 1;
                let remaining = state.remaining_burst_capacity() as u64;
                let refill = (per_second as u64 - remaining).div_ceil(per_second.max(1) as u64);
                Verdict::Allowed { limit: per_second as u64, remaining, reset: now_s + refill as i64 }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Verdict::Refused {
                    limit: per_second as u64,
                    reset: now_s + retry_after as i64,
                    retry_after: retry_after.max(1),
                }
            }
        }
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, v);
    }
}

/// Applies the limits of the caller's tenant (all its keys share them, and
/// so do the web console's calls made with one of them). Requests without a
/// (valid) key pass through: authentication answers them.
pub async fn limit(State(ctx): State<Arc<Context>>, req: Request, next: Next) -> Response {
    let key_hash = match (auth::presented_secret(req.headers()), req.extensions().get::<auth::ConsoleAuthority>()) {
        (Some(key), _) => secrets::hash_key(&key),
        (None, Some(auth::ConsoleAuthority::Tenant { key_hash })) => key_hash.clone(),
        _ => return next.run(req).await,
    };
    let snapshot = ctx.engine.directory.snapshot();
    let Some(found) = snapshot.api_keys.get(&key_hash) else { return next.run(req).await };
    let settings = snapshot.tenants.get(&found.tenant_id).map(|t| t.settings.clone()).unwrap_or_default();
    let per_second = settings.requests_per_second.unwrap_or(ctx.engine.limits.api_requests_per_second);
    let per_day = settings.requests_per_day.unwrap_or(ctx.engine.limits.api_requests_per_day);
    let tenant_id = found.tenant_id.clone();
    drop(snapshot);
    let now_ms = ctx.engine.clock.now_ms();
    let verdict = if ctx.engine.db.shared() {
        match RateLimits::check_shared(ctx.engine.db.as_ref(), &tenant_id, per_second, per_day, now_ms).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; limiting on this node alone");
                ctx.rate_limits.check(&tenant_id, per_second, per_day, now_ms)
            }
        }
    } else {
        ctx.rate_limits.check(&tenant_id, per_second, per_day, now_ms)
    };
    match verdict {
        Verdict::Allowed { limit, remaining, reset } => {
            let mut response = next.run(req).await;
            let h = response.headers_mut();
            set(h, "x-ratelimit-limit", limit);
            set(h, "x-ratelimit-remaining", remaining);
            set(h, "x-ratelimit-reset", reset);
            response
        }
        Verdict::Refused { limit, reset, retry_after } => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("rate limit exceeded; retry in {retry_after} s"),
            )
            .into_response();
            let h = response.headers_mut();
            set(h, "retry-after", retry_after);
            set(h, "x-ratelimit-limit", limit);
            set(h, "x-ratelimit-remaining", 0);
            set(h, "x-ratelimit-reset", reset);
            response
        }
    }
}

/// The admin API's one bucket (on a shared database, the cluster's).
pub async fn limit_admin(State(ctx): State<Arc<Context>>, req: Request, next: Next) -> Response {
    let per_second = ctx.engine.limits.admin_requests_per_second;
    let verdict = if ctx.engine.db.shared() {
        match ctx.engine.db.take_tokens("admin", per_second.max(1), per_second.max(1), 1).await {
            Ok(t) if t.granted == 0 => Err(1),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "shared admin limit unavailable; limiting on this node alone");
                ctx.rate_limits.check_admin(per_second)
            }
        }
    } else {
        ctx.rate_limits.check_admin(per_second)
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("the admin API takes {per_second} requests per second; retry in {retry_after} s"),
            )
            .into_response();
            set(response.headers_mut(), "retry-after", retry_after);
            response
        }
    }
}

/// Refuses sources that failed authentication too often this minute, and
/// counts the failures of the requests it lets through.
pub async fn limit_failures(State(ctx): State<Arc<Context>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let limit = ctx.engine.limits.failed_auth_per_minute;
    if let Some(retry_after) = ctx.rate_limits.blocked(ip, limit, ctx.engine.clock.now_ms()) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many failed authentications from this address; retry in {retry_after} s"),
        )
        .into_response();
        set(response.headers_mut(), "retry-after", retry_after);
        return response;
    }
    let response = next.run(req).await;
    if response.extensions().get::<AuthFailed>().is_some() {
        ctx.rate_limits.failed(ip, ctx.engine.clock.now_ms());
    }
    response
}
