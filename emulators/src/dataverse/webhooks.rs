//! What the Dataverse emulator's registered steps send: for every step on
//! a write's table and message, a `RemoteExecutionContext` as JSON,
//! `POST`ed to its endpoint's `url` with the documented headers
//! (`x-request-id`, `x-ms-dynamics-organization`,
//! `x-ms-dynamics-entity-name`, `x-ms-dynamics-request-name`,
//! `x-ms-correlation-request-id`) and the endpoint's authentication:
//! `authtype` 5 sends each `<setting name value>` of `authvalue` as a
//! header, 6 as a query parameter, 4 the value as `?code=`
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>).
//! An asynchronous step's (`mode` 1) is queued after the commit, per
//! service endpoint; a synchronous step's (`mode` 0) is sent during the
//! write by `synchronous`, never queued.
//!
//! - [`Webhooks`]: one delivery task per endpoint, over the store's event
//!   queues (keyed `webhook:<endpoint id>`), resumed at start.
//! - [`after_commit`]: the hook `ops::respond` calls once a write
//!   committed, with its [`Change`]s.
//! - [`context`]: the context of one step for one change, shared by both
//!   modes; its `PreEntityImages` and `PostEntityImages` are the step's
//!   images (`images`). The contexts of one write, or of one `$batch`
//!   change set, share one `CorrelationId`.
//!
//! The `Target` of a `Create` or an `Update` is an `Entity` with the
//! columns the request set (lookups as `EntityReference`s) and the row's
//! id; of a `Delete`, an `EntityReference`. An `Update` step with
//! `filteringattributes` fires only when the request set one of them, as
//! the service does. An upsert that made the row is a `Create`.
//!
//! Invariants: contexts to one endpoint are delivered in commit order,
//! each until the endpoint answers 2xx (retried after up to 1 s, doubling
//! to 8 s, with the jitter of [`dualwrite::connector::backoff`]); a
//! context leaves its queue only after that answer, so a stop or a crash
//! mid-delivery sends it again (at least once). Endpoint settings are read
//! at each attempt, so a changed `url` or secret applies to what is still
//! queued.

use crate::delivery::{Attempt, drain};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::super::SharedState;
use super::super::security::{business_unit_id, organization_id};
use super::super::store::{Store, StoreError, StoredRow};
use super::steps::{self, ENDPOINTS, HTTP_HEADER, HTTP_QUERY_STRING, WEBHOOK_KEY};
use dualwrite::schema::{FieldType, TableDef};

const CONTRACTS: &str = "http://schemas.microsoft.com/xrm/2011/Contracts";

/// The queue of an endpoint in the store.
fn queue(endpoint: &str) -> String {
    format!("webhook:{endpoint}")
}

