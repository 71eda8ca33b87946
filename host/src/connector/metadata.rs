//! [`MetadataReader`]: a service's table definitions, read through a
//! connector transport (token, retries, timeout) and given as
//! [`TableDef`]s, the model the emulators and map validation share.
//!
//! - Dataverse: one `GET EntityDefinitions` ([`ENTITY_DEFINITIONS`]) with
//!   the attributes, alternate keys and many-to-one relationships expanded.
//!   A table is its `EntitySetName`; its primary key is
//!   `PrimaryIdAttribute`; a lookup's target is the entity set of the one
//!   entity its relationship references (none for a lookup that may point
//!   at several tables, such as a customer column).
//! - Finance and Operations: `GET $metadata`, the CSDL document, parsed by
//!   [`super::csdl`].
//! - Dataverse, one table: [`MetadataReader::privileges`], the privileges
//!   the table defines (`EntityDefinitions(LogicalName='…')` `Privileges`).
//!
//! Field types are read into the emulator's [`FieldType`]s: Dataverse
//! `String`/`Memo`/`EntityName` → string, `Integer`/`BigInt`/`Picklist`/
//! `State`/`Status` → integer, `Decimal`/`Money`/`Double` → decimal,
//! `Boolean`, `Uniqueidentifier` → guid, `DateTime` → datetime,
//! `Lookup`/`Customer`/`Owner` → lookup, anything else → string (validation
//! needs the name, not the type).
//!
//! A response that is not what the protocol prescribes is a
//! [`ConnectorError::Protocol`] naming the system and the URL.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use super::ClientAuth;
use super::error::{ConnectorError, SystemKind};
use super::transport::{Call, ConnectorOptions, Transport};
use crate::schema::{FieldDef, FieldType, KeyDef, TableDef};

/// The Dataverse request, below the service root.
pub const ENTITY_DEFINITIONS: &str = "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute,ChangeTrackingEnabled\
&$expand=Attributes($select=LogicalName,AttributeType),Keys($select=LogicalName,KeyAttributes),\
ManyToOneRelationships($select=ReferencingAttribute,ReferencedEntity)";

/// Reads one system's table definitions.
#[derive(Debug)]
pub struct MetadataReader {
    transport: Transport,
}

impl MetadataReader {
    /// A reader of the service at `service_url` (`…/api/data/v9.2` or
    /// `…/data`). Sends nothing until [`MetadataReader::tables`].
    pub fn new(
        system: SystemKind,
        service_url: &str,
        credentials: impl Into<ClientAuth>,
        options: ConnectorOptions,
    ) -> Self {
        Self {
            transport: Transport::new(system, service_url, credentials.into(), options),
        }
    }

    /// The URL the definitions are read from.
    pub fn url(&self) -> String {
        match self.transport.system {
            SystemKind::Dataverse => self.transport.url(ENTITY_DEFINITIONS),
            SystemKind::Finops => self.transport.url("$metadata"),
        }
    }

    /// Every table the service describes, by entity set name. Cancelled,
    /// it stops; nothing is written either way.
    pub async fn tables(&self) -> Result<Vec<TableDef>, ConnectorError> {
        let mut call = Call::new(Method::GET, self.url());
        if self.transport.system == SystemKind::Finops {
            // The CSDL document is XML; the transport asks JSON by default.
            call = call.header("Accept", "application/xml");
        }
        let reply = self.transport.send_ok(&call).await?;
        let parsed = match self.transport.system {
            SystemKind::Dataverse => parse_entity_definitions(&reply.body),
            SystemKind::Finops => super::csdl::parse(&reply.body),
        };
        parsed.map_err(|detail| ConnectorError::Protocol {
            system: self.transport.system,
            url: call.url.clone(),
            detail,
        })
    }
}

