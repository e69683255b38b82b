//! Inbound messages, events and timers: the rows every accepted message
//! or fired timer becomes.

use super::completions::complete;
use super::governance::insert_opt_out;
use super::status::{StatusChange, callbacks_owed};
use super::{Conn, DbRow, Dialect, INSERT_CHUNK, for_every_backend, retrying};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{QueryBuilder, Row};
use std::collections::{HashMap, HashSet};

pub(in crate::store) const EVENT_COLUMNS: &str =
    "id, tenant_id, plugin_id, kind, name, payload, message_id, attempts, created_at, mode, version_id, trace_context";

for_every_backend! {
/// Whether a compliance confirmation goes out: the sender has had fewer
/// than the limit from this number in the current hour, and the balance
/// pays for it (debited here, in the message's transaction).
pub(in crate::store) async fn may_confirm(conn: &mut Conn<DB>, b: &NewInbound, c: &NewMessage) -> StoreResult<bool> {
    let now = b.message.created_at;
    let replies: i64 = sqlx::query_scalar(
        "INSERT INTO reply_windows (number, sender, window_start, replies) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (number, sender) DO UPDATE SET \
         replies = CASE WHEN reply_windows.window_start <= $4 THEN 1 ELSE reply_windows.replies + 1 END, \
         window_start = CASE WHEN reply_windows.window_start <= $4 THEN excluded.window_start \
         ELSE reply_windows.window_start END RETURNING replies",
    )
    .bind(&b.message.to)
    .bind(&b.message.from)
    .bind(now)
    .bind(now - REPLY_WINDOW_MS)
    .fetch_one(&mut *conn)
    .await?;
    if replies > i64::from(b.confirmations_per_hour) {
        return Ok(false);
    }
    if c.price == 0 {
        return Ok(true);
    }
    let entry = super::status::Entry {
        tenant_id: &c.tenant_id,
        amount: -c.price,
        kind: "debit",
        message_id: Some(&c.id),
        note: None,
        at: now,
    };
    Ok(super::status::ledger_entry::<DB>(conn, entry, true).await?.is_some())
}
}

for_every_backend! {
pub(in crate::store) fn event_row(r: DbRow<DB>) -> StoreResult<EventRow> {
    let kind: String = r.get(3);
    Ok(EventRow {
        id: r.get(0),
        tenant_id: r.get(1),
        plugin_id: r.get(2),
        kind: EventKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))?,
        name: r.get(4),
        payload: r.get(5),
        message_id: r.get(6),
        attempts: r.get::<i64, _>(7) as u32,
        created_at: r.get(8),
        mode: mode_of(&r.get::<String, _>(9)),
        version_id: r.get(10),
        trace_context: r.get(11),
    })
}
}

/// The ids of the messages their commit writes `sending` (see
/// [`crate::store::marked_at_commit`]), each with the lease its outbox row
/// takes.
pub(in crate::store) fn marked_ids<'a>(
    leased: impl IntoIterator<Item = (&'a NewMessage, &'a Lease)>,
) -> HashSet<&'a str> {
    leased.into_iter().filter(|(m, lease)| marked_at_commit(m, lease)).map(|(m, _)| m.id.as_str()).collect()
}

