//! Completing events: an invocation's effects commit with its event, for
//! a whole batch of completions in one transaction.
//!
//! Each completion is checked on its own (the lease still ours, the kv
//! versions it read unchanged, the balance able to pay), but the rows the
//! batch reads and writes — kv versions, kv and timers ([`super::state`]),
//! messages, outbox, events done, invocation records — go as multi-row
//! statements: every statement is a round trip to SQLite's
//! thread, and per-completion statements were what bounded throughput.

use super::RowsAffected;
use super::events::{insert_messages, insert_outbox, marked_ids};
use super::state::{StateWrites, read_kv_versions, write_state};
use super::{Conn, INSERT_CHUNK, for_every_backend};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{Connection, QueryBuilder, Row};
use std::collections::{HashMap, HashSet};

for_every_backend! {
/// Applies `completions` in order inside the caller's transaction.
pub(in crate::store) async fn complete(
    tx: &mut Conn<DB>,
    completions: &[EventCompletion],
) -> StoreResult<Vec<CompletionResult>> {
    let ours = still_ours::<DB>(tx, completions).await?;
    let ours_in_order: Vec<&EventCompletion> =
        completions.iter().filter(|c| ours.contains(c.event_id.as_str())).collect();
    let mut versions = read_kv_versions::<DB>(tx, &ours_in_order).await?;
    let mut state = StateWrites::default();
    let mut results = Vec::with_capacity(completions.len());
    // Written after the loop, for the whole batch.
    let mut sends: Vec<&NewMessage> = Vec::new();
    let mut outbox: HashMap<&str, (Millis, Vec<&NewMessage>)> = HashMap::new();
    let mut done: Vec<(&str, Millis)> = Vec::new();
    let mut records: Vec<&InvocationRecord> = Vec::new();
    // Plugins whose failure count goes back to zero (their latest outcome was a success).
    let mut succeeded: HashSet<&str> = HashSet::new();
    // Sends written `sending` at once (see `marked_at_commit`).
    let mut marked: HashSet<&str> = HashSet::new();
    for c in completions {
        let now = c.record.started_at + c.record.duration_us / 1000;
        if !ours.contains(c.event_id.as_str()) {
            results.push(CompletionResult::LeaseLost);
            continue;
        }
        match &c.completion {
            Completion::Succeeded(effects) => {
                if !versions.still_valid(c, effects) {
                    results.push(CompletionResult::Conflict);
                    continue;
                }
                if effects.sends.iter().any(|m| m.price > 0) {
                    // A savepoint, so an unpayable completion undoes only itself.
                    let mut sp = (*tx).begin().await?;
                    if !debit::<DB>(&mut sp, c, effects, now).await? {
                        drop(sp);
                        results.push(CompletionResult::Conflict);
                        continue;
                    }
                    sp.commit().await?;
                }
                versions.wrote(c, effects);
                state.add(c, effects, now);
                sends.extend(effects.sends.iter());
                marked.extend(marked_ids(effects.sends.iter().map(|m| (m, &c.outbox_lease))));
                let lease = outbox.entry(c.outbox_lease.owner.as_str()).or_insert((c.outbox_lease.until, Vec::new()));
                lease.0 = lease.0.max(c.outbox_lease.until);
                lease.1.extend(effects.sends.iter());
                done.push((c.event_id.as_str(), now));
                if c.record.outcome == "ok" {
                    succeeded.insert(c.plugin_id.as_str());
                }
                results.push(CompletionResult::Committed {
                    outbox: outbox_items(&effects.sends, Some(&c.outbox_lease)),
                    timers_changed: !effects.timer_ops.is_empty(),
                    suspended: false,
                });
            }
            Completion::Failed { error, retry_at } => {
                sqlx::query(
                    "UPDATE events SET status = $1, attempts = attempts + 1, run_at = COALESCE($2, run_at), \
                     lease_owner = NULL, lease_until = NULL, last_error = $3, updated_at = $4, \
                     version_id = COALESCE($5, version_id) WHERE id = $6",
                )
                .bind(if retry_at.is_some() { "pending" } else { "dead" })
                .bind(retry_at)
                .bind(error)
                .bind(now)
                // Bound to the version that failed: its retries run it too.
                .bind(Some(c.record.version_id.as_str()).filter(|v| !v.is_empty() && !c.record.canary))
                .bind(&c.event_id)
                .execute(&mut *tx)
                .await?;
                // A success earlier in the batch reset the count before this failure.
                if succeeded.remove(c.plugin_id.as_str()) {
                    reset_failures::<DB>(tx, &[c.plugin_id.as_str()]).await?;
                }
                let suspended = c.record.outcome != "not_run" && count_failure::<DB>(tx, c).await?;
                results.push(CompletionResult::Committed { outbox: Vec::new(), timers_changed: false, suspended });
            }
            Completion::Deferred { until, reason } => {
                sqlx::query(
                    "UPDATE events SET run_at = $1, lease_owner = NULL, lease_until = NULL, last_error = $2, \
                     updated_at = $3 WHERE id = $4",
                )
                .bind(until)
                .bind(reason)
                .bind(now)
                .bind(&c.event_id)
                .execute(&mut *tx)
                .await?;
                results.push(CompletionResult::Committed {
                    outbox: Vec::new(),
                    timers_changed: false,
                    suspended: false,
                });
                continue;
            }
        }
        records.push(&c.record);
    }
    write_state::<DB>(tx, &state).await?;
    insert_messages::<DB>(tx, &sends, &marked).await?;
    for (owner, (until, messages)) in outbox {
        insert_outbox::<DB>(tx, &messages, &Lease { owner: owner.to_string(), until }).await?;
    }
    for chunk in done.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new("WITH d(id, at) AS (");
        q.push_values(chunk, |mut b, (id, at)| {
            b.push_bind(*id).push_bind(*at);
        });
        q.push(
            ") UPDATE events SET status = 'done', attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, \
             last_error = NULL, updated_at = d.at FROM d WHERE events.id = d.id",
        );
        q.build().execute(&mut *tx).await?;
    }
    let succeeded: Vec<&str> = succeeded.into_iter().collect();
    reset_failures::<DB>(tx, &succeeded).await?;
    record_invocations::<DB>(tx, &records).await?;
    Ok(results)
}
}

