//! Finance and Operations data events: create, update and delete events
//! pushed as JSON to subscribed webhook endpoints, in order, retried with
//! backoff while an endpoint is down.
//!
//! Subscriptions and undelivered events live in the store, so both survive
//! a restart: delivery resumes where it stopped.
//!
//! Invariants: events to one endpoint are delivered in commit order, each
//! until the endpoint answers 2xx (retried after up to 1 s, doubling to
//! 8 s, with the jitter of [`dualwrite::connector::backoff`]); an
//! event is removed from its queue only after that answer, so a stop or a
//! crash mid-delivery sends it again (at least once). Events are queued just
//! after their write commits: a crash between the two loses that event;
//! row-version polling is the path without that gap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualwrite::connector::backoff;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::store::{Store, StoreError};

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
    id: String,
    subscription: Subscription,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The subscriptions of one emulator and their delivery tasks.
#[derive(Debug)]
pub struct DataEvents {
    store: Arc<Store>,
    endpoints: Mutex<Vec<Endpoint>>,
}

impl DataEvents {
    /// Loads the stored subscriptions and resumes their deliveries. Must run
    /// inside a tokio runtime.
    pub fn start(store: Arc<Store>) -> Result<Self, StoreError> {
        let events = Self {
            store: store.clone(),
            endpoints: Mutex::new(Vec::new()),
        };
        for (id, value) in store.subscriptions()? {
            if let Ok(subscription) = serde_json::from_value::<Subscription>(value) {
                events.spawn(id, subscription);
            }
        }
        Ok(events)
    }

    fn spawn(&self, id: String, subscription: Subscription) {
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(deliver(
            self.store.clone(),
            id.clone(),
            subscription.url.clone(),
            wake.clone(),
        ));
        wake.notify_one();
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Endpoint {
                id,
                subscription,
                wake,
                task,
            });
    }

    /// Adds (and stores) a subscription and starts its delivery task.
    pub fn subscribe(&self, subscription: Subscription) -> Result<(), StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let value = serde_json::to_value(&subscription).unwrap_or(Value::Null);
        self.store.put_subscription(&id, &value)?;
        self.spawn(id, subscription);
        Ok(())
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

    /// Removes every subscription and its undelivered events.
    pub fn clear(&self) -> Result<(), StoreError> {
        let endpoints: Vec<Endpoint> = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for endpoint in endpoints {
            endpoint.task.abort();
            self.store.remove_subscription(&endpoint.id)?;
        }
        Ok(())
    }

    /// Stops the delivery tasks without waiting, keeping subscriptions and
    /// queues stored.
    pub fn stop(&self) {
        for endpoint in self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            endpoint.task.abort();
        }
    }

    /// Stops the delivery tasks and waits until they are gone (they hold
    /// the store), keeping subscriptions and queues stored.
    pub async fn shutdown(&self) {
        let endpoints: Vec<Endpoint> = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for endpoint in endpoints {
            endpoint.task.abort();
            let _ = endpoint.task.await;
        }
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
            if !wanted {
                continue;
            }
            match self.store.enqueue(&endpoint.id, event) {
                Ok(()) => endpoint.wake.notify_one(),
                Err(error) => tracing::error!(%error, entity, "Could not queue a data event."),
            }
        }
    }
}

/// Delivers the queue of one subscription in order. Aborted on stop; the
/// event in flight then stays queued and is sent again after a restart.
async fn deliver(store: Arc<Store>, id: String, url: String, wake: Arc<Notify>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let waits = || backoff(Duration::from_secs(1), Duration::from_secs(8));
    let mut retries = waits();
    loop {
        let next = match store.first_queued(&id) {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, %url, "Could not read the data event queue.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((key, event)) = next else {
            wake.notified().await;
            continue;
        };
        let delivered = match client.post(&url).json(&event).send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(%url, status = %r.status(), "Data event endpoint refused an event; retrying.");
                false
            }
            Err(error) => {
                tracing::warn!(%url, %error, "Data event endpoint unreachable; retrying.");
                false
            }
        };
        if delivered {
            if let Err(error) = store.dequeue(&key) {
                tracing::error!(%error, %url, "Could not remove a delivered data event.");
            }
            retries = waits();
        } else {
            let wait = retries.next().unwrap_or(Duration::from_secs(8));
            tokio::time::sleep(wait).await;
        }
    }
}
