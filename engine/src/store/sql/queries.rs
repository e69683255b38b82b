//! Reads for the API: messages with their history, events.

use super::{DbRow, for_every_backend};
use crate::store::*;
use sqlx::{Pool, QueryBuilder, Row};
use std::collections::HashMap;

const MESSAGE_SELECT: &str = "SELECT m.id, m.direction, m.from_addr, m.to_addr, m.body, m.status, m.segments, \
    m.encoding, m.reference, m.error_code, m.connector, m.provider_id, p.name, m.in_reply_to, m.created_at, m.updated_at, \
    m.mode, m.scheduled_at, m.price, m.batch_id, m.account_sid, m.trace_context FROM messages m LEFT JOIN plugins p ON p.id = m.plugin_id";

for_every_backend! {
fn message_view(r: &DbRow<DB>) -> MessageView {
    MessageView {
        id: r.get(0),
        direction: r.get(1),
        from: r.get(2),
        to: r.get(3),
        body: r.get(4),
        status: r.get(5),
        segments: r.get(6),
        encoding: r.get(7),
        reference: r.get(8),
        error_code: r.get(9),
        connector: r.get(10),
        provider_id: r.get(11),
        plugin: r.get(12),
        in_reply_to: r.get(13),
        created_at: r.get(14),
        updated_at: r.get(15),
        mode: r.get(16),
        scheduled_at: r.get(17),
        price: r.get(18),
        batch_id: r.get(19),
        account_sid: r.get(20),
        trace_context: r.get(21),
        history: Vec::new(),
        parts: Vec::new(),
    }
}
}

/// Events with their plugin's name (a number's webhook app has no plugin
/// row: its `app:` source stands in).
const EVENT_SELECT: &str = "SELECT e.id, COALESCE(p.name, e.plugin_id), e.kind, e.name, e.status, e.attempts, \
    e.last_error, e.message_id, e.created_at, e.updated_at, v.version, e.mode FROM events e \
    LEFT JOIN plugins p ON p.id = e.plugin_id LEFT JOIN plugin_versions v ON v.id = e.version_id";

for_every_backend! {
fn event_view(r: &DbRow<DB>) -> EventView {
    EventView {
        id: r.get(0),
        plugin: r.get(1),
        kind: r.get(2),
        name: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        last_error: r.get(6),
        message_id: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
        version: r.get(10),
        mode: r.get(11),
    }
}
}

for_every_backend! {
/// Adds each message's status history, in the order it was recorded.
async fn attach_history(pool: &Pool<DB>, messages: &mut [MessageView]) -> StoreResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<DB> =
        QueryBuilder::new("SELECT message_id, status, at, error_code FROM message_status WHERE message_id IN (");
    let mut ids = q.separated(", ");
    for m in messages.iter() {
        ids.push_bind(&m.id);
    }
    // Record order is causal order; carriers' own timestamps need not agree.
    q.push(") ORDER BY ").push(DB::STATUS_RECORD_ORDER);
    let mut by_id: HashMap<String, Vec<StatusEntry>> = HashMap::new();
    for r in q.build().fetch_all(pool).await? {
        by_id.entry(r.get(0)).or_default().push(StatusEntry {
            status: r.get(1),
            at: r.get(2),
            error_code: r.get(3),
        });
    }
    for m in messages.iter_mut() {
        m.history = by_id.remove(&m.id).unwrap_or_default();
    }
    Ok(())
}
}