/// Reads an `EntityDefinitions` answer (see [`ENTITY_DEFINITIONS`]).
/// Entities without an entity set (not reachable by URL) are left out.
pub(crate) fn parse_entity_definitions(body: &[u8]) -> Result<Vec<TableDef>, String> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the EntityDefinitions answer is not JSON: {e}"))?;
    let entities = body
        .get("value")
        .and_then(Value::as_array)
        .ok_or("the EntityDefinitions answer has no `value` array")?;
    let mut sets = BTreeMap::new();
    for (index, entity) in entities.iter().enumerate() {
        let logical = text(entity, "LogicalName")
            .ok_or_else(|| format!("EntityDefinitions entry {index} has no LogicalName"))?;
        if let Some(set) = text(entity, "EntitySetName") {
            sets.insert(logical, set);
        }
    }
    let mut tables = Vec::new();
    for entity in entities {
        let logical = text(entity, "LogicalName").unwrap_or_default();
        let Some(set) = sets.get(logical) else {
            continue;
        };
        let within = |what: &str| format!("entity `{logical}`: {what}");
        let mut fields = Vec::new();
        for attribute in array(entity, "Attributes").ok_or_else(|| within("no Attributes"))? {
            let name = text(attribute, "LogicalName")
                .ok_or_else(|| within("an attribute has no LogicalName"))?;
            let kind = text(attribute, "AttributeType").unwrap_or_default();
            fields.push(FieldDef {
                name: name.to_string(),
                field_type: attribute_type(kind),
                max_length: None,
                enum_type: None,
                target: None,
            });
        }
        let mut targets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for relationship in array(entity, "ManyToOneRelationships").unwrap_or_default() {
            if let (Some(attribute), Some(referenced)) = (
                text(relationship, "ReferencingAttribute"),
                text(relationship, "ReferencedEntity"),
            ) {
                targets.entry(attribute).or_default().push(referenced);
            }
        }
        for field in &mut fields {
            if let Some([referenced]) = targets.get(field.name.as_str()).map(Vec::as_slice) {
                field.target = sets.get(referenced).map(|set| set.to_string());
            }
        }
        let mut alternate_keys = Vec::new();
        for key in array(entity, "Keys").unwrap_or_default() {
            let name =
                text(key, "LogicalName").ok_or_else(|| within("a key has no LogicalName"))?;
            let parts = array(key, "KeyAttributes")
                .ok_or_else(|| within(&format!("key `{name}` has no KeyAttributes")))?;
            alternate_keys.push(KeyDef {
                name: name.to_string(),
                fields: parts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            });
        }
        tables.push(TableDef {
            name: set.to_string(),
            entity: Some(logical.to_string()),
            primary_key: text(entity, "PrimaryIdAttribute")
                .map(|id| vec![id.to_string()])
                .unwrap_or_default(),
            company_field: None,
            fields,
            alternate_keys,
            // `Nullable<bool>` on the service: only `true` is enabled.
            change_tracking: entity.get("ChangeTrackingEnabled").and_then(Value::as_bool)
                == Some(true),
            public: true,
        });
    }
    Ok(tables)
}

fn text<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

fn array<'a>(value: &'a Value, name: &str) -> Option<&'a [Value]> {
    value.get(name).and_then(Value::as_array).map(Vec::as_slice)
}

/// A Dataverse `AttributeType` as a field type.
fn attribute_type(kind: &str) -> FieldType {
    match kind {
        "Integer" | "BigInt" | "Picklist" | "State" | "Status" => FieldType::Integer,
        "Decimal" | "Money" | "Double" => FieldType::Decimal,
        "Boolean" => FieldType::Boolean,
        "Uniqueidentifier" => FieldType::Guid,
        "DateTime" => FieldType::Datetime,
        "Lookup" | "Customer" | "Owner" => FieldType::Lookup,
        _ => FieldType::String,
    }
}

/// One privilege a Dataverse table defines (`SecurityPrivilegeMetadata`,
/// <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/securityprivilegemetadata>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePrivilege {
    /// `Name`, e.g. `prvReadAccount`.
    pub name: String,
    /// `PrivilegeType`: `Create`, `Read`, `Write`, `Delete`, `Append`,
    /// `AppendTo`, `Assign` or `Share`.
    pub kind: String,
}

