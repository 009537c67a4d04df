//! Group commit for the PostgreSQL store's per-login writes (`ensure_user`,
//! `presence_session_started`, `presence_session_ended`): calls that arrive while one batch is in flight wait, then go to
//! the database together as one statement and one commit. A login storm — a node died and its
//! users reconnect elsewhere — then costs the database one commit per batch, not two per login.
//! An idle store adds no delay: the first call goes out at once.
//!
//! Overload policy: the queue is not capped by count. Every entry is a caller awaiting its
//! answer, so it never holds more than the logins in flight, which the gateway bounds
//! (`[gateway] max_connections`). A batch carries at most `max_batch` entries.

use crate::{Result, StoreError};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// What a caller gets back: its own result, or the batch's error as text (sqlx errors cannot be
/// cloned to every caller of a batch).
type Reply<R> = oneshot::Sender<Result<R, String>>;

pub(crate) struct GroupCommit<T, R> {
    queue: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the batching task on the current runtime. `flush` writes a batch and returns one
    /// result per item, in order. The task ends when the `GroupCommit` is dropped.
    pub fn start<F, Fut>(max_batch: usize, mut flush: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>>> + Send,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let (mut items, mut replies) = (vec![first.0], vec![first.1]);
                while items.len() < max_batch.max(1) {
                    match pending.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let count = items.len();
                match flush(items).await {
                    Ok(results) if results.len() == count => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Ok(results) => {
                        let message = format!("a batch of {count} writes returned {} results", results.len());
                        replies.into_iter().for_each(|reply| drop(reply.send(Err(message.clone()))));
                    }
                    Err(e) => {
                        let message = e.to_string();
                        replies.into_iter().for_each(|reply| drop(reply.send(Err(message.clone()))));
                    }
                }
            }
        });
        GroupCommit { queue }
    }

    /// Queues one item and waits for its batch to be written.
    pub async fn submit(&self, item: T) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Batch("the store's batching task has stopped".to_string());
        self.queue.send((item, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(StoreError::Batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn calls_that_queue_behind_a_batch_share_the_next_one() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let group = Arc::new(GroupCommit::start(3, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.clone());
            async move {
                tokio::task::yield_now().await;
                Ok(items.iter().map(|i| i * 10).collect())
            }
        }));
        let calls: Vec<_> = (1..=7)
            .map(|i| {
                tokio::spawn({
                    let group = group.clone();
                    async move { group.submit(i).await.unwrap() }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        assert_eq!(answers, vec![10, 20, 30, 40, 50, 60, 70], "each caller gets its own result");
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.concat(), vec![1, 2, 3, 4, 5, 6, 7], "every item written once, in order");
        assert!(batches.iter().all(|b| b.len() <= 3), "max_batch is respected: {batches:?}");
        assert!(batches.len() < 7, "queued calls were batched: {batches:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers_with_the_reason() {
        let group = GroupCommit::start(8, |_items: Vec<u32>| async {
            Err::<Vec<()>, _>(StoreError::Corrupt("disk on fire".into()))
        });
        let err = group.submit(1).await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
}
