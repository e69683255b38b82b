//! The outbox and what follows a send: claims, the carrier's answers,
//! delivery reports, and inbound parts waiting for the rest.

use super::events::insert_event_rows;
use super::outbound::{cancel, outbound_all, outbound_one};
use super::status::{StatusChange, refund, status_changed, statuses_changed};
use super::{Conn, Dialect, INSERT_CHUNK, RowsAffected, for_every_backend, retrying};
use crate::clock::Millis;
use crate::store::*;
use sqlx::{Connection, QueryBuilder, Row};

for_every_backend! {
/// Messages the carrier accepted: their status, parts and history, their
/// outbox rows gone, and any reports that overtook the answer applied —
/// a handful of statements for the whole batch.
async fn record_sent(
    conn: &mut Conn<DB>,
    sent: &[(&SendResult, &[String])],
    events: &mut Vec<NewEvent>,
    changes: &mut Vec<(String, MessageStatus)>,
    lags: &mut Vec<(String, Millis)>,
    traced: &mut Vec<TracedReport>,
) -> StoreResult<()> {
    let mut q: QueryBuilder<DB> = QueryBuilder::new("WITH v(id, provider_id, connector, at) AS (");
    q.push_values(sent, |mut b, (r, provider_ids)| {
        b.push_bind(&r.message_id).push_bind(provider_ids.first().map(String::as_str)).push_bind(&r.connector).push_bind(r.at);
    });
    q.push(
        ") UPDATE messages SET provider_id = v.provider_id, connector = v.connector, \
         status = CASE WHEN messages.status_rank < 2 THEN 'sent' ELSE messages.status END, \
         status_rank = CASE WHEN messages.status_rank > 2 THEN messages.status_rank ELSE 2 END, updated_at = v.at FROM v WHERE messages.id = v.id",
    );
    q.build().execute(&mut *conn).await?;

    let parts = crate::store::unique_parts(sent);
    // A report for these ids arriving at another node now either waits for
    // this commit (and finds the parts) or is kept first (and found below).
    let keys: Vec<String> = parts.iter().map(|(r, _, id)| report_key(&r.connector, id)).collect();
    DB::lock_keys(conn, &keys).await?;
    for chunk in parts.chunks(INSERT_CHUNK) {
        // A carrier id names one part of one message: a part of another
        // message that held it loses it (its reports could not be told
        // apart), and the new part takes it.
        let mut q: QueryBuilder<DB> = QueryBuilder::new("WITH v(connector, provider_id, message_id) AS (");
        q.push_values(chunk, |mut b, (r, _, provider_id)| {
            b.push_bind(&r.connector).push_bind(*provider_id).push_bind(&r.message_id);
        });
        q.push(
            ") UPDATE message_parts SET provider_id = message_parts.provider_id || '~' || message_parts.message_id \
             || '.' || message_parts.part FROM v WHERE message_parts.connector = v.connector \
             AND message_parts.provider_id = v.provider_id AND message_parts.message_id <> v.message_id \
             RETURNING message_parts.message_id",
        );
        for row in q.build().fetch_all(&mut *conn).await? {
            tracing::warn!(message_id = %row.get::<String, _>(0), "a carrier reused a message id; the older part keeps no id");
        }
        let mut q: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO message_parts (message_id, part, connector, provider_id, status, updated_at) ",
        );
        q.push_values(chunk, |mut b, (r, part, provider_id)| {
            b.push_bind(&r.message_id)
                .push_bind(*part as i64)
                .push_bind(&r.connector)
                .push_bind(*provider_id)
                .push("'sent'")
                .push_bind(r.at);
        });
        q.push(
            " ON CONFLICT (message_id, part) DO UPDATE SET connector = excluded.connector, \
             provider_id = excluded.provider_id, status = excluded.status, error_code = NULL, \
             updated_at = excluded.updated_at",
        );
        q.build().execute(&mut *conn).await?;
    }

    let statuses: Vec<StatusChange> = sent
        .iter()
        .map(|(r, _)| StatusChange {
            message_id: &r.message_id,
            status: MessageStatus::Sent,
            error_code: None,
            at: r.at,
        })
        .collect();
    statuses_changed::<DB>(conn, &statuses).await?;
    changes.extend(sent.iter().map(|(r, _)| (r.message_id.clone(), MessageStatus::Sent)));

    let mut q: QueryBuilder<DB> = QueryBuilder::new("DELETE FROM outbox WHERE message_id IN (");
    let mut ids = q.separated(", ");
    for (r, _) in sent {
        ids.push_bind(&r.message_id);
    }
    q.push(")");
    q.build().execute(&mut *conn).await?;

    // Reports that overtook these answers.
    for chunk in parts.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("DELETE FROM pending_reports WHERE (connector, provider_id) IN (");
        q.push_values(chunk, |mut b, (r, _, provider_id)| {
            b.push_bind(&r.connector).push_bind(*provider_id);
        });
        q.push(") RETURNING connector, provider_id, status, error_code, at");
        let early: Vec<ProviderReport> = q
            .build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|row| {
                Some(ProviderReport {
                    connector: row.get(0),
                    provider_id: row.get(1),
                    status: MessageStatus::parse(&row.get::<String, _>(2))?,
                    error_code: row.get(3),
                    at: row.get(4),
                })
            })
            .collect();
        // Their lag counts from the answer: they came with it (or before).
        apply_reports::<DB>(conn, &early, events, changes, lags, traced).await?;
    }
    Ok(())
}
}

