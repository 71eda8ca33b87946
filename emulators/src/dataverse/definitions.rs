//! `EntityDefinitions`: the table definitions of the Web API, read-only,
//! built from the emulator's [`Metadata`](crate::Metadata).
//!
//! - `GET EntityDefinitions` with `$select`, `$filter` and `$expand` of
//!   `Attributes`, `Keys` and `ManyToOneRelationships` (each with its own
//!   `$select` and `$filter`), answered as `{"@odata.context", "value": […]}`.
//! - `GET EntityDefinitions(LogicalName='account')` or
//!   `EntityDefinitions(<MetadataId>)`: one definition.
//!
//! A subset of the service's shape: an entity has `MetadataId`,
//! `LogicalName`, `SchemaName` (the logical name: the emulator keeps no
//! other spelling), `EntitySetName`, `PrimaryIdAttribute`,
//! `ChangeTrackingEnabled` (the table's `change_tracking`) and
//! `Privileges` (a `SecurityPrivilegeMetadata` per privilege type, named
//! `prv{Type}{SchemaName}`); an attribute has
//! `MetadataId`, `LogicalName`, `AttributeType` (`String`, `Integer`,
//! `Decimal`, `Boolean`, `Uniqueidentifier`, `DateTime`, `Picklist`,
//! `Lookup`, `Owner`, `BigInt`), `AttributeTypeName`, `EntityLogicalName`,
//! `IsPrimaryId` and its `@odata.type`; a key has `LogicalName` and
//! `KeyAttributes`; a relationship names the referenced and referencing
//! entity and attribute. `MetadataId` is always returned, as on the
//! service, and is stable: a name-based UUID of the table or column.
//! Every table also lists the system columns rows carry (`versionnumber`,
//! `createdon`, `modifiedon`).

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::super::rows::{KeySegment, parse_segment};
use super::super::security::{self, Access};
use super::{BAD_REQUEST, NOT_FOUND, bad_request};
use dualwrite::odata::Filter;
use dualwrite::schema::{FieldType, TableDef};

/// The entity set of table definitions.
const SET: &str = "EntityDefinitions";

/// The properties of each type the emulator serves.
const ENTITY: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "PrimaryIdAttribute",
    "ChangeTrackingEnabled",
    "Privileges",
];
const ATTRIBUTE: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "AttributeType",
    "AttributeTypeName",
    "EntityLogicalName",
    "IsPrimaryId",
];
const KEY: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "KeyAttributes",
    "EntityLogicalName",
];
const RELATIONSHIP: &[&str] = &[
    "MetadataId",
    "SchemaName",
    "ReferencedEntity",
    "ReferencedAttribute",
    "ReferencingEntity",
    "ReferencingAttribute",
];

/// True when `path` (below the service root) is a table definitions path.
pub(crate) fn handles(path: &str) -> bool {
    path == SET || path.starts_with("EntityDefinitions(") || path.starts_with("EntityDefinitions/")
}

/// Answers a table definitions request.
pub(crate) fn handle(state: &SharedState, request: &ApiRequest) -> ApiResponse {
    answer(state, request).unwrap_or_else(|error| error.to_response())
}

fn answer(state: &SharedState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    if request.method != Method::GET {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            BAD_REQUEST,
            "the emulator serves table definitions read-only: only GET is allowed",
        ));
    }
    let (segment, rest) = request.path.split_once('/').unwrap_or((&request.path, ""));
    if !rest.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            BAD_REQUEST,
            format!(
                "Resource not found for the segment '{rest}': the emulator serves {SET} and {SET}(LogicalName='…') only"
            ),
        ));
    }
    let options = Options::parse(&request.query)?;
    let (_, key) = parse_segment(segment, BAD_REQUEST)?;
    let context = format!(
        "{}/api/data/v9.2/$metadata#{SET}{}",
        state.base_url,
        options.context()
    );
    match key {
        None => {
            let value: Vec<Value> = state
                .metadata
                .tables()
                .map(|table| (table, entity(table)))
                .filter(|(_, row)| options.filter.as_ref().is_none_or(|f| f.matches(row)))
                .map(|(table, row)| Value::Object(options.shape(state, table, row)))
                .collect();
            Ok(ApiResponse::json(
                StatusCode::OK,
                json!({ "@odata.context": context, "value": value }),
            ))
        }
        Some(key) => {
            let table = find(state, &key)?;
            let mut body = Map::new();
            body.insert("@odata.context".into(), json!(format!("{context}/$entity")));
            body.extend(options.shape(state, table, entity(table)));
            Ok(ApiResponse::json(StatusCode::OK, Value::Object(body)))
        }
    }
}

