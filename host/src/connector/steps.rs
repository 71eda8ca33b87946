//! Dataverse webhooks registered through the Web API: a service endpoint
//! (`serviceendpoints`, `contract` 8 Webhook, `authtype` 5 HttpHeader) and
//! its steps (`sdkmessageprocessingsteps`) for `Create`, `Update` and
//! `Delete` of one table, PostOperation (`stage` 40), asynchronous
//! (`mode` 1), found again by name so that registering twice changes
//! nothing.
//!
//! - [`DataverseConnector::ensure_webhook`]: the endpoint by `name`,
//!   made, or its `url` and `authvalue` set again.
//! - [`DataverseConnector::ensure_steps`]: the table's logical name from
//!   `EntityDefinitions`, the `sdkmessage` and `sdkmessagefilter` ids by
//!   query, then the three steps ([`WebhookSteps`]); an `Update` step
//!   filters on the columns given (`filteringattributes`). A live map's
//!   steps ([`StepMode::Synchronous`]) are synchronous (`mode` 0) in
//!   PostOperation, so they run inside the save's transaction, and their
//!   `Create` and `Update` steps carry a PostImage
//!   (`sdkmessageprocessingstepimages`, `imagetype` 1, alias
//!   [`POST_IMAGE`]) of the map's columns: the row as it will be
//!   committed, which no read can see yet.
//! - [`DataverseConnector::remove_steps`], [`DataverseConnector::remove_webhook`].
//! - [`DataverseConnector::get_selected`]: the read a webhook leads to,
//!   one row by id with `$select`.
//!
//! Pages: <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>
//! (the endpoint columns, `authvalue` as `<settings><setting name value
//! /></settings>`), the table references of
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/serviceendpoint>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessagefilter>
//! and
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessageprocessingstep>
//! (`stage`, `mode`, `rank`, `supporteddeployment`, `asyncautodelete`,
//! `filteringattributes`, the `sdkmessageid`, `sdkmessagefilterid` and
//! `eventhandler_serviceendpoint` navigation properties), and
//! <https://learn.microsoft.com/power-apps/developer/data-platform/register-web-hook>.
//! `authvalue` is not readable on the service, so an endpoint found is
//! always given its secret again.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::dataverse::{DataverseConnector, query_string, rows_of};
use super::error::{ConnectorError, SystemKind};
use super::transport::{Call, Reply};
use super::{Query, Row};

/// The messages a table's steps are registered on.
pub const WEBHOOK_MESSAGES: [&str; 3] = ["Create", "Update", "Delete"];

/// The privileges registering needs, as the service names them.
pub const REGISTRATION_PRIVILEGES: [&str; 7] = [
    "prvCreateServiceEndpoint",
    "prvReadServiceEndpoint",
    "prvWriteServiceEndpoint",
    "prvCreateSdkMessageProcessingStep",
    "prvReadSdkMessageProcessingStep",
    "prvDeleteSdkMessageProcessingStep",
    "prvReadSdkMessage",
];

/// How a table's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepMode {
    /// `mode` 1: posted after the save committed (a hint to read again).
    Asynchronous,
    /// `mode` 0: called inside the save's transaction, which fails when
    /// the call does; the PostImage holds `image` (logical column names).
    Synchronous {
        /// The columns of the PostImage.
        image: Vec<String>,
    },
}

impl StepMode {
    fn mode(&self) -> i64 {
        match self {
            StepMode::Asynchronous => 1,
            StepMode::Synchronous { .. } => 0,
        }
    }
}

/// The alias of a synchronous step's PostImage (`PostEntityImages`).
pub const POST_IMAGE: &str = "dualwrite";

/// The steps of one table on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSteps {
    /// The table's logical name (`PrimaryEntityName` of its contexts).
    pub logical_name: String,
    /// The `sdkmessageprocessingstepid`s, in [`WEBHOOK_MESSAGES`] order.
    pub step_ids: Vec<String>,
}

/// The name of the step of `message` among the steps called `name`.
fn step_name(name: &str, message: &str) -> String {
    format!("{name} {message}")
}

/// A string literal of a `$filter`.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `<settings><setting name="…" value="…" /></settings>`, escaped.
fn authvalue(header: &str, secret: &str) -> String {
    format!(
        r#"<settings><setting name="{}" value="{}" /></settings>"#,
        quick_xml::escape::escape(header),
        quick_xml::escape::escape(secret)
    )
}