/// The carrier's acceptances in a batch of answers, one per message: a
/// message can be answered twice in one batch (its lease lapsed while the
/// first answer waited to be recorded, and it was sent again), and one
/// statement may not write the same row twice (PostgreSQL refuses it). The
/// later answer stands, as it does for a carrier id given twice.
fn accepted_once(results: &[SendResult]) -> Vec<(&SendResult, &[String])> {
    let mut seen = std::collections::HashSet::new();
    let mut sent: Vec<(&SendResult, &[String])> = results
        .iter()
        .rev()
        .filter_map(|r| match &r.outcome {
            SendOutcome::Sent { provider_ids } => Some((r, provider_ids.as_slice())),
            _ => None,
        })
        .filter(|(r, _)| seen.insert(r.message_id.as_str()))
        .collect();
    sent.reverse();
    sent
}

/// The lock that orders a carrier's report against the record of the send
/// it reports on.
fn report_key(connector: &str, provider_id: &str) -> String {
    format!("report\n{connector}\n{provider_id}")
}

for_every_backend! {
/// Applies one report to the part it names. Returns the message id and,
/// when the message's status moved forward, its new status.
async fn apply_report(
    conn: &mut Conn<DB>,
    r: &ProviderReport,
) -> StoreResult<Option<AppliedReport>> {
    let part = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT message_id, part, status, updated_at FROM message_parts WHERE connector = $1 AND provider_id = $2 {}",
        DB::LOCK_ROWS
    )))
    .bind(&r.connector)
    .bind(&r.provider_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(part) = part else { return Ok(None) };
    let message_id: String = part.get(0);
    let current = MessageStatus::parse(&part.get::<String, _>(2)).unwrap_or(MessageStatus::Sent);
    // A part still `sent` was last changed when the carrier took it: the
    // report's lag, where the report is final.
    let lag = (current == MessageStatus::Sent && r.status.rank() == 3).then(|| r.at - part.get::<i64, _>(3));
    if r.status.rank() > current.rank() {
        sqlx::query(
            "UPDATE message_parts SET status = $1, error_code = $2, updated_at = $3 WHERE message_id = $4 AND part = $5",
        )
        .bind(r.status.as_str())
        .bind(&r.error_code)
        .bind(r.at)
        .bind(&message_id)
        .bind(part.get::<i64, _>(1))
        .execute(&mut *conn)
        .await?;
    }
    let statuses: Vec<MessageStatus> =
        sqlx::query_scalar::<_, String>("SELECT status FROM message_parts WHERE message_id = $1")
            .bind(&message_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|s| MessageStatus::parse(s))
            .collect();
    let status = MessageStatus::of_parts(&statuses);
    let changed: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE messages SET status = $1, status_rank = $2, error_code = COALESCE($3, error_code), updated_at = $4 \
         WHERE id = $5 AND status_rank < $6 RETURNING trace_context",
    )
    .bind(status.as_str())
    .bind(status.rank())
    .bind(&r.error_code)
    .bind(r.at)
    .bind(&message_id)
    .bind(status.rank())
    .fetch_optional(&mut *conn)
    .await?;
    if changed.is_some() {
        status_changed::<DB>(conn, &message_id, status, r.error_code.as_deref(), r.at).await?;
    }
    Ok(Some(AppliedReport {
        message_id,
        status: changed.as_ref().map(|_| status),
        lag,
        trace_context: changed.flatten(),
    }))
}
}