for_every_backend! {
impl Queries {
    async fn queue_depths(&self) -> StoreResult<Vec<QueueDepthRow>> {
        let rows = sqlx::query(
            "SELECT 'events', COUNT(*), MIN(run_at) FROM events WHERE status = 'pending' \
             UNION ALL SELECT 'outbox', COUNT(*), MIN(run_at) FROM outbox \
             UNION ALL SELECT 'timers', COUNT(*), MIN(due_at) FROM timers \
             UNION ALL SELECT 'webhooks', COUNT(*), MIN(run_at) FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| QueueDepthRow { queue: r.get(0), depth: r.get(1), earliest_due: r.get(2) })
            .collect())
    }

    async fn get_message(&self, tenant_id: &str, id: &str) -> StoreResult<Option<MessageView>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{MESSAGE_SELECT} WHERE m.tenant_id = $1 AND m.id = $2")))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut views = [message_view::<B::Db>(&row)];
        attach_history::<B::Db>(self.reader(), &mut views).await?;
        let [mut view] = views;
        view.parts = sqlx::query(
            "SELECT part, provider_id, status, error_code FROM message_parts WHERE message_id = $1 ORDER BY part",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(|r| PartView { part: r.get(0), provider_id: r.get(1), status: r.get(2), error_code: r.get(3) })
        .collect();
        Ok(Some(view))
    }

    async fn list_messages(&self, tenant_id: &str, f: &MessageFilter) -> StoreResult<Vec<MessageView>> {
        let mut q: QueryBuilder<B::Db> = QueryBuilder::new(MESSAGE_SELECT);
        q.push(" WHERE m.tenant_id = ").push_bind(tenant_id);
        if let Some(d) = f.direction {
            q.push(" AND m.direction = ").push_bind(d.as_str());
        }
        if let Some(s) = f.status {
            q.push(" AND m.status = ").push_bind(s.as_str());
        }
        if let Some(to) = &f.to {
            q.push(" AND m.to_addr = ").push_bind(to);
        }
        if let Some(from) = &f.from {
            q.push(" AND m.from_addr = ").push_bind(from);
        }
        if let Some(since) = f.since {
            q.push(" AND m.created_at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            q.push(" AND m.created_at < ").push_bind(until);
        }
        if let Some(r) = &f.in_reply_to {
            q.push(" AND m.in_reply_to = ").push_bind(r);
        }
        if let Some(mode) = &f.mode {
            q.push(" AND m.mode = ").push_bind(mode);
        }
        if let Some(batch) = &f.batch_id {
            q.push(" AND m.batch_id = ").push_bind(batch);
        }
        if let Some(before) = &f.before_id {
            q.push(" AND m.id < ").push_bind(before);
        }
        if let Some(text) = &f.text {
            let escaped = text.to_ascii_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q.push(" AND LOWER(m.body) LIKE ").push_bind(format!("%{escaped}%")).push(" ESCAPE '\\'");
        }
        q.push(" ORDER BY m.id DESC LIMIT ").push_bind(f.limit as i64);
        let rows = q.build().fetch_all(self.reader()).await?;
        let mut views: Vec<MessageView> = rows.iter().map(message_view::<B::Db>).collect();
        attach_history::<B::Db>(self.reader(), &mut views).await?;
        Ok(views)
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> StoreResult<Option<EventView>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{EVENT_SELECT} WHERE e.tenant_id = $1 AND e.id = $2")))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.as_ref().map(event_view::<B::Db>))
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        status: &str,
        limit: u32,
        before: Option<&str>,
    ) -> StoreResult<Vec<EventView>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EVENT_SELECT} WHERE e.plugin_id = $1 AND e.status = $2 AND e.tenant_id = $3 AND e.id < $4 \
             ORDER BY e.id DESC LIMIT $5"
        )))
        .bind(plugin_id)
        .bind(status)
        .bind(tenant_id)
        // Event ids sort by creation time; every id sorts before "evt`".
        .bind(before.unwrap_or("evt`"))
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(event_view::<B::Db>).collect())
    }

    async fn kv_entries(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<KvRow>> {
        // Range scan on the primary key: (max(prefix, after), prefix + U+10FFFF).
        let upper = format!("{prefix}\u{10FFFF}");
        let (from, inclusive) = match after {
            Some(a) if a >= prefix => (a, false),
            _ => (prefix, true),
        };
        let op = if inclusive { ">=" } else { ">" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT key, value, version, updated_at FROM kv WHERE tenant_id = $1 AND plugin_id = $2 \
             AND key {op} $3 AND key < $4 ORDER BY key LIMIT $5"
        )))
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(from)
        .bind(upper)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| KvRow { key: r.get(0), value: r.get(1), version: r.get(2), updated_at: r.get(3) })
            .collect())
    }

    async fn pending_timers(
        &self,
        tenant_id: &str,
        plugin_id: &str,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<TimerRow>> {
        let (due, key) = after.unwrap_or((Millis::MIN, ""));
        let rows = sqlx::query(
            "SELECT key, due_at, payload, mode, created_at FROM timers WHERE tenant_id = $1 AND plugin_id = $2 \
             AND (due_at > $3 OR (due_at = $3 AND key > $4)) ORDER BY due_at, key LIMIT $5",
        )
        .bind(tenant_id)
        .bind(plugin_id)
        .bind(due)
        .bind(key)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| TimerRow {
                key: r.get(0),
                due_at: r.get(1),
                payload: r.get(2),
                mode: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    async fn events_for_message(&self, tenant_id: &str, message_id: &str) -> StoreResult<Vec<EventView>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EVENT_SELECT} WHERE e.tenant_id = $1 AND e.message_id = $2 AND e.kind IN ('inbound', 'app') ORDER BY e.id"
        )))
        .bind(tenant_id)
        .bind(message_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(event_view::<B::Db>).collect())
    }
}
}