for_every_backend! {
async fn reset_failures(conn: &mut Conn<DB>, plugin_ids: &[&str]) -> StoreResult<()> {
    if plugin_ids.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<DB> =
        QueryBuilder::new("UPDATE plugins SET consecutive_failures = 0 WHERE consecutive_failures > 0 AND id IN (");
    let mut ids = q.separated(", ");
    for id in plugin_ids {
        ids.push_bind(*id);
    }
    q.push(")");
    q.build().execute(&mut *conn).await?;
    Ok(())
}
}

for_every_backend! {
/// Invocation records and their log lines, a statement or two per batch.
async fn record_invocations(conn: &mut Conn<DB>, records: &[&InvocationRecord]) -> StoreResult<()> {
    for chunk in records.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO invocations (tenant_id, plugin_id, version_id, event_id, trigger, started_at, duration_us, \
             fuel_used, memory_peak, outcome, error, recording, recording_bytes) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.tenant_id)
                .push_bind(&r.plugin_id)
                .push_bind(&r.version_id)
                .push_bind(&r.event_id)
                .push_bind(r.trigger)
                .push_bind(r.started_at)
                .push_bind(r.duration_us)
                .push_bind(r.fuel_used)
                .push_bind(r.memory_peak)
                .push_bind(r.outcome)
                .push_bind(&r.error)
                .push_bind(&r.recording)
                .push_bind(r.recording.as_ref().map_or(0, |b| b.len() as i64));
        });
        q.build().execute(&mut *conn).await?;
    }
    let logs: Vec<(&InvocationRecord, &LogLine)> =
        records.iter().flat_map(|r| r.logs.iter().map(move |l| (*r, l))).collect();
    for chunk in logs.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO plugin_logs (tenant_id, plugin_id, event_id, level, message, at) ");
        q.push_values(chunk, |mut b, (r, l)| {
            b.push_bind(&r.tenant_id)
                .push_bind(&r.plugin_id)
                .push_bind(&r.event_id)
                .push_bind(l.level)
                .push_bind(&l.message)
                .push_bind(l.at);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
}

for_every_backend! {
/// Counts a failed invocation; suspends the plugin (returning true) when
/// it failed `suspend_after` times in a row.
async fn count_failure(conn: &mut Conn<DB>, c: &EventCompletion) -> StoreResult<bool> {
    let failures: Option<i64> = sqlx::query_scalar(
        "UPDATE plugins SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 RETURNING consecutive_failures",
    )
    .bind(&c.plugin_id)
    .fetch_optional(&mut *conn)
    .await?;
    // A number's webhook app has no plugin row, and nothing to suspend.
    let Some(failures) = failures else { return Ok(false) };
    if c.suspend_after == 0 || failures < c.suspend_after as i64 {
        return Ok(false);
    }
    let reason = format!(
        "suspended after {failures} failed invocations in a row; last error: {}",
        c.record.error.as_deref().unwrap_or("unknown")
    );
    let n =
        sqlx::query("UPDATE plugins SET status = 'suspended', status_reason = $1 WHERE id = $2 AND status = 'active'")
            .bind(&reason)
            .bind(&c.plugin_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok(n > 0)
}
}

for_every_backend! {
/// The events of `completions` still ours to complete: pending, leased to
/// us, and at the attempt we ran (a re-claimed copy of the same attempt
/// loses). One query for the batch, locking the rows where other nodes
/// could claim them before this commit (in one order, by id).
async fn still_ours<'a>(
    conn: &mut Conn<DB>,
    completions: &'a [EventCompletion],
) -> StoreResult<HashSet<&'a str>> {
    let mut current: HashMap<String, (String, Option<String>, i64)> = HashMap::new();
    for chunk in completions.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("SELECT id, status, lease_owner, attempts FROM events WHERE id IN (");
        let mut ids = q.separated(", ");
        for c in chunk {
            ids.push_bind(&c.event_id);
        }
        // Locked until commit: a node claiming an expired lease now skips
        // these rows instead of taking them from under this completion.
        q.push(") ORDER BY id ").push(DB::LOCK_ROWS);
        for r in q.build().fetch_all(&mut *conn).await? {
            current.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
        }
    }
    Ok(completions
        .iter()
        .filter(|c| {
            current.get(&c.event_id).is_some_and(|(status, owner, attempts)| {
                status == "pending" && owner.as_deref() == Some(c.lease_owner.as_str()) && *attempts == c.attempt as i64
            })
        })
        .map(|c| c.event_id.as_str())
        .collect())
}
}

for_every_backend! {
/// Debits an invocation's priced messages; `false` if the tenant's balance
/// cannot pay for them (the caller rolls back and re-runs the invocation,
/// which then sees the balance and is refused).
async fn debit(conn: &mut Conn<DB>, c: &EventCompletion, effects: &Effects, now: Millis) -> StoreResult<bool> {
    for m in effects.sends.iter().filter(|m| m.price > 0) {
        let debited = super::status::ledger_entry::<DB>(
            conn,
            super::status::Entry {
                tenant_id: &c.tenant_id,
                amount: -m.price,
                kind: "debit",
                message_id: Some(&m.id),
                note: None,
                at: now,
            },
            true,
        )
        .await?;
        if debited.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}
}