/// What one report did: the message it names, its new status (if it
/// moved), the lag of a final report, and the message's trace context.
struct AppliedReport {
    message_id: String,
    status: Option<MessageStatus>,
    lag: Option<Millis>,
    trace_context: Option<String>,
}

for_every_backend! {
/// The delivery event a plugin that sent the message asked for.
async fn delivery_event(
    conn: &mut Conn<DB>,
    message_id: &str,
    status: MessageStatus,
    error_code: Option<&str>,
    at: Millis,
) -> StoreResult<Option<NewEvent>> {
    let Some(msg) = sqlx::query(
        "SELECT m.tenant_id, m.plugin_id, m.to_addr, m.reference, \
         EXISTS (SELECT 1 FROM routes WHERE plugin_id = m.plugin_id AND kind = 'delivery'), m.mode, m.trace_context \
         FROM messages m WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let (Some(plugin_id), true) = (msg.get::<Option<String>, _>(1), msg.get::<bool, _>(4)) else { return Ok(None) };
    let payload = serde_json::json!({
        "message_id": message_id,
        "reference": msg.get::<Option<String>, _>(3),
        "to": msg.get::<String, _>(2),
        "status": status.as_str(),
        "error_code": error_code,
        "at": at,
    });
    Ok(Some(NewEvent {
        id: crate::ids::event_id(),
        tenant_id: msg.get(0),
        plugin_id,
        kind: EventKind::Delivery,
        name: None,
        payload: payload.to_string(),
        message_id: Some(message_id.to_string()),
        run_at: at,
        created_at: at,
        mode: mode_of(&msg.get::<String, _>(5)),
        trace_context: msg.get(6),
    }))
}
}

for_every_backend! {
async fn apply_reports(
    conn: &mut Conn<DB>,
    reports: &[ProviderReport],
    events: &mut Vec<NewEvent>,
    changes: &mut Vec<(String, MessageStatus)>,
    lags: &mut Vec<(String, Millis)>,
    traced: &mut Vec<TracedReport>,
) -> StoreResult<()> {
    let keys: Vec<String> = reports.iter().map(|r| report_key(&r.connector, &r.provider_id)).collect();
    DB::lock_keys(conn, &keys).await?;
    for r in reports {
        match apply_report::<DB>(conn, r).await? {
            None => {
                // The carrier reported before its answer to the send was
                // recorded: keep the report for then.
                sqlx::query("INSERT INTO pending_reports (connector, provider_id, status, error_code, at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&r.connector)
                    .bind(&r.provider_id)
                    .bind(r.status.as_str())
                    .bind(&r.error_code)
                    .bind(r.at)
                    .execute(&mut *conn)
                    .await?;
            }
            Some(AppliedReport { message_id, status, lag, trace_context }) => {
                if let Some(lag) = lag {
                    lags.push((r.connector.clone(), lag));
                }
                let Some(status) = status else { continue };
                if let Some(trace_context) = trace_context {
                    traced.push(TracedReport {
                        message_id: message_id.clone(),
                        connector: r.connector.clone(),
                        status,
                        trace_context,
                    });
                }
                if let Some(e) = delivery_event::<DB>(conn, &message_id, status, r.error_code.as_deref(), r.at).await? {
                    events.push(e);
                }
                changes.push((message_id, status));
            }
        }
    }
    Ok(())
}
}

for_every_backend! {
/// Queues API requests inside the caller's transaction (see
/// [`Deliveries::insert_outbound`]): the batch at once when none of it is
/// refused, else one by one.
pub(in crate::store) async fn outbound_in(
    tx: &mut Conn<DB>,
    requests: &[OutboundRequest],
) -> StoreResult<Vec<OutboundResult>> {
    if requests.len() > 1 {
        let mut all = (*tx).begin().await?;
        if let Some(results) = outbound_all::<DB>(&mut all, requests).await? {
            all.commit().await?;
            return Ok(results);
        }
        all.rollback().await?;
    }
    let mut results = Vec::with_capacity(requests.len());
    for req in requests {
        results.push(outbound_one::<DB>(tx, req).await?);
    }
    Ok(results)
}
}

for_every_backend! {
/// Marks messages `sending` inside the caller's transaction (see
/// [`Deliveries::mark_sending`]).
pub(in crate::store) async fn sending_in(
    tx: &mut Conn<DB>,
    message_ids: &[String],
    at: Millis,
    lease: &Lease,
) -> StoreResult<Vec<String>> {
    let mut ours = Vec::with_capacity(message_ids.len());
    for chunk in message_ids.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<DB> = QueryBuilder::new("UPDATE outbox SET lease_until = ");
        q.push_bind(lease.until).push(" WHERE lease_owner = ").push_bind(&lease.owner).push(" AND message_id IN (");
        let mut ids = q.separated(", ");
        for id in chunk {
            ids.push_bind(id);
        }
        q.push(") RETURNING message_id");
        let chunk: Vec<String> = q.build().fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect();
        // None still ours (PostgreSQL refuses an empty `IN ()`).
        if chunk.is_empty() {
            continue;
        }
        let mut q: QueryBuilder<DB> =
            QueryBuilder::new("UPDATE messages SET status = 'sending', status_rank = 1, updated_at = ");
        q.push_bind(at).push(" WHERE status_rank < 1 AND id IN (");
        let mut ids = q.separated(", ");
        for id in &chunk {
            ids.push_bind(id);
        }
        q.push(") RETURNING id");
        let changed: Vec<String> = q.build().fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect();
        let changes: Vec<StatusChange> = changed
            .iter()
            .map(|id| StatusChange { message_id: id, status: MessageStatus::Sending, error_code: None, at })
            .collect();
        statuses_changed::<DB>(tx, &changes).await?;
        ours.extend(chunk);
    }
    Ok(ours)
}
}

for_every_backend! {
/// Records connector results inside the caller's transaction (see
/// [`Deliveries::record_send_results`]).
pub(in crate::store) async fn send_results_in(
    tx: &mut Conn<DB>,
    results: &[SendResult],
    lease: &Lease,
) -> StoreResult<Recorded> {
    let (mut events, mut changes, mut report_lags, mut traced) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let sent = accepted_once(results);
    for chunk in sent.chunks(INSERT_CHUNK) {
        record_sent::<DB>(tx, chunk, &mut events, &mut changes, &mut report_lags, &mut traced).await?;
    }
    for r in results {
        match &r.outcome {
            // Recorded above, all at once.
            SendOutcome::Sent { .. } => {}
            SendOutcome::Retry { at, .. } => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, run_at = $1, lease_owner = NULL, lease_until = NULL \
                     WHERE message_id = $2",
                )
                .bind(at)
                .bind(&r.message_id)
                .execute(&mut *tx)
                .await?;
            }
            SendOutcome::Failed { error_code, .. } => {
                let changed = sqlx::query(
                    "UPDATE messages SET status = 'failed', status_rank = 3, error_code = $1, updated_at = $2 \
                     WHERE id = $3 AND status_rank < 3",
                )
                .bind(error_code)
                .bind(r.at)
                .bind(&r.message_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed > 0 {
                    status_changed::<DB>(tx, &r.message_id, MessageStatus::Failed, Some(error_code), r.at).await?;
                    refund::<DB>(tx, &r.message_id, r.at).await?;
                    changes.push((r.message_id.clone(), MessageStatus::Failed));
                    if let Some(e) =
                        delivery_event::<DB>(tx, &r.message_id, MessageStatus::Failed, Some(error_code), r.at).await?
                    {
                        events.push(e);
                    }
                }
                sqlx::query("DELETE FROM outbox WHERE message_id = $1").bind(&r.message_id).execute(&mut *tx).await?;
            }
        }
    }
    let refs: Vec<&NewEvent> = events.iter().collect();
    insert_event_rows::<DB>(tx, &refs, lease).await?;
    Ok(Recorded { events: events.iter().map(NewEvent::to_row).collect(), changes, report_lags, traced })
}
}

