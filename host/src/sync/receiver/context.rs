//! The documented event payload both services post: a
//! `RemoteExecutionContext` serialized as JSON, the body of a Dataverse
//! webhook and of a finops data event.
//!
//! Only what the receivers read is modelled: the message (`Create`,
//! `Update`, `Delete`), the primary table and row id, and the `Target`
//! (and `PreImage`) of `InputParameters`, each an `Entity` (attributes as
//! a list of `{"key", "value"}` pairs) or an `EntityReference` (an `Id`,
//! for deletes). Everything else of the context is accepted and ignored.
//!
//! Pages: <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>
//! (the request body and its headers),
//! <https://learn.microsoft.com/dotnet/api/microsoft.xrm.sdk.remoteexecutioncontext>
//! (its members), and the data events of finance and operations apps,
//! <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/business-events/data-events>.
//!
//! A receiver treats an asynchronous context as a hint only: it names a
//! row, which the receiver reads again from the service. Nothing of its
//! values is written, so a forged or replayed event can cause a read, never
//! a write of its contents. A synchronous context (`Mode` 0, a live map's
//! step) is the exception: its row is not committed yet, so no read can see
//! it, and its PostImage is what is written (`receiver/live.rs`); like every
//! request it is accepted only with the shared secret.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A `RemoteExecutionContext`, as far as the receivers read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecutionContext {
    /// `Create`, `Update` or `Delete` (other messages are not data changes).
    pub message_name: String,
    /// The table's logical name (Dataverse) or the entity's name (finops).
    pub primary_entity_name: String,
    /// The row's id (Dataverse).
    #[serde(default)]
    pub primary_entity_id: Option<String>,
    #[serde(default)]
    input_parameters: Vec<Parameter>,
    /// 0 for a synchronous step (called inside the save's transaction), 1
    /// for an asynchronous one.
    #[serde(default)]
    pub mode: Option<i64>,
    /// Shared by the operations of one request (a `$batch` change set).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The step's PostImages, by alias.
    #[serde(default)]
    post_entity_images: Vec<Parameter>,
}

/// One `{"key", "value"}` pair of a parameter or attribute collection.
#[derive(Debug, Clone, Deserialize)]
struct Parameter {
    key: String,
    #[serde(default)]
    value: Value,
}

/// An `Entity` or `EntityReference` of a context's parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EntityImage {
    /// `LogicalName`.
    pub logical_name: Option<String>,
    /// `Id`, when the service sends one.
    pub id: Option<String>,
    /// `Attributes` (an `Entity`) and `KeyAttributes`, as plain values: a
    /// typed value (`OptionSetValue`, `Money`, …) by its `Value`, an
    /// `EntityReference` by its `Id`.
    pub attributes: Map<String, Value>,
}

/// What a context says happened to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Create,
    Update,
    Delete,
}

impl ExecutionContext {
    /// Reads a context from a request body; the error says what is missing.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|error| {
            format!(
                "the body is not a RemoteExecutionContext (MessageName, PrimaryEntityName, InputParameters): {error}"
            )
        })
    }

    /// The message, if it is a data change.
    pub fn message(&self) -> Option<Message> {
        match self.message_name.as_str() {
            "Create" => Some(Message::Create),
            "Update" => Some(Message::Update),
            "Delete" => Some(Message::Delete),
            _ => None,
        }
    }

    /// The `Target` parameter.
    pub fn target(&self) -> Option<EntityImage> {
        self.parameter("Target")
    }

    /// True for the context of a synchronous step: the save waits for the
    /// answer, and fails unless it is 2xx.
    pub fn synchronous(&self) -> bool {
        self.mode == Some(0)
    }

    /// The PostImage registered under `alias`.
    pub fn post_image(&self, alias: &str) -> Option<EntityImage> {
        self.post_entity_images
            .iter()
            .find(|p| p.key == alias)
            .and_then(|p| entity_image(&p.value))
    }

    /// The `PreImage` parameter (updates and deletes of finops data events).
    pub fn pre_image(&self) -> Option<EntityImage> {
        self.parameter("PreImage")
    }

    fn parameter(&self, key: &str) -> Option<EntityImage> {
        self.input_parameters
            .iter()
            .find(|p| p.key == key)
            .and_then(|p| entity_image(&p.value))
    }
}

