//! The one delivery loop of the emulators' pushes (finops data events,
//! Dataverse webhook contexts): a stored queue sent in order, each item
//! until the receiver answers 2xx, retried with the backoff of
//! [`dualwrite::connector::backoff`] (after up to 1 s, doubling to 8 s);
//! an item leaves its queue only after that answer, so a stop or a crash
//! mid-delivery sends it again (at least once).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dualwrite::connector::backoff;
use serde_json::Value;
use tokio::sync::Notify;

use super::store::Store;

/// What one attempt at the first queued item came to.
pub(crate) enum Attempt {
    /// Answered 2xx: the item leaves the queue.
    Delivered,
    /// Refused or unreachable (logged by the sender): tried again later.
    Failed,
    /// The destination is gone: the delivery ends.
    Gone,
}

/// Sends the items of `queue` in order through `send` until it says the
/// destination is gone; waits on `wake` while the queue is empty, and also
/// between retries when `wake_retries` (a changed destination is tried at
/// once).
pub(crate) async fn drain<F, Fut>(
    store: Arc<Store>,
    queue: &str,
    wake: Arc<Notify>,
    wake_retries: bool,
    mut send: F,
) where
    F: FnMut(Value) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let waits = || backoff(Duration::from_secs(1), Duration::from_secs(8));
    let mut retries = waits();
    loop {
        let next = match store.first_queued(queue) {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, queue, "Could not read a delivery queue.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((key, item)) = next else {
            wake.notified().await;
            continue;
        };
        match send(item).await {
            Attempt::Delivered => {
                if let Err(error) = store.dequeue(&key) {
                    tracing::error!(%error, queue, "Could not remove a delivered item.");
                }
                retries = waits();
            }
            Attempt::Failed => {
                let wait = retries.next().unwrap_or(Duration::from_secs(8));
                if wake_retries {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                    }
                } else {
                    tokio::time::sleep(wait).await;
                }
            }
            Attempt::Gone => return,
        }
    }
}