impl DataverseConnector {
    /// The service endpoint called `name`, a webhook posting to `url` with
    /// the header `header: secret`: made, or found and set again. Its id.
    pub async fn ensure_webhook(
        &self,
        name: &str,
        url: &str,
        header: &str,
        secret: &str,
    ) -> Result<String, ConnectorError> {
        let found = self
            .registration_query(
                "serviceendpoints",
                &["serviceendpointid"],
                format!("name eq {}", literal(name)),
                name,
            )
            .await?;
        let body = object(json!({
            "name": name,
            "url": url,
            "contract": 8,
            "authtype": 5,
            "authvalue": authvalue(header, secret),
            "messageformat": 2,
        }));
        match found
            .first()
            .and_then(|row| id_of(row, "serviceendpointid"))
        {
            Some(id) => {
                let call = Call::new(
                    Method::PATCH,
                    self.transport.url(&format!("serviceendpoints({id})")),
                )
                .json(&body);
                self.registration(&call, name).await?;
                Ok(id)
            }
            None => {
                let call =
                    Call::new(Method::POST, self.transport.url("serviceendpoints")).json(&body);
                let reply = self.registration(&call, name).await?;
                self.created_id(&call, &reply)
            }
        }
    }

    /// The steps called `name …` of `table` (an entity set) on `endpoint`,
    /// one per message of [`WEBHOOK_MESSAGES`], run as `mode` says: made
    /// when missing, made again when the `Update` step filters on other
    /// columns than `filtering_attributes` (logical column names; empty:
    /// every update) or the step runs in another mode.
    pub async fn ensure_steps(
        &self,
        endpoint: &str,
        name: &str,
        table: &str,
        filtering_attributes: &[String],
        mode: &StepMode,
    ) -> Result<WebhookSteps, ConnectorError> {
        let logical_name = self.logical_name(table).await?;
        let existing = self.steps_of(endpoint, table).await?;
        let mut filtering: Vec<&str> = filtering_attributes.iter().map(String::as_str).collect();
        filtering.sort_unstable();
        filtering.dedup();
        let filtering = filtering.join(",");
        let mut step_ids = Vec::new();
        for message in WEBHOOK_MESSAGES {
            let wanted = step_name(name, message);
            let attributes = (message == "Update" && !filtering.is_empty()).then_some(&filtering);
            let same = existing
                .iter()
                .find(|row| row.get("name").and_then(Value::as_str) == Some(wanted.as_str()));
            if let Some(row) = same {
                let current = row.get("filteringattributes").and_then(Value::as_str);
                let id = id_of(row, "sdkmessageprocessingstepid");
                let same_mode = row.get("mode").and_then(Value::as_i64) == Some(mode.mode());
                if current.filter(|c| !c.is_empty()) == attributes.map(String::as_str)
                    && same_mode
                    && let Some(id) = id.clone()
                    && self.same_image(&id, message, mode, table).await?
                {
                    step_ids.push(id);
                    continue;
                }
                if let Some(id) = id {
                    self.delete_registration("sdkmessageprocessingsteps", &id, table)
                        .await?;
                }
            }
            let message_id = self.message_id(message, table).await?;
            let filter_id = self
                .filter_id(&message_id, message, &logical_name, table)
                .await?;
            let mut body = object(json!({
                "name": wanted,
                "description": match mode {
                    StepMode::Asynchronous => format!("dualwrite: {message} of {table}, posted to its webhook"),
                    StepMode::Synchronous { .. } => format!("dualwrite: {message} of {table}, written to finops inside the save"),
                },
                "stage": 40,
                "mode": mode.mode(),
                "rank": 1,
                "supporteddeployment": 0,
                "asyncautodelete": *mode == StepMode::Asynchronous,
                "sdkmessageid@odata.bind": format!("/sdkmessages({message_id})"),
                "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter_id})"),
                "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})"),
            }));
            if let Some(attributes) = attributes {
                body.insert("filteringattributes".into(), json!(attributes));
            }
            let call = Call::new(
                Method::POST,
                self.transport.url("sdkmessageprocessingsteps"),
            )
            .json(&body);
            let reply = self.registration(&call, table).await?;
            let step = self.created_id(&call, &reply)?;
            if let StepMode::Synchronous { image } = mode
                && message != "Delete"
            {
                self.add_post_image(&step, image, table).await?;
            }
            step_ids.push(step);
        }
        Ok(WebhookSteps {
            logical_name,
            step_ids,
        })
    }

    /// True when the step `id` of `message` has the image `mode` asks for:
    /// none for an asynchronous step or a `Delete`, else a PostImage
    /// [`POST_IMAGE`] of exactly its columns.
    async fn same_image(
        &self,
        id: &str,
        message: &str,
        mode: &StepMode,
        table: &str,
    ) -> Result<bool, ConnectorError> {
        let StepMode::Synchronous { image } = mode else {
            return Ok(true);
        };
        if message == "Delete" {
            return Ok(true);
        }
        let images = self
            .registration_query(
                "sdkmessageprocessingstepimages",
                &["entityalias", "attributes", "imagetype"],
                format!("_sdkmessageprocessingstepid_value eq {id}"),
                table,
            )
            .await?;
        let wanted = image.join(",");
        Ok(images.iter().any(|row| {
            row.get("entityalias").and_then(Value::as_str) == Some(POST_IMAGE)
                && row.get("attributes").and_then(Value::as_str) == Some(wanted.as_str())
        }))
    }

    /// The PostImage of a synchronous step: `columns` of the row as the
    /// save will commit it, under the alias [`POST_IMAGE`] ("Define entity
    /// images", the `sdkmessageprocessingstepimage` table reference).
    async fn add_post_image(
        &self,
        step: &str,
        columns: &[String],
        table: &str,
    ) -> Result<(), ConnectorError> {
        let body = object(json!({
            "name": POST_IMAGE,
            "entityalias": POST_IMAGE,
            "imagetype": 1,
            "messagepropertyname": "Target",
            "attributes": columns.join(","),
            "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step})"),
        }));
        let call = Call::new(
            Method::POST,
            self.transport.url("sdkmessageprocessingstepimages"),
        )
        .json(&body);
        self.registration(&call, table).await.map(drop)
    }

    /// Deletes the steps called `name …` on `endpoint`; those already gone
    /// are no error.
    pub async fn remove_steps(&self, endpoint: &str, name: &str) -> Result<(), ConnectorError> {
        let names: Vec<String> = WEBHOOK_MESSAGES
            .iter()
            .map(|message| step_name(name, message))
            .collect();
        for row in self.steps_of(endpoint, name).await? {
            let named = row
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| names.iter().any(|w| w == n));
            if let (true, Some(id)) = (named, id_of(&row, "sdkmessageprocessingstepid")) {
                self.delete_registration("sdkmessageprocessingsteps", &id, name)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes the service endpoint `endpoint` (its steps first, with
    /// [`DataverseConnector::remove_steps`]); one already gone is no error.
    pub async fn remove_webhook(&self, endpoint: &str) -> Result<(), ConnectorError> {
        self.delete_registration("serviceendpoints", endpoint, "the webhook")
            .await
    }

    /// The row of `table` with id `id`, its `select` columns only (every
    /// column when empty), or `None` when there is none.
    pub async fn get_selected(
        &self,
        table: &str,
        id: uuid::Uuid,
        select: &[String],
    ) -> Result<Option<Row>, ConnectorError> {
        let query = Query {
            select: select.to_vec(),
            filter: None,
        };
        let call = Call::new(
            Method::GET,
            self.transport
                .url(&format!("{table}({id}){}", query_string(&query))),
        );
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        let reply = self.transport.accept(&call, reply, table, None)?;
        self.transport.json(&call, &reply).map(Some)
    }

    /// `EntityDefinitions`: the logical name of the entity set `table`.
    async fn logical_name(&self, table: &str) -> Result<String, ConnectorError> {
        let url = self.transport.url(&format!(
            "EntityDefinitions{}",
            query_string(&Query {
                select: vec!["LogicalName".into()],
                filter: Some(format!("EntitySetName eq {}", literal(table))),
            })
        ));
        let call = Call::new(Method::GET, url);
        let reply = self.registration(&call, table).await?;
        let body = self.transport.json(&call, &reply)?;
        rows_of(&body)
            .first()
            .and_then(|row| row.get("LogicalName").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Invalid {
                system: SystemKind::Dataverse,
                detail: format!(
                    "no table has the entity set name `{table}`, so no webhook step can be registered for it: name the table by its entity set"
                ),
            })
    }

    async fn message_id(&self, message: &str, table: &str) -> Result<String, ConnectorError> {
        let rows = self
            .registration_query(
                "sdkmessages",
                &["sdkmessageid"],
                format!("name eq {}", literal(message)),
                table,
            )
            .await?;
        rows.first()
            .and_then(|row| id_of(row, "sdkmessageid"))
            .ok_or_else(|| missing(format!("the message {message}"), table))
    }

    async fn filter_id(
        &self,
        message_id: &str,
        message: &str,
        logical_name: &str,
        table: &str,
    ) -> Result<String, ConnectorError> {
        let rows = self
            .registration_query(
                "sdkmessagefilters",
                &["sdkmessagefilterid"],
                format!(
                    "_sdkmessageid_value eq {message_id} and primaryobjecttypecode eq {}",
                    literal(logical_name)
                ),
                table,
            )
            .await?;
        rows.first()
            .and_then(|row| id_of(row, "sdkmessagefilterid"))
            .ok_or_else(|| missing(format!("a {message} filter of {logical_name}"), table))
    }

    /// The steps registered on `endpoint`.
    async fn steps_of(&self, endpoint: &str, table: &str) -> Result<Vec<Row>, ConnectorError> {
        let endpoint = uuid::Uuid::parse_str(endpoint).map_err(|_| ConnectorError::Invalid {
            system: SystemKind::Dataverse,
            detail: format!(
                "`{endpoint}` is not a serviceendpoint id: pass the id ensure_webhook gave"
            ),
        })?;
        self.registration_query(
            "sdkmessageprocessingsteps",
            &[
                "sdkmessageprocessingstepid",
                "name",
                "filteringattributes",
                "mode",
            ],
            format!("_eventhandler_value eq {endpoint}"),
            table,
        )
        .await
    }

    async fn registration_query(
        &self,
        set: &str,
        select: &[&str],
        filter: String,
        about: &str,
    ) -> Result<Vec<Row>, ConnectorError> {
        let query = Query {
            select: select.iter().map(|s| (*s).to_owned()).collect(),
            filter: Some(filter),
        };
        let call = Call::new(
            Method::GET,
            self.transport
                .url(&format!("{set}{}", query_string(&query))),
        );
        let reply = self.registration(&call, about).await?;
        let body = self.transport.json(&call, &reply)?;
        Ok(rows_of(&body))
    }

    async fn delete_registration(
        &self,
        set: &str,
        id: &str,
        about: &str,
    ) -> Result<(), ConnectorError> {
        let call = Call::new(Method::DELETE, self.transport.url(&format!("{set}({id})")));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(());
        }
        explain(self.transport.accept(&call, reply, set, None), about).map(drop)
    }

    /// Sends a registration request; a refusal names what it was about and,
    /// for a 403, the privileges registering needs.
    async fn registration(&self, call: &Call, about: &str) -> Result<Reply, ConnectorError> {
        let reply = self.transport.send(call).await?;
        let set = call
            .url
            .strip_prefix(&format!("{}/", self.transport.service_url))
            .unwrap_or_default()
            .split(['(', '?'])
            .next()
            .unwrap_or_default()
            .to_owned();
        explain(self.transport.accept(call, reply, &set, None), about)
    }

    /// The id in the `OData-EntityId` header of a create.
    fn created_id(&self, call: &Call, reply: &Reply) -> Result<String, ConnectorError> {
        reply
            .headers
            .get("odata-entityid")
            .and_then(|v| v.to_str().ok())
            .and_then(|link| {
                link.rsplit_once('(')
                    .map(|(_, id)| id.trim_end_matches(')'))
            })
            .filter(|id| uuid::Uuid::parse_str(id).is_ok())
            .map(str::to_lowercase)
            .ok_or_else(|| ConnectorError::Protocol {
                system: SystemKind::Dataverse,
                url: call.url.clone(),
                detail: "a create was answered without an OData-EntityId header naming the new row"
                    .into(),
            })
    }
}

/// A registration's reply, its refusal told in terms of `about` and, for
/// a 403, the privileges registering needs.
fn explain(result: Result<Reply, ConnectorError>, about: &str) -> Result<Reply, ConnectorError> {
    result.map_err(|error| match error {
        ConnectorError::Rejected {
            system,
            method,
            url,
            table,
            key,
            status,
            mut service,
        } => {
            let advice = if status == 403 {
                format!(
                    "the application user may not register webhooks: give it a security role with {} (System Customizer holds them); until then {about} is read by change tracking only",
                    REGISTRATION_PRIVILEGES.join(", ")
                )
            } else {
                format!("the webhook registration for {about} was refused")
            };
            service.message = format!("{}; {advice}", service.message);
            ConnectorError::Rejected {
                system,
                method,
                url,
                table,
                key,
                status,
                service,
            }
        }
        other => other,
    })
}

fn missing(what: String, table: &str) -> ConnectorError {
    ConnectorError::Invalid {
        system: SystemKind::Dataverse,
        detail: format!(
            "the service has no {what}, so no webhook step can be registered for {table}; check that the environment is a Dataverse environment"
        ),
    }
}

fn id_of(row: &Row, column: &str) -> Option<String> {
    row.get(column)
        .and_then(Value::as_str)
        .map(str::to_lowercase)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
