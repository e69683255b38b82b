//! One writer cycle in one transaction (see [`crate::store::cycle`]).

use super::completions::complete;
use super::deliveries::{outbound_in, reports_in, send_results_in, sending_in};
use super::events::inbound_in;
use super::governance::OptOutIndex;
use super::{Conn, for_every_backend};
use crate::store::cycle::{CycleResults, Shared, WriteCycle, WriteCycles};
use crate::store::{Deliveries, Events, StoreError};
use futures::future::join_all;
use sqlx::Connection;
use std::sync::Arc;

/// Runs one part of a cycle: with `$isolated`, inside a savepoint, so that
/// a failing part is undone alone (an error undoing it is the whole
/// cycle's: the transaction is then unusable); without, its error is the
/// whole cycle's.
macro_rules! part {
    ($tx:ident, $isolated:expr, |$conn:ident| $work:expr) => {
        async {
            if !$isolated {
                let $conn = &mut *$tx;
                return Ok::<_, StoreError>(Ok($work.await?));
            }
            let mut savepoint = (&mut *$tx).begin().await?;
            let $conn = &mut *savepoint;
            match $work.await {
                Ok(done) => {
                    savepoint.commit().await?;
                    Ok(Ok(done))
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    Ok(Err(Arc::new(e)))
                }
            }
        }
    };
}

for_every_backend! {
impl WriteCycles {
    async fn write_cycle(&self, cycle: &WriteCycle) -> CycleResults {
        if !self.single_writer() {
            return each_kind_alone(self, cycle).await;
        }
        let index = self.opt_out_index();
        if cycle.kinds() > 1 {
            // First without savepoints: a part rarely fails, and a savepoint
            // costs two statements (each a round trip to SQLite's thread)
            // and a sub-journal for every part of every cycle. When a part
            // does fail, the whole transaction is undone and the cycle
            // written again with a savepoint per part.
            match one_transaction::<B::Db>(self.writer(), index, cycle, false).await {
                Ok(results) => return results,
                Err(e) => tracing::debug!(error = %e, "a part of a write cycle failed; writing it again part by part"),
            }
        }
        // Alone in the cycle, a part's failure is the cycle's.
        let isolated = cycle.kinds() > 1;
        one_transaction::<B::Db>(self.writer(), index, cycle, isolated)
            .await
            .unwrap_or_else(|e| CycleResults::failed(cycle, e))
    }

    fn single_writer(&self) -> bool {
        self.writer().options().get_max_connections() == 1
    }
}
}

for_every_backend! {
/// Writes every part of `cycle` in one transaction: with `isolated`, each
/// in a savepoint (a failing part is undone alone, its error in its
/// result); without, the first failing part undoes the whole transaction.
async fn one_transaction(
    writer: &sqlx::Pool<DB>,
    opt_out_index: Option<&OptOutIndex>,
    cycle: &WriteCycle,
    isolated: bool,
) -> Result<CycleResults, StoreError> {
    let mut tx = writer.begin().await?;
    match parts::<DB>(&mut tx, opt_out_index, cycle, isolated).await {
        Ok(results) => {
            tx.commit().await?;
            Ok(results)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}
}

for_every_backend! {
/// The parts of `cycle`, in the order a single cycle writes them (answers
/// before reports, so a report finds what its answer recorded).
async fn parts(
    tx: &mut Conn<DB>,
    opt_out_index: Option<&OptOutIndex>,
    cycle: &WriteCycle,
    isolated: bool,
) -> Result<CycleResults, StoreError> {
    let inbound: Shared<_> = if cycle.inbound.is_empty() {
        Ok(Vec::new())
    } else {
        part!(tx, isolated, |conn| inbound_in::<DB>(conn, &cycle.inbound, opt_out_index)).await?
    };
    let outbound: Shared<_> = if cycle.outbound.is_empty() {
        Ok(Vec::new())
    } else {
        part!(tx, isolated, |conn| outbound_in::<DB>(conn, &cycle.outbound)).await?
    };
    let completions: Shared<_> = if cycle.completions.is_empty() {
        Ok(Vec::new())
    } else {
        part!(tx, isolated, |conn| complete::<DB>(conn, &cycle.completions)).await?
    };
    let mut sending = Vec::with_capacity(cycle.sending.len());
    for marks in &cycle.sending {
        sending.push(
            part!(tx, isolated, |conn| sending_in::<DB>(conn, &marks.message_ids, marks.at, &marks.lease)).await?,
        );
    }
    let mut send_results = Vec::with_capacity(cycle.send_results.len());
    for (results, lease) in &cycle.send_results {
        send_results.push(part!(tx, isolated, |conn| send_results_in::<DB>(conn, results, lease)).await?);
    }
    let mut reports = Vec::with_capacity(cycle.reports.len());
    for (batch, lease) in &cycle.reports {
        reports.push(part!(tx, isolated, |conn| reports_in::<DB>(conn, batch, lease)).await?);
    }
    Ok(CycleResults { committed: true, kinds_alone: false, inbound, outbound, completions, sending, send_results, reports })
}
}

/// Several connections (PostgreSQL): each kind in a transaction of its own,
/// all at once. Each statement there is a network round trip, so kinds
/// written side by side finish sooner than one after the other in one
/// transaction, and a kind aborted by a conflict with another node is
/// retried alone (`sql::retrying`).
async fn each_kind_alone(db: &(impl Events + Deliveries + Sync), cycle: &WriteCycle) -> CycleResults {
    fn shared<T>(r: Result<T, StoreError>) -> Shared<T> {
        r.map_err(Arc::new)
    }
    let (inbound, outbound, completions, sending, (send_results, reports)) = tokio::join!(
        async {
            if cycle.inbound.is_empty() { Ok(Vec::new()) } else { shared(db.insert_inbound(&cycle.inbound).await) }
        },
        async {
            if cycle.outbound.is_empty() { Ok(Vec::new()) } else { shared(db.insert_outbound(&cycle.outbound).await) }
        },
        async {
            if cycle.completions.is_empty() {
                Ok(Vec::new())
            } else {
                shared(db.complete_events(&cycle.completions).await)
            }
        },
        join_all(cycle.sending.iter().map(|m| async { shared(db.mark_sending(&m.message_ids, m.at, &m.lease).await) })),
        // Answers before reports, as in one transaction: a report then
        // finds the part its answer recorded.
        async {
            let mut answers = Vec::with_capacity(cycle.send_results.len());
            for (results, lease) in &cycle.send_results {
                answers.push(shared(db.record_send_results(results, lease).await));
            }
            let mut reports = Vec::with_capacity(cycle.reports.len());
            for (batch, lease) in &cycle.reports {
                reports.push(shared(db.record_reports(batch, lease).await));
            }
            (answers, reports)
        },
    );
    CycleResults { committed: true, kinds_alone: true, inbound, outbound, completions, sending, send_results, reports }
}