for_every_backend! {
/// Applies delivery reports inside the caller's transaction (see
/// [`Deliveries::record_reports`]).
pub(in crate::store) async fn reports_in(
    tx: &mut Conn<DB>,
    reports: &[ProviderReport],
    lease: &Lease,
) -> StoreResult<Recorded> {
    let (mut events, mut changes, mut report_lags, mut traced) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    apply_reports::<DB>(tx, reports, &mut events, &mut changes, &mut report_lags, &mut traced).await?;
    let refs: Vec<&NewEvent> = events.iter().collect();
    insert_event_rows::<DB>(tx, &refs, lease).await?;
    Ok(Recorded { events: events.iter().map(NewEvent::to_row).collect(), changes, report_lags, traced })
}
}

for_every_backend! {
impl Deliveries {
    async fn insert_outbound(&self, requests: &[OutboundRequest]) -> StoreResult<Vec<OutboundResult>> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let results = outbound_in::<B::Db>(&mut tx, requests).await?;
            tx.commit().await?;
            Ok(results)
        })
        .await
    }

    async fn cancel_scheduled(&self, tenant_id: &str, message_id: &str, at: Millis) -> StoreResult<CancelResult> {
        cancel::<B::Db>(self.writer(), tenant_id, message_id, at).await
    }

    async fn claim_outbox(&self, lease: &Lease, now: Millis, limit: u32) -> StoreResult<Vec<OutboxItem>> {
        let mut tx = self.writer().begin().await?;
        let claimed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE message_id IN (
                SELECT message_id FROM outbox WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
                ORDER BY run_at LIMIT $4 {})
             RETURNING message_id",
            <B::Db as Dialect>::SKIP_LOCKED
        )))
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut items = Vec::with_capacity(claimed.len());
        if !claimed.is_empty() {
            let mut q: QueryBuilder<B::Db> = QueryBuilder::new(
                "SELECT o.message_id, m.tenant_id, m.from_addr, m.to_addr, m.body, m.reference, m.connector, o.attempts, \
                 m.encoding, COALESCE(m.scheduled_at, m.created_at), m.mode, m.expires_at, m.trace_context \
                 FROM outbox o JOIN messages m ON m.id = o.message_id WHERE o.message_id IN (",
            );
            let mut ids = q.separated(", ");
            for id in &claimed {
                ids.push_bind(id);
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                items.push(OutboxItem {
                    message_id: r.get(0),
                    tenant_id: r.get(1),
                    from: r.get(2),
                    to: r.get(3),
                    body: r.get(4),
                    reference: r.get(5),
                    connector: r.get::<Option<String>, _>(6).unwrap_or_default(),
                    attempts: r.get::<i64, _>(7) as u32,
                    encoding: r.get(8),
                    due_at: r.get(9),
                    mode: r.get(10),
                    expires_at: r.get(11),
                    trace_context: r.get(12),
                    marked_until: None,
                });
            }
        }
        tx.commit().await?;
        Ok(items)
    }

    async fn next_outbox_due(&self) -> StoreResult<Option<Millis>> {
        Ok(sqlx::query_scalar("SELECT MIN(CASE WHEN lease_until > run_at THEN lease_until ELSE run_at END) FROM outbox")
            .fetch_one(self.reader())
            .await?)
    }

    async fn mark_sending(&self, message_ids: &[String], at: Millis, lease: &Lease) -> StoreResult<Vec<String>> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let ours = sending_in::<B::Db>(&mut tx, message_ids, at, lease).await?;
            tx.commit().await?;
            Ok(ours)
        })
        .await
    }

    async fn record_send_results(&self, results: &[SendResult], lease: &Lease) -> StoreResult<Recorded> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let recorded = send_results_in::<B::Db>(&mut tx, results, lease).await?;
            tx.commit().await?;
            Ok(recorded)
        })
        .await
    }

    async fn record_reports(&self, reports: &[ProviderReport], lease: &Lease) -> StoreResult<Recorded> {
        retrying(|| async {
            let mut tx = self.writer().begin().await?;
            let recorded = reports_in::<B::Db>(&mut tx, reports, lease).await?;
            tx.commit().await?;
            Ok(recorded)
        })
        .await
    }

    async fn store_inbound_part(
        &self,
        connector: &str,
        p: &InboundPart,
        at: Millis,
    ) -> StoreResult<Option<Reassembled>> {
        let mut tx = self.writer().begin().await?;
        // Parts of one message may arrive at different nodes at once: each
        // must see the others' parts, or none would see the message whole.
        let key = format!("{connector}\n{}\n{}\n{}\n{}", p.from, p.to, p.reference, p.total);
        <B::Db as Dialect>::lock_keys(&mut tx, &[key]).await?;
        sqlx::query(
            "INSERT INTO inbound_parts (connector, from_addr, to_addr, reference, total, part, text, provider_id, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (connector, from_addr, to_addr, reference, total, part) DO UPDATE SET \
             text = excluded.text, provider_id = excluded.provider_id",
        )
        .bind(connector)
        .bind(&p.from)
        .bind(&p.to)
        .bind(&p.reference)
        .bind(p.total as i64)
        .bind(p.part as i64)
        .bind(&p.text)
        .bind(&p.provider_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let parts: Vec<StoredPart> = sqlx::query(
            "SELECT part, text, provider_id FROM inbound_parts WHERE connector = $1 AND from_addr = $2 \
             AND to_addr = $3 AND reference = $4 AND total = $5 ORDER BY part",
        )
        .bind(connector)
        .bind(&p.from)
        .bind(&p.to)
        .bind(&p.reference)
        .bind(p.total as i64)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        tx.commit().await?;
        Ok((parts.len() == p.total as usize)
            .then(|| Reassembled::from_parts(p.from.clone(), p.to.clone(), p.reference.clone(), p.total, &parts)))
    }

    async fn inbound_receipt(&self, connector: &str, provider_id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT message_id FROM inbound_receipts WHERE connector = $1 AND provider_id = $2")
            .bind(connector)
            .bind(provider_id)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn stale_inbound_parts(&self, before: Millis, limit: u32) -> StoreResult<Vec<(String, Reassembled)>> {
        let groups = sqlx::query(
            "SELECT connector, from_addr, to_addr, reference, total FROM inbound_parts \
             GROUP BY connector, from_addr, to_addr, reference, total HAVING MIN(received_at) < $1 LIMIT $2",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let (connector, from, to, reference, total): (String, String, String, String, i64) =
                (g.get(0), g.get(1), g.get(2), g.get(3), g.get(4));
            let parts: Vec<StoredPart> = sqlx::query(
                "SELECT part, text, provider_id FROM inbound_parts WHERE connector = $1 AND from_addr = $2 \
                 AND to_addr = $3 AND reference = $4 AND total = $5 ORDER BY part",
            )
            .bind(&connector)
            .bind(&from)
            .bind(&to)
            .bind(&reference)
            .bind(total)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
            if !parts.is_empty() {
                out.push((connector, Reassembled::from_parts(from, to, reference, total as u8, &parts)));
            }
        }
        Ok(out)
    }
}
}
