//! `/console/live`: server-sent events that tell a page its data changed.
//!
//! The stream follows the pipeline's notifications on this node and passes
//! on only the session's own: its tenant's inbound messages, settled
//! events, and status changes of its messages (the ids it has seen sent or
//! received, seeded with its latest messages when the stream opens; a
//! delivery report names only the message). An event says only `changed`
//! (browsers drop events without data): the page fetches itself again, through the API, as the session. Bursts are
//! folded into one event. The operator's stream signals any activity, at
//! most once a second. Streams are bounded per node
//! (`limits.console_streams`).

use super::Console;
use super::session::Session;
use crate::pipeline::Notification;
use axum::Extension;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Message ids a stream remembers as its tenant's; past this it forgets
/// the oldest half's worth by starting over from new ones.
const KNOWN_IDS: usize = 10_000;

/// Which notifications concern a stream.
struct Filter {
    tenant_id: Option<String>,
    known: HashSet<String>,
}

impl Filter {
    fn remember(&mut self, id: &str) {
        if self.known.len() >= KNOWN_IDS {
            self.known.clear();
        }
        self.known.insert(id.to_string());
    }

    fn concerns(&mut self, n: &Notification) -> bool {
        let Some(mine) = self.tenant_id.clone() else {
            // The operator follows everything.
            return true;
        };
        match n {
            Notification::Received { tenant_id, message_id } if *tenant_id == mine => {
                self.remember(message_id);
                true
            }
            Notification::EventSettled { tenant_id, .. } => *tenant_id == mine,
            Notification::MessageStatus { message_id, tenant_id: Some(tenant_id), .. } => {
                if *tenant_id == mine {
                    self.remember(message_id);
                }
                *tenant_id == mine
            }
            Notification::MessageStatus { message_id, tenant_id: None, .. } => self.known.contains(message_id),
            _ => false,
        }
    }
}

/// One open stream: what it listens to and for.
struct Following {
    receiver: tokio::sync::broadcast::Receiver<Notification>,
    filter: Filter,
    /// How long a burst of changes is folded into one event.
    fold: Duration,
    /// The server is shutting down: the stream ends.
    closing: tokio_util::sync::CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Following {
    /// Waits for the next change of ours (`None`: the stream ends).
    async fn next_change(&mut self) -> Option<()> {
        // Something of ours, or notifications missed (the page may have changed)...
        loop {
            let received = tokio::select! {
                _ = self.closing.cancelled() => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(n) if self.filter.concerns(&n) => break,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return None,
            }
        }
        // ...then what follows closely goes into the same event.
        let settle = tokio::time::sleep(self.fold);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => return Some(()),
                _ = self.closing.cancelled() => return None,
                received = self.receiver.recv() => match received {
                    Ok(n) => { self.filter.concerns(&n); }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Some(()),
                },
            }
        }
    }
}

pub async fn stream(Extension(console): Extension<Arc<Console>>, session: Session) -> Response {
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live pages are open; reload later").into_response();
    };
    let receiver = console.ctx.engine.pipeline.notifications.subscribe();
    let mut filter = Filter { tenant_id: session.tenant_id().map(str::to_string), known: HashSet::new() };
    if let Some(tenant_id) = &filter.tenant_id {
        let recent = crate::store::MessageFilter { limit: 200, ..Default::default() };
        match console.ctx.engine.db.list_messages(tenant_id, &recent).await {
            Ok(messages) => filter.known.extend(messages.into_iter().map(|m| m.id)),
            Err(e) => tracing::warn!(error = %e, "a live console page could not read its recent messages"),
        }
    }
    let fold = if filter.tenant_id.is_some() { Duration::from_millis(150) } else { Duration::from_secs(1) };
    let state = Following { receiver, filter, fold, closing: console.ctx.closing.clone(), _permit: permit };
    let changes = futures::stream::unfold(state, |mut state| async move {
        state.next_change().await?;
        let event: Result<Event, std::convert::Infallible> = Ok(Event::default().event("change").data("changed"));
        Some((event, state))
    });
    Sse::new(changes).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, tenant: Option<&str>) -> Notification {
        Notification::MessageStatus {
            message_id: id.into(),
            status: "delivered".into(),
            tenant_id: tenant.map(str::to_string),
        }
    }

    #[test]
    fn a_tenants_stream_passes_on_only_its_own_changes() {
        let mut f = Filter { tenant_id: Some("t_a".into()), known: HashSet::from(["m_old".to_string()]) };
        assert!(!f.concerns(&Notification::Received { tenant_id: "t_b".into(), message_id: "m_b".into() }));
        assert!(!f.concerns(&status("m_b", None)), "another tenant's report");
        assert!(!f.concerns(&status("m_b2", Some("t_b"))));
        assert!(!f.concerns(&status("m_b2", None)));
        assert!(!f.concerns(&Notification::EventSettled {
            event_id: "e".into(),
            tenant_id: "t_b".into(),
            status: "done"
        }));
        assert!(f.concerns(&status("m_old", None)), "a message it listed when it opened");
        assert!(f.concerns(&Notification::Received { tenant_id: "t_a".into(), message_id: "m_in".into() }));
        assert!(f.concerns(&status("m_in", None)));
        assert!(f.concerns(&status("m_out", Some("t_a"))));
        assert!(f.concerns(&status("m_out", None)), "its reply's later reports");
        assert!(f.concerns(&Notification::EventSettled {
            event_id: "e".into(),
            tenant_id: "t_a".into(),
            status: "dead"
        }));
        assert!(!f.concerns(&Notification::Pruned { rows: 3 }));
    }
}