#[derive(Debug)]
struct Delivery {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The delivery tasks of the registered service endpoints.
#[derive(Debug)]
pub(crate) struct Webhooks {
    store: Arc<Store>,
    organization: String,
    deliveries: Mutex<HashMap<String, Delivery>>,
    client: reqwest::Client,
}

impl Webhooks {
    /// Resumes the delivery of every stored endpoint. Must run inside a
    /// tokio runtime.
    pub(crate) fn start(
        store: Arc<Store>,
        organization: String,
        client: reqwest::Client,
    ) -> Result<Self, StoreError> {
        let webhooks = Self {
            store: store.clone(),
            organization,
            deliveries: Mutex::new(HashMap::new()),
            client,
        };
        for endpoint in store.rows(ENDPOINTS)? {
            if let Some(id) = endpoint
                .row
                .get("serviceendpointid")
                .and_then(Value::as_str)
            {
                webhooks.endpoint_changed(id);
            }
        }
        Ok(webhooks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Delivery>> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An endpoint was made or changed: its delivery runs (and looks again).
    pub(crate) fn endpoint_changed(&self, id: &str) {
        let mut deliveries = self.lock();
        if let Some(delivery) = deliveries.get(id)
            && !delivery.task.is_finished()
        {
            delivery.wake.notify_one();
            return;
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(deliver(
            self.store.clone(),
            id.to_owned(),
            wake.clone(),
            self.client.clone(),
        ));
        wake.notify_one();
        deliveries.insert(id.to_owned(), Delivery { wake, task });
    }

    /// An endpoint was deleted: its delivery ends and its queue is dropped.
    pub(crate) fn endpoint_removed(&self, id: &str) {
        if let Some(delivery) = self.lock().remove(id) {
            delivery.task.abort();
        }
        // The queue shares the layout of the data event subscriptions.
        if let Err(error) = self.store.remove_subscription(&queue(id)) {
            tracing::error!(%error, endpoint = id, "Could not drop a webhook queue.");
        }
    }

    /// The client contexts are posted with.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn publish(&self, endpoint: &str, context: &Value) {
        match self.store.enqueue(&queue(endpoint), context) {
            Ok(()) => {
                if let Some(delivery) = self.lock().get(endpoint) {
                    delivery.wake.notify_one();
                }
            }
            Err(error) => tracing::error!(%error, endpoint, "Could not queue a webhook context."),
        }
    }

    /// Stops the delivery tasks without waiting; queues stay stored.
    pub(crate) fn stop(&self) {
        for delivery in self.lock().values() {
            delivery.task.abort();
        }
    }

    /// Stops the delivery tasks and waits until they are gone.
    pub(crate) async fn shutdown(&self) {
        let deliveries: Vec<Delivery> = self.lock().drain().map(|(_, d)| d).collect();
        for delivery in deliveries {
            delivery.task.abort();
            let _ = delivery.task.await;
        }
    }
}

/// The `<setting name="…" value="…" />` pairs of an `authvalue`.
pub(crate) fn settings(authvalue: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = Reader::from_str(authvalue);
    let mut out = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            format!("authvalue is not <settings><setting name=\"…\" value=\"…\" /></settings>: {e}")
        })?;
        match event {
            Event::Start(element) | Event::Empty(element)
                if element.local_name().as_ref() == b"setting" =>
            {
                let mut name = None;
                let mut value = None;
                for attribute in element.attributes() {
                    let attribute = attribute.map_err(|e| format!("authvalue: {e}"))?;
                    let text = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("authvalue: {e}"))?
                        .into_owned();
                    match attribute.key.local_name().as_ref() {
                        b"name" => name = Some(text),
                        b"value" => value = Some(text),
                        _ => {}
                    }
                }
                match (name, value) {
                    (Some(name), Some(value)) => out.push((name, value)),
                    _ => return Err("authvalue: each <setting> needs a name and a value".into()),
                }
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// One row change of a write, as the steps registered on it see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    /// The row's table.
    pub table: &'a TableDef,
    /// `Create`, `Update` or `Delete` (an upsert that made the row is a
    /// `Create`).
    pub message: &'static str,
    /// The row's id.
    pub id: &'a str,
    /// What the request set.
    pub body: &'a Map<String, Value>,
    /// The row before the write; none for a create.
    pub before: Option<&'a StoredRow>,
    /// The row as written; none for a delete.
    pub after: Option<&'a StoredRow>,
}

impl<'a> Change<'a> {
    /// The change of a write to `table` that turned `before` into `after`
    /// (`created` when it made the row); none when it changed nothing.
    pub(crate) fn new(
        table: &'a TableDef,
        body: &'a Map<String, Value>,
        before: Option<&'a StoredRow>,
        after: Option<&'a StoredRow>,
        created: bool,
    ) -> Option<Self> {
        let pk = table.primary_key.first().map_or("", String::as_str);
        let id = |row: &'a StoredRow| row.row.get(pk).and_then(Value::as_str);
        let (message, id) = match (after, before) {
            (Some(row), _) => (if created { "Create" } else { "Update" }, id(row)?),
            (None, Some(row)) => ("Delete", id(row)?),
            (None, None) => return None,
        };
        Some(Self {
            table,
            message,
            id,
            body,
            before,
            after,
        })
    }
}

/// True for an asynchronous step (`mode` 1), whose context is queued
/// after the commit; a synchronous one (`mode` 0) is called during the
/// write (`synchronous`).
pub(crate) fn asynchronous(step: &Map<String, Value>) -> bool {
    step.get("mode").and_then(Value::as_i64) == Some(1)
}

/// True when `step` fires for `change`: an `Update` step with
/// `filteringattributes` only when the request set one of them, as the
/// service does.
pub(crate) fn fires(step: &Map<String, Value>, change: &Change<'_>) -> bool {
    let filtering = step
        .get("filteringattributes")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let wanted: Vec<&str> = filtering
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    change.message != "Update"
        || wanted.is_empty()
        || set_columns(change.table, change.body)
            .iter()
            .any(|c| wanted.contains(&c.as_str()))
}

/// Queues the context of each committed change for each asynchronous
/// step on it; all carry `correlation` as their `CorrelationId`.
pub(crate) fn after_commit(state: &SharedState, changes: &[Change<'_>], correlation: &str) {
    let images = super::images::registered(state);
    for change in changes {
        for step in steps::steps_for(state, change.table, change.message) {
            if !asynchronous(&step) || !fires(&step, change) {
                continue;
            }
            let Some(endpoint) = step.get("_eventhandler_value").and_then(Value::as_str) else {
                continue;
            };
            let context = context(state, change, &step, &images, correlation);
            state.webhooks.publish(endpoint, &context);
        }
    }
}

/// The columns a request body set: its plain columns and its lookups
/// (`nav@odata.bind` as `nav`).
fn set_columns(table: &TableDef, body: &Map<String, Value>) -> Vec<String> {
    body.keys()
        .filter_map(|name| match name.strip_suffix("@odata.bind") {
            Some(nav) => Some(nav.to_owned()),
            None if name.contains('@') => None,
            None => table.field(name).map(|f| f.name.clone()),
        })
        .collect()
}

fn reference(logical_name: &str, id: &str) -> Value {
    json!({
        "__type": format!("EntityReference:{CONTRACTS}"),
        "Id": id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "Name": null,
        "RowVersion": null,
    })
}

/// The value of `column` of `row` in a context: a lookup as an
/// `EntityReference`, null when the row has none.
pub(crate) fn attribute(
    state: &SharedState,
    table: &TableDef,
    row: &StoredRow,
    column: &str,
) -> Value {
    match table.field(column) {
        Some(field) if field.field_type == FieldType::Lookup => {
            match row
                .row
                .get(&format!("_{column}_value"))
                .and_then(Value::as_str)
            {
                Some(target) => {
                    let logical = field
                        .target
                        .as_deref()
                        .and_then(|t| state.metadata.table(t))
                        .map_or("", TableDef::entity_name);
                    reference(logical, target)
                }
                None => Value::Null,
            }
        }
        _ => row.row.get(column).cloned().unwrap_or(Value::Null),
    }
}

/// An `Entity` of `row` with `columns` (lookups as `EntityReference`s),
/// its id and its version as `RowVersion`.
pub(crate) fn entity<'c>(
    state: &SharedState,
    table: &TableDef,
    columns: impl IntoIterator<Item = &'c str>,
    row: &StoredRow,
    id: &str,
) -> Value {
    let attributes: Vec<Value> = columns
        .into_iter()
        .map(|column| json!({"key": column, "value": attribute(state, table, row, column)}))
        .collect();
    json!({
        "__type": format!("Entity:{CONTRACTS}"),
        "Attributes": attributes,
        "EntityState": null,
        "FormattedValues": [],
        "Id": id,
        "KeyAttributes": [],
        "LogicalName": table.entity_name(),
        "RelatedEntities": [],
        "RowVersion": row.version.to_string(),
    })
}

/// The `Target` of a change: for a create or an update an `Entity` with
/// the columns the request set, the primary id and `modifiedon`; for a
/// delete an `EntityReference`.
fn target(state: &SharedState, change: &Change<'_>) -> Value {
    let Some(row) = change.after else {
        return reference(change.table.entity_name(), change.id);
    };
    let pk = change.table.primary_key.first().map_or("", String::as_str);
    let set = set_columns(change.table, change.body);
    let columns = set.iter().map(String::as_str).chain([pk, "modifiedon"]);
    entity(state, change.table, columns, row, change.id)
}

/// The `RemoteExecutionContext` of one step for one change. A
/// synchronous step in PreOperation or PostOperation runs inside the
/// write's transaction (`IsInTransaction`); PreValidation runs before it.
pub(crate) fn context(
    state: &SharedState,
    change: &Change<'_>,
    step: &Map<String, Value>,
    images: &[Map<String, Value>],
    correlation: &str,
) -> Value {
    let now = Utc::now().timestamp_millis();
    let output = match change.message {
        "Create" => json!([{"key": "id", "value": change.id}]),
        _ => json!([]),
    };
    let stage = step.get("stage").and_then(Value::as_i64).unwrap_or(40);
    let mode = if asynchronous(step) { 1 } else { 0 };
    let (pre, post) = super::images::entities(state, change, step, images);
    json!({
        "BusinessUnitId": business_unit_id().to_string(),
        "CorrelationId": correlation,
        "Depth": 1,
        "InputParameters": [{"key": "Target", "value": target(state, change)}],
        "IsExecutingOffline": false,
        "IsInTransaction": mode == 0 && stage != 10,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": change.message,
        "Mode": mode,
        "OperationCreatedOn": format!("/Date({now}+0000)/"),
        "OperationId": Uuid::new_v4().to_string(),
        "OrganizationId": organization_id().to_string(),
        "OrganizationName": state.webhooks.organization,
        "OutputParameters": output,
        "OwningExtension": {
            "Id": step.get("sdkmessageprocessingstepid").cloned().unwrap_or(Value::Null),
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": step.get("name").cloned().unwrap_or(Value::Null),
            "RowVersion": null,
        },
        "ParentContext": null,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "PrimaryEntityId": change.id,
        "PrimaryEntityName": change.table.entity_name(),
        "RequestId": Uuid::new_v4().to_string(),
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": stage,
    })
}

/// Delivers the queue of one endpoint in order until it is deleted or the
/// emulator stops (the context in flight then stays queued).
async fn deliver(store: Arc<Store>, endpoint: String, wake: Arc<Notify>, client: reqwest::Client) {
    let queue = queue(&endpoint);
    let settings_of = store.clone();
    let send = |context: Value| {
        let endpoint = endpoint.clone();
        // Deleted meanwhile: the delivery ends (`endpoint_removed` drops
        // the queue).
        let settings = settings_of
            .get(ENDPOINTS, &steps::pk(&endpoint))
            .ok()
            .flatten();
        let request = settings.map(|settings| post(&client, &settings.row, &context));
        async move {
            match request {
                None => Attempt::Gone,
                Some(Ok(request)) => match request.send().await {
                    Ok(r) if r.status().is_success() => Attempt::Delivered,
                    Ok(r) => {
                        tracing::warn!(endpoint, status = %r.status(), "A webhook refused a context; retrying.");
                        Attempt::Failed
                    }
                    Err(error) => {
                        tracing::warn!(endpoint, %error, "A webhook is unreachable; retrying.");
                        Attempt::Failed
                    }
                },
                Some(Err(error)) => {
                    tracing::warn!(endpoint, %error, "A webhook endpoint cannot be called; retrying.");
                    Attempt::Failed
                }
            }
        }
    };
    // A changed endpoint is tried again at once.
    drain(store, &queue, wake, true, send).await;
}

/// The request of one context to `endpoint`.
pub(crate) fn post(
    client: &reqwest::Client,
    endpoint: &Map<String, Value>,
    context: &Value,
) -> Result<reqwest::RequestBuilder, String> {
    let url = endpoint
        .get("url")
        .and_then(Value::as_str)
        .ok_or("the endpoint has no url")?;
    let mut url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let authvalue = endpoint
        .get("authvalue")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let authtype = endpoint.get("authtype").and_then(Value::as_i64);
    let mut headers = Vec::new();
    match authtype {
        Some(HTTP_HEADER) => headers = settings(authvalue)?,
        Some(HTTP_QUERY_STRING) => {
            for (name, value) in settings(authvalue)? {
                url.query_pairs_mut().append_pair(&name, &value);
            }
        }
        Some(WEBHOOK_KEY) => {
            url.query_pairs_mut().append_pair("code", authvalue);
        }
        _ => {}
    }
    let text = |name: &str| {
        context
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut request = client
        .post(url)
        .header("x-request-id", text("RequestId"))
        .header("x-ms-dynamics-organization", text("OrganizationName"))
        .header("x-ms-dynamics-entity-name", text("PrimaryEntityName"))
        .header("x-ms-dynamics-request-name", text("MessageName"))
        .header("x-ms-correlation-request-id", text("CorrelationId"))
        .json(context);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    Ok(request)
}