/// The table a key segment names: `LogicalName='…'` or a `MetadataId`.
fn find<'a>(state: &'a SharedState, key: &KeySegment) -> Result<&'a TableDef, ApiError> {
    let (by_id, wanted) = match key {
        KeySegment::Single(Value::String(id)) => (true, id.as_str()),
        KeySegment::Named(parts) => match parts.as_slice() {
            [(name, Value::String(value))] if name == "LogicalName" => (false, value.as_str()),
            _ => {
                return Err(bad_request(format!(
                    "{SET} are addressed by LogicalName='…' or by MetadataId"
                )));
            }
        },
        KeySegment::Single(other) => {
            return Err(bad_request(format!(
                "{other} is not a MetadataId: address {SET} by LogicalName='…' or by MetadataId"
            )));
        }
    };
    state
        .metadata
        .tables()
        .find(|table| {
            if by_id {
                metadata_id("entity", table.entity_name(), "").to_string() == wanted
            } else {
                table.entity_name() == wanted
            }
        })
        .ok_or_else(|| {
            let by = if by_id { "MetadataId" } else { "LogicalName" };
            ApiError::new(
                StatusCode::NOT_FOUND,
                NOT_FOUND,
                format!("Could not find an entity with {by} '{wanted}'."),
            )
        })
}

/// A stable id for a definition: a name-based UUID, so ids survive restarts.
fn metadata_id(kind: &str, entity: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dualwrite-emulator:{kind}:{entity}:{name}").as_bytes(),
    )
}

/// Every property of a table's definition, navigation properties aside.
fn entity(table: &TableDef) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "MetadataId".into(),
        json!(metadata_id("entity", table.entity_name(), "")),
    );
    out.insert("LogicalName".into(), json!(table.entity_name()));
    out.insert("EntitySetName".into(), json!(table.name));
    out.insert(
        "PrimaryIdAttribute".into(),
        json!(table.primary_key.first().cloned().unwrap_or_default()),
    );
    out.insert("SchemaName".into(), json!(table.entity_name()));
    out.insert("ChangeTrackingEnabled".into(), json!(table.change_tracking));
    out.insert("Privileges".into(), Value::Array(privileges(table)));
    out
}

/// The table's `SecurityPrivilegeMetadata`, one per privilege type
/// (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/securityprivilegemetadata>).
fn privileges(table: &TableDef) -> Vec<Value> {
    Access::ALL
        .iter()
        .map(|access| {
            let name = security::privilege_name(table, *access);
            json!({
                "CanBeBasic": true,
                "CanBeDeep": true,
                "CanBeGlobal": true,
                "CanBeLocal": true,
                "CanBeEntityReference": false,
                "CanBeParentEntityReference": false,
                "Name": name,
                "PrivilegeId": security::privilege_id(&name),
                "PrivilegeType": access.privilege_type(),
            })
        })
        .collect()
}

/// `AttributeType`, `AttributeTypeName` and the metadata class of a type.
fn attribute_type(field_type: FieldType) -> (&'static str, &'static str, &'static str) {
    match field_type {
        FieldType::String => ("String", "StringType", "StringAttributeMetadata"),
        FieldType::Integer => ("Integer", "IntegerType", "IntegerAttributeMetadata"),
        FieldType::Decimal => ("Decimal", "DecimalType", "DecimalAttributeMetadata"),
        FieldType::Boolean => ("Boolean", "BooleanType", "BooleanAttributeMetadata"),
        FieldType::Guid => (
            "Uniqueidentifier",
            "UniqueidentifierType",
            "UniqueIdentifierAttributeMetadata",
        ),
        FieldType::Date | FieldType::Datetime => {
            ("DateTime", "DateTimeType", "DateTimeAttributeMetadata")
        }
        FieldType::Enum => ("Picklist", "PicklistType", "PicklistAttributeMetadata"),
        FieldType::Lookup => ("Lookup", "LookupType", "LookupAttributeMetadata"),
    }
}

/// The system columns every row carries, with their types.
const SYSTEM_COLUMNS: &[(&str, (&str, &str, &str))] = &[
    (
        "versionnumber",
        ("BigInt", "BigIntType", "BigIntAttributeMetadata"),
    ),
    (
        "createdon",
        ("DateTime", "DateTimeType", "DateTimeAttributeMetadata"),
    ),
    (
        "modifiedon",
        ("DateTime", "DateTimeType", "DateTimeAttributeMetadata"),
    ),
];

