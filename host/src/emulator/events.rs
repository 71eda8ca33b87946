//! Finance and Operations data events: create, update and delete events
//! pushed as JSON to subscribed webhook endpoints, in order, retried with
//! backoff while an endpoint is down.
//!
//! Invariant: events to one endpoint are delivered in commit order; a failed
//! delivery is retried (1 s doubling to 8 s) until it succeeds or the
//! emulator stops. The queue lives in memory: events not yet delivered when
//! the emulator stops are lost (the real service keeps them in Azure
//! infrastructure; polling row versions is the durable path).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Endpoint receiving `POST` with one event as JSON.
    pub url: String,
    /// Entities whose events are sent; empty means all.
    #[serde(default)]
    pub entities: Vec<String>,
}

#[derive(Debug)]
struct Endpoint {
    subscription: Subscription,
    queue: mpsc::UnboundedSender<Value>,
}

/// The subscriptions of one emulator and their delivery tasks.
#[derive(Debug, Default)]
pub struct DataEvents {
    endpoints: Mutex<Vec<Endpoint>>,
}

impl DataEvents {
    /// Adds a subscription and starts its delivery task.
    pub fn subscribe(&self, subscription: Subscription) {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(subscription.url.clone(), rx));
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Endpoint {
                subscription,
                queue: tx,
            });
    }

    /// The subscriptions in force.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| e.subscription.clone())
            .collect()
    }

    /// Removes every subscription (their tasks stop once drained).
    pub fn clear(&self) {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Queues an event for every endpoint subscribed to `entity`.
    pub fn publish(&self, entity: &str, event: &Value) {
        for endpoint in self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let wanted = endpoint.subscription.entities.is_empty()
                || endpoint.subscription.entities.iter().any(|e| e == entity);
            if wanted {
                let _ = endpoint.queue.send(event.clone());
            }
        }
    }
}

/// Delivers events in order. Cancelled when the runtime stops; the event in
/// flight is then lost like the rest of the queue.
async fn deliver(url: String, mut rx: mpsc::UnboundedReceiver<Value>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    while let Some(event) = rx.recv().await {
        let mut wait = Duration::from_secs(1);
        loop {
            match client.post(&url).json(&event).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(%url, status = %r.status(), "Data event endpoint refused an event; retrying.")
                }
                Err(error) => {
                    tracing::warn!(%url, %error, "Data event endpoint unreachable; retrying.")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(8));
        }
    }
}
