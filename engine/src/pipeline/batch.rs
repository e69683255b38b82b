//! Group commit: callers submit one item and await its result; a single
//! task takes everything queued meanwhile and commits it in one go.
//!
//! While one batch is being written, the next accumulates, so batch size
//! follows load: one row per transaction when idle, hundreds under load,
//! without a timer adding latency.

use crate::store::StoreError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Reply<R> = oneshot::Sender<Result<R, Arc<StoreError>>>;

pub struct Batcher<T, R> {
    tx: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Batcher { tx: self.tx.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the engine is shutting down")]
    Closed,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Spawns the committing task. `commit` must return one result per item,
    /// in order.
    pub fn spawn<F, Fut>(max_batch: usize, commit: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        tokio::spawn(async move {
            let mut items = Vec::with_capacity(max_batch);
            let mut replies = Vec::with_capacity(max_batch);
            while let Some((item, reply)) = rx.recv().await {
                items.push(item);
                replies.push(reply);
                while items.len() < max_batch {
                    match rx.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let (size, started) = (items.len(), std::time::Instant::now());
                let committed = commit(std::mem::take(&mut items)).await;
                tracing::trace!(size, took_us = started.elapsed().as_micros() as u64, "group commit");
                match committed {
                    Ok(results) => {
                        debug_assert_eq!(results.len(), replies.len());
                        for (reply, result) in replies.drain(..).zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "batch commit failed");
                        let e = Arc::new(e);
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Batcher { tx }
    }

    pub async fn submit(&self, item: T) -> Result<R, BatchError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send((item, reply)).map_err(|_| BatchError::Closed)?;
        wait.await.map_err(|_| BatchError::Closed)?.map_err(BatchError::Store)
    }
}
