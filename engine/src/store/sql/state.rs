//! The kv and timers a batch of completions reads and writes, in a few
//! multi-row statements per batch instead of one per key.
//!
//! A completion commits only if every kv key it read still has the version
//! it saw. The versions of all keys a batch read are read in one statement
//! ([`KvVersions::read`]) and then checked in completion order against an
//! in-memory copy that each committed completion's writes update
//! ([`KvVersions::check_and_write`]), so two completions of one batch that
//! touch the same key still conflict exactly as if each had its own
//! transaction. The writes themselves go in after the loop
//! ([`write_state`]), one final value per key.
//!
//! On PostgreSQL, other nodes complete events at the same time: the keys
//! are locked (transaction advisory locks, one order for every caller)
//! before their versions are read, so no other transaction can change a
//! key between this check and this commit.

use super::{Conn, INSERT_CHUNK, for_every_backend};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{QueryBuilder, Row};
use std::collections::{BTreeSet, HashMap};

/// Sets one kv key, bumping its version (what isolation checks at commit).
pub(super) const KV_UPSERT: &str = "INSERT INTO kv (tenant_id, plugin_id, key, value, version, updated_at) \
     VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (tenant_id, plugin_id, key) DO UPDATE SET value = excluded.value, \
     version = kv.version + 1, updated_at = excluded.updated_at";

/// One plugin's kv key (or timer key): tenant, plugin, key.
type Key<'a> = (&'a str, &'a str, &'a str);

/// The advisory lock name of one kv key (any collision only serialises
/// two unrelated keys).
pub(super) fn kv_lock(tenant_id: &str, plugin_id: &str, key: &str) -> String {
    format!("kv\u{1}{tenant_id}\u{1}{plugin_id}\u{1}{key}")
}

/// The current version of every key a batch read (0: absent), as the
/// batch's own writes leave it.
pub(super) struct KvVersions<'a> {
    versions: HashMap<Key<'a>, i64>,
}

for_every_backend! {
/// Locks (PostgreSQL) every key the succeeded `completions` read or write,
/// then reads the versions of those they read, a statement per chunk.
pub(super) async fn read_kv_versions<'a>(
    conn: &mut Conn<DB>,
    completions: &[&'a EventCompletion],
) -> StoreResult<KvVersions<'a>> {
    let mut read: BTreeSet<Key<'a>> = BTreeSet::new();
    let mut touched: Vec<String> = Vec::new();
    for c in completions {
        let Completion::Succeeded(effects) = &c.completion else { continue };
        for (key, _) in &effects.kv_reads {
            read.insert((c.tenant_id.as_str(), c.plugin_id.as_str(), key.as_str()));
            touched.push(kv_lock(&c.tenant_id, &c.plugin_id, key));
        }
        for (key, _) in &effects.kv_writes {
            touched.push(kv_lock(&c.tenant_id, &c.plugin_id, key));
        }
    }
    DB::lock_keys(conn, &touched).await?;
    let read: Vec<Key<'a>> = read.into_iter().collect();
    // Absent keys are not returned: their version is 0.
    let mut found: HashMap<(String, String, String), i64> = HashMap::new();
    for chunk in read.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new("WITH k(t, p, key) AS (");
        q.push_values(chunk, |mut b, (t, p, key)| {
            b.push_bind(*t).push_bind(*p).push_bind(*key);
        });
        q.push(
            ") SELECT kv.tenant_id, kv.plugin_id, kv.key, kv.version FROM k \
             JOIN kv ON kv.tenant_id = k.t AND kv.plugin_id = k.p AND kv.key = k.key",
        );
        for r in q.build().fetch_all(&mut *conn).await? {
            found.insert((r.get(0), r.get(1), r.get(2)), r.get(3));
        }
    }
    let versions = read
        .into_iter()
        .map(|k @ (t, p, key)| (k, found.get(&(t.to_string(), p.to_string(), key.to_string())).copied().unwrap_or(0)))
        .collect();
    Ok(KvVersions { versions })
}
}

impl<'a> KvVersions<'a> {
    /// Whether every key `c` read still has the version it saw, given the
    /// writes of the completions checked before it.
    pub(super) fn still_valid(&self, c: &EventCompletion, effects: &Effects) -> bool {
        effects.kv_reads.iter().all(|(key, seen)| {
            let current = self.versions.get(&(c.tenant_id.as_str(), c.plugin_id.as_str(), key.as_str()));
            current.copied().unwrap_or(0) == *seen
        })
    }