impl MetadataReader {
    /// Dataverse: the privileges of the table with logical name `logical`
    /// (`EntityDefinitions(LogicalName='…')?$select=Privileges`,
    /// <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/entitymetadata>).
    pub async fn privileges(&self, logical: &str) -> Result<Vec<TablePrivilege>, ConnectorError> {
        let quoted = logical.replace('\'', "''");
        let encoded: String = form_urlencoded::byte_serialize(quoted.as_bytes()).collect();
        let url = self.transport.url(&format!(
            "EntityDefinitions(LogicalName='{encoded}')?$select=LogicalName,Privileges"
        ));
        let call = Call::new(Method::GET, url);
        let reply = self.transport.send_to(&call, logical, None).await?;
        let body = self.transport.json(&call, &reply)?;
        let protocol = |detail: String| ConnectorError::Protocol {
            system: self.transport.system,
            url: call.url.clone(),
            detail,
        };
        let privileges = body
            .get("Privileges")
            .and_then(Value::as_array)
            .ok_or_else(|| protocol(format!("entity `{logical}` has no Privileges array")))?;
        privileges
            .iter()
            .map(
                |privilege| match (text(privilege, "Name"), text(privilege, "PrivilegeType")) {
                    (Some(name), Some(kind)) => Ok(TablePrivilege {
                        name: name.to_string(),
                        kind: kind.to_string(),
                    }),
                    _ => Err(protocol(format!(
                        "entity `{logical}`: a privilege has no Name or PrivilegeType"
                    ))),
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r##"{
      "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute,Attributes(LogicalName,AttributeType))",
      "value": [
        {"MetadataId": "70816501-edb9-4740-a16c-6a5efbc05d84", "LogicalName": "account",
         "EntitySetName": "accounts", "PrimaryIdAttribute": "accountid", "ChangeTrackingEnabled": true,
         "Attributes": [
           {"@odata.type": "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata", "LogicalName": "accountid", "AttributeType": "Uniqueidentifier", "MetadataId": "f8cd5db9-cee8-4845-8cdd-cd4f504957e7"},
           {"@odata.type": "#Microsoft.Dynamics.CRM.MoneyAttributeMetadata", "LogicalName": "creditlimit", "AttributeType": "Money", "MetadataId": "4a2f4ac3-0e0b-4d3d-9c5b-1a8e5f0a3f11"},
           {"@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata", "LogicalName": "primarycontactid", "AttributeType": "Lookup", "MetadataId": "1c2d3e4f-0000-4000-8000-000000000001"},
           {"@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata", "LogicalName": "parentid", "AttributeType": "Customer", "MetadataId": "1c2d3e4f-0000-4000-8000-000000000002"}
         ],
         "Keys": [{"LogicalName": "accountnumber_key", "KeyAttributes": ["accountnumber"], "MetadataId": "1c2d3e4f-0000-4000-8000-000000000003"}],
         "ManyToOneRelationships": [
           {"ReferencingAttribute": "primarycontactid", "ReferencedEntity": "contact", "MetadataId": "1c2d3e4f-0000-4000-8000-000000000004"},
           {"ReferencingAttribute": "parentid", "ReferencedEntity": "account", "MetadataId": "1c2d3e4f-0000-4000-8000-000000000005"},
           {"ReferencingAttribute": "parentid", "ReferencedEntity": "contact", "MetadataId": "1c2d3e4f-0000-4000-8000-000000000006"}
         ]},
        {"MetadataId": "608861bc-50a4-4c5f-a02c-21fe1943e2cf", "LogicalName": "contact",
         "EntitySetName": "contacts", "PrimaryIdAttribute": "contactid",
         "Attributes": [{"LogicalName": "contactid", "AttributeType": "Uniqueidentifier"}]},
        {"MetadataId": "0b3c1d7e-5a45-4e8f-8f4c-3f0d1c2b3a49", "LogicalName": "internalthing",
         "EntitySetName": null, "PrimaryIdAttribute": "internalthingid", "Attributes": []}
      ]
    }"##;

    #[test]
    fn entity_definitions_become_tables() {
        let tables = parse_entity_definitions(ANSWER.as_bytes()).expect("parses");
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["accounts", "contacts"], "no entity set, no table");
        let accounts = &tables[0];
        assert_eq!(accounts.entity_name(), "account");
        assert_eq!(accounts.primary_key, ["accountid"]);
        let field = |name: &str| accounts.field(name).expect(name);
        assert_eq!(field("accountid").field_type, FieldType::Guid);
        assert_eq!(field("creditlimit").field_type, FieldType::Decimal);
        assert_eq!(field("primarycontactid").field_type, FieldType::Lookup);
        assert_eq!(
            field("primarycontactid").target.as_deref(),
            Some("contacts")
        );
        assert_eq!(field("parentid").target, None, "a lookup to two tables");
        assert_eq!(accounts.alternate_keys[0].fields, ["accountnumber"]);
        assert!(accounts.change_tracking);
        assert!(!tables[1].change_tracking, "not said: not enabled");
    }

    #[test]
    fn malformed_answers_say_what_is_wrong() {
        let check = |body: &str, expected: &str| {
            let error = parse_entity_definitions(body.as_bytes()).expect_err(body);
            assert!(error.contains(expected), "{error}");
        };
        check("<html>", "not JSON");
        check(r#"{"values": []}"#, "no `value` array");
        check(
            r#"{"value": [{"EntitySetName": "x"}]}"#,
            "entry 0 has no LogicalName",
        );
        check(
            r#"{"value": [{"LogicalName": "x", "EntitySetName": "xs"}]}"#,
            "entity `x`: no Attributes",
        );
        check(
            r#"{"value": [{"LogicalName": "x", "EntitySetName": "xs", "Attributes": [{}]}]}"#,
            "entity `x`: an attribute has no LogicalName",
        );
    }
}