fn attributes(table: &TableDef) -> Vec<Map<String, Value>> {
    let declared = table.fields.iter().map(|field| {
        let types = if super::owner::targets(table, &field.name).is_some() {
            // The Owner column: a lookup to a user or a team.
            ("Owner", "OwnerType", "LookupAttributeMetadata")
        } else {
            attribute_type(field.field_type)
        };
        (field.name.as_str(), types)
    });
    let system = SYSTEM_COLUMNS
        .iter()
        .filter(|(name, _)| table.field(name).is_none())
        .map(|(name, types)| (*name, *types));
    declared
        .chain(system)
        .map(|(name, (kind, kind_name, class))| {
            let mut out = Map::new();
            out.insert(
                "@odata.type".into(),
                json!(format!("#Microsoft.Dynamics.CRM.{class}")),
            );
            out.insert(
                "MetadataId".into(),
                json!(metadata_id("attribute", table.entity_name(), name)),
            );
            out.insert("LogicalName".into(), json!(name));
            out.insert("AttributeType".into(), json!(kind));
            out.insert("AttributeTypeName".into(), json!({ "Value": kind_name }));
            out.insert("EntityLogicalName".into(), json!(table.entity_name()));
            out.insert(
                "IsPrimaryId".into(),
                json!(table.primary_key.first().is_some_and(|pk| pk == name)),
            );
            out
        })
        .collect()
}

fn keys(table: &TableDef) -> Vec<Map<String, Value>> {
    table
        .alternate_keys
        .iter()
        .map(|key| {
            let mut out = Map::new();
            out.insert(
                "MetadataId".into(),
                json!(metadata_id("key", table.entity_name(), &key.name)),
            );
            out.insert("LogicalName".into(), json!(key.name));
            out.insert("KeyAttributes".into(), json!(key.fields));
            out.insert("EntityLogicalName".into(), json!(table.entity_name()));
            out
        })
        .collect()
}

/// One relationship per lookup with a target: this table references the
/// target's primary id.
fn many_to_one(state: &SharedState, table: &TableDef) -> Vec<Map<String, Value>> {
    table
        .fields
        .iter()
        .filter(|field| field.field_type == FieldType::Lookup)
        .filter_map(|field| {
            let target = state.metadata.table(field.target.as_deref()?)?;
            let mut out = Map::new();
            out.insert(
                "MetadataId".into(),
                json!(metadata_id(
                    "relationship",
                    table.entity_name(),
                    &field.name
                )),
            );
            out.insert(
                "SchemaName".into(),
                json!(format!(
                    "{}_{}_{}",
                    target.entity_name(),
                    table.entity_name(),
                    field.name
                )),
            );
            out.insert("ReferencedEntity".into(), json!(target.entity_name()));
            out.insert(
                "ReferencedAttribute".into(),
                json!(target.primary_key.first().cloned().unwrap_or_default()),
            );
            out.insert("ReferencingEntity".into(), json!(table.entity_name()));
            out.insert("ReferencingAttribute".into(), json!(field.name));
            Some(out)
        })
        .collect()
}

/// `$select`, `$filter` and the options of one expanded navigation property.
#[derive(Debug, Default)]
struct Shape {
    select: Option<Vec<String>>,
    filter: Option<Filter>,
}

impl Shape {
    fn apply(&self, rows: Vec<Map<String, Value>>) -> Vec<Value> {
        rows.into_iter()
            .filter(|row| self.filter.as_ref().is_none_or(|f| f.matches(row)))
            .map(|row| Value::Object(select(row, self.select.as_deref())))
            .collect()
    }
}

/// The query options of a definitions request.
#[derive(Debug, Default)]
struct Options {
    select: Option<Vec<String>>,
    filter: Option<Filter>,
    attributes: Option<Shape>,
    keys: Option<Shape>,
    relationships: Option<Shape>,
}

