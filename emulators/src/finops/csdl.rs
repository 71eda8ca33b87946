//! `GET /data/$metadata`: the service's CSDL document (OData 4.0 XML),
//! built from the emulator's [`Metadata`].
//!
//! One schema, `Microsoft.Dynamics.DataEntities`, as on the service: an
//! `EntityType` per data entity (its `Key` of `PropertyRef`s, then a
//! `Property` per field with its `Type`, `Nullable="false"` on key fields
//! and `MaxLength` on strings), an `EnumType` per enum the fields use, and
//! the `EntityContainer` with an `EntitySet` per entity. The emulator does
//! not keep navigation properties, actions or annotations, and knows the
//! members of `NoYes` only: other enum types are declared without members
//! (the emulator accepts any member name).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::error;
use dualwrite::schema::{FieldType, Metadata, TableDef};

/// The namespace of the data entities.
pub(crate) const NAMESPACE: &str = "Microsoft.Dynamics.DataEntities";

/// Answers `GET $metadata`.
pub(crate) fn handle(state: &SharedState, request: &ApiRequest) -> ApiResponse {
    if request.method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "$metadata is read-only: only GET is allowed",
        )
        .to_response();
    }
    match document(&state.metadata) {
        Ok(xml) => ApiResponse {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: None,
            raw: Some(("application/xml".to_string(), Bytes::from(xml))),
        },
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            format!("could not write $metadata: {e}"),
        )
        .to_response(),
    }
}

/// The CSDL document of `metadata`.
pub(crate) fn document(metadata: &Metadata) -> std::io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.write_event(Event::Start(BytesStart::new("edmx:Edmx").with_attributes(
        [
            ("Version", "4.0"),
            ("xmlns:edmx", "http://docs.oasis-open.org/odata/ns/edmx"),
        ],
    )))?;
    w.write_event(Event::Start(BytesStart::new("edmx:DataServices")))?;
    w.write_event(Event::Start(BytesStart::new("Schema").with_attributes([
        ("Namespace", NAMESPACE),
        ("xmlns", "http://docs.oasis-open.org/odata/ns/edm"),
    ])))?;
    for table in metadata.tables() {
        entity_type(&mut w, table)?;
    }
    let enums: BTreeSet<&str> = metadata
        .tables()
        .flat_map(|table| &table.fields)
        .filter(|field| field.field_type == FieldType::Enum)
        .map(|field| field.enum_type.as_deref().unwrap_or("NoYes"))
        .collect();
    for name in enums {
        enum_type(&mut w, name)?;
    }
    w.write_event(Event::Start(
        BytesStart::new("EntityContainer").with_attributes([("Name", "Resources")]),
    ))?;
    for table in metadata.tables() {
        let entity_type = format!("{NAMESPACE}.{}", table.entity_name());
        w.write_event(Event::Empty(BytesStart::new("EntitySet").with_attributes(
            [
                ("Name", table.name.as_str()),
                ("EntityType", entity_type.as_str()),
            ],
        )))?;
    }
    for end in [
        "EntityContainer",
        "Schema",
        "edmx:DataServices",
        "edmx:Edmx",
    ] {
        w.write_event(Event::End(BytesEnd::new(end)))?;
    }
    Ok(w.into_inner())
}

fn entity_type(w: &mut Writer<Vec<u8>>, table: &TableDef) -> std::io::Result<()> {
    w.write_event(Event::Start(
        BytesStart::new("EntityType").with_attributes([("Name", table.entity_name())]),
    ))?;
    w.write_event(Event::Start(BytesStart::new("Key")))?;
    for name in &table.primary_key {
        w.write_event(Event::Empty(
            BytesStart::new("PropertyRef").with_attributes([("Name", name.as_str())]),
        ))?;
    }
    w.write_event(Event::End(BytesEnd::new("Key")))?;
    for field in &table.fields {
        let edm_type = match field.field_type {
            FieldType::String | FieldType::Lookup => "Edm.String".to_string(),
            FieldType::Integer => "Edm.Int64".to_string(),
            FieldType::Decimal => "Edm.Decimal".to_string(),
            FieldType::Boolean => "Edm.Boolean".to_string(),
            FieldType::Guid => "Edm.Guid".to_string(),
            FieldType::Date => "Edm.Date".to_string(),
            FieldType::Datetime => "Edm.DateTimeOffset".to_string(),
            FieldType::Enum => format!(
                "{NAMESPACE}.{}",
                field.enum_type.as_deref().unwrap_or("NoYes")
            ),
        };
        let mut property = BytesStart::new("Property")
            .with_attributes([("Name", field.name.as_str()), ("Type", edm_type.as_str())]);
        if table.primary_key.contains(&field.name) {
            property.push_attribute(("Nullable", "false"));
        }
        if let Some(max) = field.max_length {
            property.push_attribute(("MaxLength", max.to_string().as_str()));
        }
        w.write_event(Event::Empty(property))?;
    }
    w.write_event(Event::End(BytesEnd::new("EntityType")))
}

fn enum_type(w: &mut Writer<Vec<u8>>, name: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(
        BytesStart::new("EnumType").with_attributes([("Name", name)]),
    ))?;
    if name == "NoYes" {
        for (member, value) in [("No", "0"), ("Yes", "1")] {
            w.write_event(Event::Empty(
                BytesStart::new("Member").with_attributes([("Name", member), ("Value", value)]),
            ))?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("EnumType")))
}