    /// Records that `c` committed its writes: a later completion that read
    /// one of these keys before this commit now conflicts.
    pub(super) fn wrote(&mut self, c: &'a EventCompletion, effects: &'a Effects) {
        for (key, value) in &effects.kv_writes {
            let k = (c.tenant_id.as_str(), c.plugin_id.as_str(), key.as_str());
            if let Some(v) = self.versions.get_mut(&k) {
                *v = if value.is_some() { *v + 1 } else { 0 };
            }
        }
    }
}

/// The kv and timer writes of a batch's committed completions, one final
/// operation per key (the last completion's), in completion order.
#[derive(Default)]
pub(super) struct StateWrites<'a> {
    kv: HashMap<Key<'a>, (Option<&'a [u8]>, Millis)>,
    timers: HashMap<Key<'a>, (Option<&'a TimerOp>, Millis)>,
}

impl<'a> StateWrites<'a> {
    pub(super) fn add(&mut self, c: &'a EventCompletion, effects: &'a Effects, now: Millis) {
        for (key, value) in &effects.kv_writes {
            let k = (c.tenant_id.as_str(), c.plugin_id.as_str(), key.as_str());
            self.kv.insert(k, (value.as_deref(), now));
        }
        for op in &effects.timer_ops {
            let (key, schedule) = match op {
                TimerOp::Schedule { key, .. } => (key, Some(op)),
                TimerOp::Cancel { key } => (key, None),
            };
            self.timers.insert((c.tenant_id.as_str(), c.plugin_id.as_str(), key.as_str()), (schedule, now));
        }
    }
}

for_every_backend! {
/// Writes `writes`: upserts and deletes of kv keys and timers, each a
/// multi-row statement per chunk.
pub(super) async fn write_state(conn: &mut Conn<DB>, writes: &StateWrites<'_>) -> StoreResult<()> {
    let mut kv_set = Vec::new();
    let mut kv_deleted = Vec::new();
    for (k, (value, now)) in &writes.kv {
        match value {
            Some(value) => kv_set.push((*k, *value, *now)),
            None => kv_deleted.push(*k),
        }
    }
    for chunk in kv_set.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO kv (tenant_id, plugin_id, key, value, version, updated_at) ");
        q.push_values(chunk, |mut b, ((t, p, key), value, now)| {
            b.push_bind(*t).push_bind(*p).push_bind(*key).push_bind(*value).push_bind(1i64).push_bind(*now);
        });
        q.push(
            " ON CONFLICT (tenant_id, plugin_id, key) DO UPDATE SET value = excluded.value, \
             version = kv.version + 1, updated_at = excluded.updated_at",
        );
        q.build().execute(&mut *conn).await?;
    }
    delete_keys::<DB>(conn, "kv", &kv_deleted).await?;
    let mut scheduled = Vec::new();
    let mut cancelled = Vec::new();
    for (k, (op, now)) in &writes.timers {
        match op {
            Some(TimerOp::Schedule { due_at, payload, mode, .. }) => {
                scheduled.push((*k, *due_at, payload.as_str(), *mode, *now))
            }
            _ => cancelled.push(*k),
        }
    }
    for chunk in scheduled.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO timers (tenant_id, plugin_id, key, due_at, payload, created_at, mode) ");
        q.push_values(chunk, |mut b, ((t, p, key), due_at, payload, mode, now)| {
            b.push_bind(*t)
                .push_bind(*p)
                .push_bind(*key)
                .push_bind(*due_at)
                .push_bind(*payload)
                .push_bind(*now)
                .push_bind(*mode);
        });
        q.push(
            " ON CONFLICT (tenant_id, plugin_id, key) DO UPDATE SET due_at = excluded.due_at, \
             payload = excluded.payload, created_at = excluded.created_at, mode = excluded.mode",
        );
        q.build().execute(&mut *conn).await?;
    }
    delete_keys::<DB>(conn, "timers", &cancelled).await?;
    Ok(())
}
}

for_every_backend! {
/// Deletes the rows of `table` (kv or timers) with these keys.
async fn delete_keys(conn: &mut Conn<DB>, table: &'static str, keys: &[Key<'_>]) -> StoreResult<()> {
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new("WITH k(t, p, key) AS (");
        q.push_values(chunk, |mut b, (t, p, key)| {
            b.push_bind(*t).push_bind(*p).push_bind(*key);
        });
        q.push(") DELETE FROM ")
            .push(table)
            .push(" WHERE (tenant_id, plugin_id, key) IN (SELECT t, p, key FROM k)");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
}