impl Options {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut out = Options::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "$select" => out.select = Some(select_list(&value, ENTITY, "EntityMetadata")?),
                "$filter" => out.filter = Some(filter(&value)?),
                "$expand" => {
                    for item in split_outside_parentheses(&value, ',') {
                        let item = item.trim();
                        let (property, nested) = match item.split_once('(') {
                            Some((property, rest)) => {
                                let nested = rest.strip_suffix(')').ok_or_else(|| {
                                    bad_request(format!(
                                        "Syntax error in $expand: '{item}' is not closed with ')'"
                                    ))
                                })?;
                                (property.trim(), nested)
                            }
                            None => (item, ""),
                        };
                        let (slot, properties, type_name) = match property {
                            "Attributes" => (&mut out.attributes, ATTRIBUTE, "AttributeMetadata"),
                            "Keys" => (&mut out.keys, KEY, "EntityKeyMetadata"),
                            "ManyToOneRelationships" => (
                                &mut out.relationships,
                                RELATIONSHIP,
                                "OneToManyRelationshipMetadata",
                            ),
                            other => return Err(unknown(other, "EntityMetadata")),
                        };
                        *slot = Some(shape(nested, properties, type_name)?);
                    }
                }
                "$top" | "$skip" | "$orderby" | "$count" | "$apply" | "$search" => {
                    return Err(bad_request(format!(
                        "The query option {name} is not supported on {SET}."
                    )));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The `(…)` part of `@odata.context`.
    fn context(&self) -> String {
        let mut parts: Vec<String> = self.select.clone().unwrap_or_default();
        for (name, shape) in [
            ("Attributes", &self.attributes),
            ("Keys", &self.keys),
            ("ManyToOneRelationships", &self.relationships),
        ] {
            if let Some(shape) = shape {
                let inner = shape
                    .select
                    .as_ref()
                    .map(|s| s.join(","))
                    .unwrap_or_default();
                parts.push(format!("{name}({inner})"));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("({})", parts.join(","))
        }
    }

    /// A definition with `$select` applied and the expansions added.
    fn shape(
        &self,
        state: &SharedState,
        table: &TableDef,
        row: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut out = select(row, self.select.as_deref());
        if let Some(shape) = &self.attributes {
            out.insert(
                "Attributes".into(),
                Value::Array(shape.apply(attributes(table))),
            );
        }
        if let Some(shape) = &self.keys {
            out.insert("Keys".into(), Value::Array(shape.apply(keys(table))));
        }
        if let Some(shape) = &self.relationships {
            out.insert(
                "ManyToOneRelationships".into(),
                Value::Array(shape.apply(many_to_one(state, table))),
            );
        }
        out
    }
}

/// Keeps the selected properties, `MetadataId` and annotations.
fn select(row: Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    let Some(select) = select else { return row };
    row.into_iter()
        .filter(|(name, _)| {
            name.starts_with('@') || name == "MetadataId" || select.iter().any(|s| s == name)
        })
        .collect()
}

/// The nested options of one `$expand` item: `$select=…;$filter=…`.
fn shape(nested: &str, properties: &[&str], type_name: &str) -> Result<Shape, ApiError> {
    let mut out = Shape::default();
    for option in split_outside_parentheses(nested, ';') {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        match option.split_once('=') {
            Some(("$select", value)) => {
                out.select = Some(select_list(value, properties, type_name)?);
            }
            Some(("$filter", value)) => out.filter = Some(filter(value)?),
            _ => {
                return Err(bad_request(format!(
                    "The expand option '{option}' is not supported by the emulator: use $select or $filter."
                )));
            }
        }
    }
    Ok(out)
}

fn select_list(value: &str, properties: &[&str], type_name: &str) -> Result<Vec<String>, ApiError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            if properties.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(unknown(name, type_name))
            }
        })
        .collect()
}

fn unknown(name: &str, type_name: &str) -> ApiError {
    bad_request(format!(
        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'."
    ))
}

fn filter(text: &str) -> Result<Filter, ApiError> {
    Filter::parse(text).map_err(|e| {
        bad_request(format!(
            "Syntax error at position {} in '{text}': {}",
            e.position, e.message
        ))
    })
}

/// Splits `text` at `separator` where it is not inside parentheses or quotes.
pub(super) fn split_outside_parentheses(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0);
    for (at, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            c if c == separator && depth == 0 && !quoted => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_items_split_outside_parentheses() {
        assert_eq!(
            split_outside_parentheses("Attributes($select=A,B),Keys", ','),
            vec!["Attributes($select=A,B)", "Keys"]
        );
        assert_eq!(
            split_outside_parentheses("$select=A;$filter=A eq 'x;y'", ';'),
            vec!["$select=A", "$filter=A eq 'x;y'"]
        );
    }

    #[test]
    fn unknown_properties_and_options_are_refused() {
        let error = |query: &str| {
            Options::parse(query)
                .err()
                .map(|e| e.message)
                .unwrap_or_default()
        };
        assert!(error("$select=DisplayName").contains("'DisplayName'"));
        assert!(error("$expand=Attributes($select=Targets)").contains("AttributeMetadata"));
        assert!(error("$expand=OneToManyRelationships").contains("OneToManyRelationships"));
        assert!(error("$expand=Attributes($top=1)").contains("$top=1"));
        assert!(error("$expand=Attributes($select=LogicalName").contains("not closed"));
        assert!(error("$top=1").contains("$top"));
        assert_eq!(
            error("$select=LogicalName&$expand=Attributes($select=LogicalName,AttributeType)"),
            ""
        );
    }
}