/// An `Entity` or `EntityReference` value as an [`EntityImage`].
fn entity_image(value: &Value) -> Option<EntityImage> {
    let object = value.as_object()?;
    let mut image = EntityImage {
        logical_name: object
            .get("LogicalName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id: object
            .get("Id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        attributes: Map::new(),
    };
    for list in ["KeyAttributes", "Attributes"] {
        for pair in object
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(key), Some(value)) =
                (pair.get("key").and_then(Value::as_str), pair.get("value"))
            {
                image.attributes.insert(key.to_owned(), plain(value));
            }
        }
    }
    Some(image)
}

/// A typed attribute value as the plain value the Web API would return: an
/// `OptionSetValue` or `Money` by its `Value`, an `EntityReference` by its
/// `Id`; anything else as it is.
fn plain(value: &Value) -> Value {
    let Some(object) = value.as_object() else {
        return value.clone();
    };
    if object.contains_key("LogicalName")
        && let Some(id) = object.get("Id")
    {
        return id.clone();
    }
    match object.get("Value") {
        Some(inner) if object.contains_key("__type") => inner.clone(),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of the example on the webhooks page, cut to its parts.
    #[test]
    fn a_webhook_create_gives_its_target_and_message() -> Result<(), String> {
        let body = json!({
            "BusinessUnitId": "e4a0c2b4-2f2b-e711-8128-000d3a1cd03c",
            "CorrelationId": "b374239d-4233-41a9-8b17-a49a4c1a2a11",
            "Depth": 1,
            "InputParameters": [{
                "key": "Target",
                "value": {
                    "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
                    "Attributes": [
                        {"key": "firstname", "value": "James"},
                        {"key": "statecode", "value": {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 0}},
                        {"key": "parentcustomerid", "value": {"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": "a1b2", "LogicalName": "account", "Name": null}}
                    ],
                    "EntityState": null,
                    "FormattedValues": [],
                    "Id": "6f4b4b3b-ff41-e711-8128-000d3a1cd03c",
                    "KeyAttributes": [],
                    "LogicalName": "contact",
                    "RelatedEntities": [],
                    "RowVersion": null
                }
            }],
            "MessageName": "Create",
            "Mode": 1,
            "PrimaryEntityId": "6f4b4b3b-ff41-e711-8128-000d3a1cd03c",
            "PrimaryEntityName": "contact",
            "Stage": 40
        });
        let context = ExecutionContext::parse(body.to_string().as_bytes())?;
        assert_eq!(context.message(), Some(Message::Create));
        assert_eq!(context.primary_entity_name, "contact");
        let target = context.target().ok_or("no Target")?;
        assert_eq!(
            target.id.as_deref(),
            Some("6f4b4b3b-ff41-e711-8128-000d3a1cd03c")
        );
        assert_eq!(target.attributes["firstname"], "James");
        assert_eq!(target.attributes["statecode"], 0);
        assert_eq!(target.attributes["parentcustomerid"], "a1b2");
        assert!(context.pre_image().is_none());
        Ok(())
    }

    #[test]
    fn a_delete_target_is_a_reference_and_other_messages_are_not_changes() -> Result<(), String> {
        let body = json!({
            "MessageName": "Delete",
            "PrimaryEntityName": "account",
            "InputParameters": [{"key": "Target", "value": {
                "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
                "Id": "00000000-0000-0000-0000-000000000001",
                "KeyAttributes": [], "LogicalName": "account", "Name": null, "RowVersion": null
            }}]
        });
        let context = ExecutionContext::parse(body.to_string().as_bytes())?;
        assert_eq!(context.message(), Some(Message::Delete));
        let target = context.target().ok_or("no Target")?;
        assert_eq!(
            target.id.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        assert!(target.attributes.is_empty());

        let other = json!({"MessageName": "Assign", "PrimaryEntityName": "account"});
        let context = ExecutionContext::parse(other.to_string().as_bytes())?;
        assert_eq!(context.message(), None);
        assert!(context.target().is_none());
        Ok(())
    }

    #[test]
    fn a_body_that_is_not_a_context_says_what_it_lacks() {
        let Err(error) = ExecutionContext::parse(br#"{"EntityName": "x"}"#) else {
            panic!("a body without MessageName was read");
        };
        assert!(error.contains("RemoteExecutionContext"), "{error}");
        assert!(error.contains("MessageName"), "{error}");
    }
}