for_every_backend! {
/// New messages with their first history row. Those in `marked` (see
/// [`crate::store::marked_at_commit`]) are written `sending` at once, with
/// both history rows and the status callback `sending` owes.
pub(in crate::store) async fn insert_messages(
    conn: &mut Conn<DB>,
    messages: &[&NewMessage],
    marked: &HashSet<&str>,
) -> StoreResult<()> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO messages (id, tenant_id, direction, from_addr, to_addr, body, status, status_rank, segments, \
             encoding, reference, connector, plugin_id, event_id, in_reply_to, created_at, updated_at, mode, webhook_url, \
             scheduled_at, price, batch_id, error_code, account_sid, expires_at, trace_context) ",
        );
        q.push_values(chunk, |mut b, m| {
            let status = if marked.contains(m.id.as_str()) { MessageStatus::Sending } else { m.status };
            b.push_bind(&m.id)
                .push_bind(&m.tenant_id)
                .push_bind(m.direction.as_str())
                .push_bind(&m.from)
                .push_bind(&m.to)
                .push_bind(&m.body)
                .push_bind(status.as_str())
                .push_bind(status.rank())
                .push_bind(m.segments as i64)
                .push_bind(m.encoding)
                .push_bind(&m.reference)
                .push_bind(&m.connector)
                .push_bind(&m.plugin_id)
                .push_bind(&m.event_id)
                .push_bind(&m.in_reply_to)
                .push_bind(m.created_at)
                .push_bind(m.created_at)
                .push_bind(m.mode)
                .push_bind(&m.webhook_url)
                .push_bind(m.scheduled_at)
                .push_bind(m.price)
                .push_bind(&m.batch_id)
                .push_bind(m.error_code)
                .push_bind(&m.account_sid)
                .push_bind(m.expires_at)
                .push_bind(&m.trace_context);
        });
        q.build().execute(&mut *conn).await?;
        let sending: Vec<StatusChange> = chunk
            .iter()
            .filter(|m| marked.contains(m.id.as_str()))
            .map(|m| StatusChange { message_id: &m.id, status: MessageStatus::Sending, error_code: None, at: m.created_at })
            .collect();
        let mut q: QueryBuilder<DB> = QueryBuilder::new("INSERT INTO message_status (message_id, status, at) ");
        let history = chunk
            .iter()
            .map(|m| (m.id.as_str(), m.status, m.created_at))
            .chain(sending.iter().map(|c| (c.message_id, c.status, c.at)));
        q.push_values(history, |mut b, (id, status, at)| {
            b.push_bind(id).push_bind(status.as_str()).push_bind(at);
        });
        q.build().execute(&mut *conn).await?;
        if !sending.is_empty() {
            callbacks_owed::<DB>(conn, &sending).await?;
        }
    }
    Ok(())
}
}

for_every_backend! {
pub(in crate::store) async fn insert_event_rows(conn: &mut Conn<DB>, events: &[&NewEvent], lease: &Lease) -> StoreResult<()> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO events (id, tenant_id, plugin_id, kind, name, payload, message_id, status, attempts, run_at, \
             lease_owner, lease_until, created_at, updated_at, mode, trace_context) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(&e.id)
                .push_bind(&e.tenant_id)
                .push_bind(&e.plugin_id)
                .push_bind(e.kind.as_str())
                .push_bind(&e.name)
                .push_bind(&e.payload)
                .push_bind(&e.message_id)
                .push_bind("pending")
                .push_bind(0i64)
                .push_bind(e.run_at)
                .push_bind(&lease.owner)
                .push_bind(lease.until)
                .push_bind(e.created_at)
                .push_bind(e.created_at)
                .push_bind(e.mode)
                .push_bind(&e.trace_context);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
}

for_every_backend! {
pub(in crate::store) async fn insert_outbox(conn: &mut Conn<DB>, messages: &[&NewMessage], lease: &Lease) -> StoreResult<()> {
    let leased: Vec<(&NewMessage, &Lease)> = messages.iter().map(|m| (*m, lease)).collect();
    insert_outbox_leased::<DB>(conn, &leased).await
}
}

for_every_backend! {
/// Outbox rows for messages, each under its own lease.
pub(in crate::store) async fn insert_outbox_leased(conn: &mut Conn<DB>, messages: &[(&NewMessage, &Lease)]) -> StoreResult<()> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO outbox (message_id, tenant_id, attempts, run_at, lease_owner, lease_until) ",
        );
        q.push_values(chunk, |mut b, (m, lease)| {
            // Scheduled messages wait unleased until due; the sweeper claims them.
            let (owner, until) = match m.scheduled_at {
                Some(_) => (None, None),
                None => (Some(lease.owner.as_str()), Some(lease.until)),
            };
            b.push_bind(&m.id)
                .push_bind(&m.tenant_id)
                .push_bind(0i64)
                .push_bind(m.scheduled_at.unwrap_or(m.created_at))
                .push_bind(owner)
                .push_bind(until);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
}

for_every_backend! {
/// The carrier ids of a batch of inbound messages, recorded in one
/// statement: for each (connector, id), the message it was first accepted
/// as (this one's, unless it is a carrier's retry). `None` when the batch
/// consumes stored parts or holds one id twice: those are recorded one by
/// one, in order.
async fn receipts_at_once(
    conn: &mut Conn<DB>,
    batch: &[NewInbound],
) -> StoreResult<Option<HashMap<(String, String), String>>> {
    if batch.iter().any(|b| b.consumes_parts.is_some()) {
        return Ok(None);
    }
    let mut keyed: Vec<(&str, &str, &NewMessage)> = batch
        .iter()
        .filter_map(|b| match (&b.provider_id, &b.message.connector) {
            (Some(id), Some(connector)) => Some((connector.as_str(), id.as_str(), &b.message)),
            _ => None,
        })
        .collect();
    // In one order on every node, so that two nodes' batches lock alike.
    keyed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    if keyed.windows(2).any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1)) {
        return Ok(None);
    }
    let mut firsts = HashMap::with_capacity(keyed.len());
    for chunk in keyed.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO inbound_receipts (connector, provider_id, message_id, at) ");
        q.push_values(chunk, |mut b, (connector, id, m)| {
            b.push_bind(*connector).push_bind(*id).push_bind(&m.id).push_bind(m.created_at);
        });
        q.push(
            " ON CONFLICT (connector, provider_id) DO UPDATE SET at = inbound_receipts.at \
             RETURNING connector, provider_id, message_id",
        );
        for r in q.build().fetch_all(&mut *conn).await? {
            firsts.insert((r.get(0), r.get(1)), r.get(2));
        }
    }
    Ok(Some(firsts))
}
}

