//! Finance and Operations data events: create, update and delete events
//! pushed as JSON to subscribed webhook endpoints, in order, retried with
//! backoff while an endpoint is down.
//!
//! Each event is the documented payload, a `RemoteExecutionContext`
//! ([`context`]): `MessageName` `Create`, `Update` or `Delete`,
//! `PrimaryEntityName` the data entity (`CustomersV3`), and
//! `InputParameters` with the `Target` (an `Entity` whose `Attributes` are
//! the entity's fields after the write; for a delete, those of the row
//! deleted) and, for updates and deletes, the `PreImage` (the row before).
//! Pages: <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/business-events/data-events>
//! and, for the context's JSON,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>.
//! A subscription's `headers` are sent with each delivery (a shared
//! secret, as a webhook's authentication header would carry it).
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
//! a subscriber's reconciliation reads are the path without that gap.

use crate::delivery::{Attempt, drain};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
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
    /// Headers sent with each delivery, name → value (a shared secret).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
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
    client: reqwest::Client,
}

impl DataEvents {
    /// Loads the stored subscriptions and resumes their deliveries. Must run
    /// inside a tokio runtime.
    /// Deliveries go through `client`.
    pub fn start(store: Arc<Store>, client: reqwest::Client) -> Result<Self, StoreError> {
        let events = Self {
            store: store.clone(),
            endpoints: Mutex::new(Vec::new()),
            client,
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
            subscription.clone(),
            wake.clone(),
            self.client.clone(),
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

    /// Queues an event for every endpoint subscribed to `entity`; `event`
    /// is made only when one is (a write of a table nobody subscribed to
    /// builds no context).
    pub fn publish(&self, entity: &str, event: impl FnOnce() -> Value) {
        let mut event = Some(event);
        let mut made = None;
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
            if made.is_none() {
                made = event.take().map(|make| make());
            }
            let Some(event) = &made else { continue };
            match self.store.enqueue(&endpoint.id, event) {
                Ok(()) => endpoint.wake.notify_one(),
                Err(error) => tracing::error!(%error, entity, "Could not queue a data event."),
            }
        }
    }
}

/// The client deliveries are posted with: a timeout, the system's roots
/// and `trusted_ca` (PEM) when given.
pub(crate) fn delivery_client(trusted_ca: Option<&str>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(pem) = trusted_ca {
        let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|error| format!("the trusted CA is not a PEM certificate: {error}"))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|error| format!("no HTTP client for deliveries: {error}"))
}

/// Delivers the queue of one subscription in order. Aborted on stop; the
/// event in flight then stays queued and is sent again after a restart.
async fn deliver(
    store: Arc<Store>,
    id: String,
    subscription: Subscription,
    wake: Arc<Notify>,
    client: reqwest::Client,
) {
    let url = &subscription.url;
    let send = |event: Value| {
        let request = subscription
            .headers
            .iter()
            .fold(client.post(url), |request, (name, value)| {
                request.header(name, value)
            })
            .json(&event);
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => Attempt::Delivered,
                Ok(r) => {
                    tracing::warn!(%url, status = %r.status(), "Data event endpoint refused an event; retrying.");
                    Attempt::Failed
                }
                Err(error) => {
                    tracing::warn!(%url, %error, "Data event endpoint unreachable; retrying.");
                    Attempt::Failed
                }
            }
        }
    };
    drain(store, &id, wake, false, send).await;
}

/// The data event of a committed write: a `RemoteExecutionContext` for
/// `message` (`Create`, `Update`, `Delete`) of `entity`, with `target` (the
/// fields after the write, or of the row deleted) and `pre_image` (the row
/// before an update or a delete). finops rows have no GUID, so the ids are
/// the empty GUID.
pub(crate) fn context(
    entity: &str,
    message: &str,
    target: &Map<String, Value>,
    pre_image: Option<&Map<String, Value>>,
) -> Value {
    let nil = uuid::Uuid::nil().to_string();
    let mut parameters = vec![json!({"key": "Target", "value": image(entity, target)})];
    if let Some(before) = pre_image {
        parameters.push(json!({"key": "PreImage", "value": image(entity, before)}));
    }
    let created = chrono::Utc::now().timestamp_millis();
    json!({
        "BusinessUnitId": nil,
        "CorrelationId": uuid::Uuid::new_v4().to_string(),
        "Depth": 1,
        "InitiatingUserId": nil,
        "InputParameters": parameters,
        "IsExecutingOffline": false,
        "IsInTransaction": false,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": format!("/Date({created}+0000)/"),
        "OperationId": uuid::Uuid::new_v4().to_string(),
        "OrganizationId": nil,
        "OrganizationName": "",
        "OutputParameters": [],
        "OwningExtension": {
            "Id": nil,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": null,
            "RowVersion": null
        },
        "ParentContext": null,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": nil,
        "PrimaryEntityName": entity,
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserId": nil
    })
}

/// A row as an `Entity`: its fields as `Attributes` pairs.
fn image(entity: &str, row: &Map<String, Value>) -> Value {
    let attributes: Vec<Value> = row
        .iter()
        .filter(|(field, _)| !field.starts_with('@'))
        .map(|(field, value)| json!({"key": field, "value": value}))
        .collect();
    json!({
        "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
        "Attributes": attributes,
        "EntityState": null,
        "FormattedValues": [],
        "Id": uuid::Uuid::nil().to_string(),
        "KeyAttributes": [],
        "LogicalName": entity,
        "RelatedEntities": [],
        "RowVersion": null
    })
}