for_every_backend! {
/// Accepts a batch of inbound messages inside the caller's transaction
/// (see [`Events::insert_inbound`]). `opt_out_index` learns the opt-outs
/// the batch records.
pub(in crate::store) async fn inbound_in(
    tx: &mut Conn<DB>,
    batch: &[NewInbound],
    opt_out_index: Option<&super::governance::OptOutIndex>,
) -> StoreResult<Vec<InboundOutcome>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
        let receipts = receipts_at_once::<DB>(tx, batch).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted: Vec<&NewInbound> = Vec::new();
        let mut confirmations: Vec<&NewMessage> = Vec::new();
        for b in batch {
            if let Some(k) = &b.consumes_parts {
                let removed: Vec<Option<String>> = sqlx::query_scalar(
                    "DELETE FROM inbound_parts WHERE connector = $1 AND from_addr = $2 AND to_addr = $3 \
                     AND reference = $4 AND total = $5 RETURNING provider_id",
                )
                .bind(&k.connector)
                .bind(&k.from)
                .bind(&k.to)
                .bind(&k.reference)
                .bind(k.total as i64)
                .fetch_all(&mut *tx)
                .await?;
                if removed.len() != k.parts as usize {
                    outcomes.push(InboundOutcome::PartsTaken);
                    continue;
                }
                // A carrier's retry of one of the parts is then a duplicate.
                for id in removed.iter().flatten() {
                    sqlx::query(
                        "INSERT INTO inbound_receipts (connector, provider_id, message_id, at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&k.connector)
                    .bind(id)
                    .bind(&b.message.id)
                    .bind(b.message.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if let (Some(provider_id), Some(connector)) = (&b.provider_id, &b.message.connector) {
                // A retry accepted by another node at once waits here for
                // that node's commit, then finds its message.
                let first: Option<String> = if let Some(firsts) = &receipts {
                    firsts.get(&(connector.clone(), provider_id.clone())).cloned()
                } else {
                    sqlx::query_scalar(
                    "INSERT INTO inbound_receipts (connector, provider_id, message_id, at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (connector, provider_id) DO UPDATE SET at = inbound_receipts.at \
                     RETURNING message_id",
                )
                .bind(connector)
                .bind(provider_id)
                .bind(&b.message.id)
                .bind(b.message.created_at)
                .fetch_optional(&mut *tx)
                .await?
                };
                if let Some(first) = first.filter(|id| *id != b.message.id) {
                    outcomes.push(InboundOutcome::Duplicate { message_id: first });
                    continue;
                }
            }
            let mut confirmed = false;
            if let Some(c) = &b.confirmation {
                confirmed = may_confirm::<DB>(tx, b, c).await?;
                if confirmed {
                    confirmations.push(c);
                }
            }
            outcomes.push(InboundOutcome::Inserted { confirmed });
            accepted.push(b);
        }
        let mut messages: Vec<&NewMessage> = accepted.iter().map(|b| &b.message).collect();
        // STOP/START: the consent change commits with the message, answered or not.
        messages.extend(confirmations.iter().copied());
        for b in &accepted {
            match &b.consent {
                Some(ConsentChange::OptOut(row)) => {
                    if let Some(index) = opt_out_index {
                        index.add(&b.message.tenant_id, &row.recipient);
                    }
                    insert_opt_out::<DB>(tx, &b.message.tenant_id, row).await?;
                }
                Some(ConsentChange::OptIn { recipient, scope }) => {
                    sqlx::query(
                        "DELETE FROM opt_outs WHERE tenant_id = $1 AND recipient = $2 AND (scope = $3 OR scope = '')",
                    )
                    .bind(&b.message.tenant_id)
                    .bind(recipient)
                    .bind(scope)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {}
            }
        }
        if !messages.is_empty() {
            // Confirmations are marked `sending` by the dispatcher.
            insert_messages::<DB>(tx, &messages, &HashSet::new()).await?;
        }
        if !confirmations.is_empty() {
            insert_outbox::<DB>(tx, &confirmations, &batch[0].lease).await?;
        }
        // Events of one batch share the accepting node's lease.
        let events: Vec<&NewEvent> = accepted.iter().flat_map(|b| &b.events).collect();
        if !events.is_empty() {
            insert_event_rows::<DB>(tx, &events, &batch[0].lease).await?;
        }
    Ok(outcomes)
}
}

for_every_backend! {
impl Events {
    async fn insert_inbound(&self, batch: &[NewInbound]) -> StoreResult<Vec<InboundOutcome>> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let outcomes = inbound_in::<B::Db>(&mut tx, batch, self.opt_out_index()).await?;
            tx.commit().await?;
            Ok(outcomes)
        })
        .await
    }

    async fn insert_events(&self, events: &[NewEvent], lease: &Lease) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        let refs: Vec<&NewEvent> = events.iter().collect();
        insert_event_rows::<B::Db>(&mut tx, &refs, lease).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_events(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<EventRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE events SET lease_owner = $1, lease_until = $2 WHERE id IN (
                SELECT id FROM events WHERE status = 'pending' AND run_at <= $3
                AND (lease_until IS NULL OR lease_until < $3) ORDER BY run_at LIMIT $4 {})
             RETURNING {EVENT_COLUMNS}",
            <B::Db as Dialect>::SKIP_LOCKED
        )))
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(self.writer())
        .await?;
        rows.into_iter().map(event_row::<B::Db>).collect()
    }

    async fn next_event_due(&self) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > run_at THEN lease_until ELSE run_at END) FROM events \
             WHERE status = 'pending'",
        )
        .fetch_one(self.reader())
        .await?)
    }

    async fn complete_events(&self, completions: &[EventCompletion]) -> StoreResult<Vec<CompletionResult>> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let results = complete::<B::Db>(&mut tx, completions).await?;
            tx.commit().await?;
            Ok(results)
        })
        .await
    }

    async fn retry_event(
        &self,
        tenant_id: &str,
        event_id: &str,
        version_id: Option<&str>,
        lease: &Lease,
        now: Millis,
    ) -> StoreResult<Option<EventRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE events SET status = 'pending', attempts = 0, run_at = $1, lease_owner = $2, lease_until = $3, \
             version_id = COALESCE($4, version_id), updated_at = $1 WHERE id = $5 AND tenant_id = $6 AND status = 'dead' \
             RETURNING {EVENT_COLUMNS}"
        )))
        .bind(now)
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(version_id)
        .bind(event_id)
        .bind(tenant_id)
        .fetch_optional(self.writer())
        .await?;
        row.map(event_row::<B::Db>).transpose()
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND status = 'pending'",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fire_due_timers(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<EventRow>> {
        let mut tx = self.writer().begin().await?;
        let due = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM timers WHERE (tenant_id, plugin_id, key) IN (SELECT tenant_id, plugin_id, key FROM timers \
             WHERE due_at <= $1 ORDER BY due_at LIMIT $2 {})
             RETURNING tenant_id, plugin_id, key, due_at, payload, mode",
            <B::Db as Dialect>::SKIP_LOCKED
        )))
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let events: Vec<NewEvent> = due
            .into_iter()
            .map(|r| NewEvent {
                id: crate::ids::event_id(),
                tenant_id: r.get(0),
                plugin_id: r.get(1),
                kind: EventKind::Timer,
                name: Some(r.get(2)),
                run_at: r.get(3),
                payload: r.get(4),
                message_id: None,
                created_at: now,
                mode: mode_of(&r.get::<String, _>(5)),
                // A timer fire begins a trace of its own.
                trace_context: None,
            })
            .collect();
        let refs: Vec<&NewEvent> = events.iter().collect();
        insert_event_rows::<B::Db>(&mut tx, &refs, lease).await?;
        tx.commit().await?;
        Ok(events.iter().map(NewEvent::to_row).collect())
    }

    async fn next_timer_due(&self) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar("SELECT MIN(due_at) FROM timers").fetch_one(self.reader()).await?)
    }
}
}
