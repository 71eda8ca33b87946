//! Reads a CSDL document (OData 4.0 `$metadata`, XML) into [`TableDef`]s:
//! one per `EntitySet` of the `EntityContainer`, with the key and
//! properties of its `EntityType` (base types included).
//!
//! Elements are matched by local name, so any prefix works; navigation
//! properties, actions, functions, complex types and annotations are
//! skipped. Property types: `Edm.String` → string, `Edm.Int16`/`Int32`/
//! `Int64`/`Byte`/`SByte` → integer, `Edm.Decimal`/`Double`/`Single` →
//! decimal, `Edm.Boolean`, `Edm.Guid`, `Edm.Date`, `Edm.DateTimeOffset` →
//! datetime, a declared `EnumType` → enum (its name kept), anything else →
//! string. A key that includes `dataAreaId` makes it the company field.

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::map::COMPANY_FIELD;
use crate::schema::{FieldDef, FieldType, TableDef};

/// How deep base types may chain before the document counts as malformed.
const MAX_BASE_DEPTH: usize = 32;

/// One `EntityType` as declared.
#[derive(Debug, Default)]
struct EntityType {
    name: String,
    base: Option<String>,
    key: Vec<String>,
    /// Name, type as written, `MaxLength`.
    properties: Vec<(String, String, Option<usize>)>,
}

/// What the walk collected.
#[derive(Debug, Default)]
struct Document {
    /// Qualified name (namespace or alias) → index in `types`.
    names: BTreeMap<String, usize>,
    types: Vec<EntityType>,
    /// Qualified enum type names (namespace and alias forms).
    enums: BTreeSet<String>,
    /// Entity set name → entity type as written.
    sets: Vec<(String, String)>,
    containers: usize,
}

/// Parses a CSDL document; the error says what is wrong and where.
pub(crate) fn parse(xml: &[u8]) -> Result<Vec<TableDef>, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("$metadata is not UTF-8: {e}"))?;
    let document = walk(text)?;
    if document.containers == 0 {
        return Err("$metadata has no EntityContainer: it is not a CSDL document".into());
    }
    document
        .sets
        .iter()
        .map(|(set, type_name)| document.table(set, type_name))
        .collect()
}

fn walk(text: &str) -> Result<Document, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut document = Document::default();
    // Namespace and alias of each open Schema; the open element names.
    let mut schemas: Vec<(String, Option<String>)> = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut current: Option<EntityType> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "$metadata is not well-formed XML near byte {}: {e}",
                reader.error_position()
            )
        })?;
        let (element, empty) = match &event {
            Event::Start(element) => (element, false),
            Event::Empty(element) => (element, true),
            Event::End(_) => {
                let name = open.pop().unwrap_or_default();
                match name.as_str() {
                    "Schema" => {
                        schemas.pop();
                    }
                    "EntityType" => {
                        if let Some(entity) = current.take() {
                            document.add_type(entity, schemas.last());
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
        let parent = open.last().map(String::as_str);
        match local.as_str() {
            "Schema" => schemas.push((
                required(element, "Namespace", "Schema")?,
                attribute(element, "Alias")?,
            )),
            "EntityType" => {
                let entity = EntityType {
                    name: required(element, "Name", "EntityType")?,
                    base: attribute(element, "BaseType")?,
                    ..EntityType::default()
                };
                if empty {
                    document.add_type(entity, schemas.last());
                } else {
                    current = Some(entity);
                }
            }
            "PropertyRef" if parent == Some("Key") => {
                if let Some(entity) = &mut current {
                    entity.key.push(required(element, "Name", "PropertyRef")?);
                }
            }
            "Property" if parent == Some("EntityType") => {
                if let Some(entity) = &mut current {
                    let name = required(element, "Name", "Property")?;
                    let kind = required(element, "Type", &format!("Property `{name}`"))?;
                    let max_length = attribute(element, "MaxLength")?.and_then(|m| m.parse().ok());
                    entity.properties.push((name, kind, max_length));
                }
            }
            "EnumType" => {
                let name = required(element, "Name", "EnumType")?;
                for prefix in prefixes(schemas.last()) {
                    document.enums.insert(format!("{prefix}.{name}"));
                }
            }
            "EntityContainer" => document.containers += 1,
            "EntitySet" if parent == Some("EntityContainer") => {
                let name = required(element, "Name", "EntitySet")?;
                let kind = required(element, "EntityType", &format!("EntitySet `{name}`"))?;
                document.sets.push((name, kind));
            }
            _ => {}
        }
        if !empty {
            open.push(local);
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(format!("$metadata ends inside <{unclosed}>"));
    }
    Ok(document)
}

/// The namespace and alias of a schema, the prefixes of its names.
fn prefixes(schema: Option<&(String, Option<String>)>) -> Vec<String> {
    schema
        .map(|(namespace, alias)| std::iter::once(namespace).chain(alias).cloned().collect())
        .unwrap_or_default()
}

impl Document {
    fn add_type(&mut self, entity: EntityType, schema: Option<&(String, Option<String>)>) {
        let index = self.types.len();
        for prefix in prefixes(schema) {
            self.names
                .insert(format!("{prefix}.{}", entity.name), index);
        }
        self.types.push(entity);
    }

    /// The table of entity set `set`, of type `type_name`.
    fn table(&self, set: &str, type_name: &str) -> Result<TableDef, String> {
        let mut chain = Vec::new();
        let mut next = Some(type_name);
        while let Some(name) = next {
            let index = *self.names.get(name).ok_or_else(|| {
                format!("entity set `{set}`: the entity type `{name}` is not declared")
            })?;
            if chain.len() >= MAX_BASE_DEPTH || chain.contains(&index) {
                return Err(format!(
                    "entity set `{set}`: the base types of `{type_name}` form a cycle or chain too deep"
                ));
            }
            chain.push(index);
            next = self.types[index].base.as_deref();
        }
        // The base type's key and properties first, as the service lists them.
        let mut key = Vec::new();
        let mut fields = Vec::new();
        for &index in chain.iter().rev() {
            let entity = &self.types[index];
            if key.is_empty() {
                key.clone_from(&entity.key);
            }
            for (name, kind, max_length) in &entity.properties {
                fields.push(FieldDef {
                    name: name.clone(),
                    field_type: self.field_type(kind),
                    max_length: *max_length,
                    enum_type: self
                        .enums
                        .contains(kind)
                        .then(|| kind.rsplit('.').next().unwrap_or(kind).to_string()),
                    target: None,
                });
            }
        }
        if key.is_empty() {
            return Err(format!(
                "entity set `{set}`: the entity type `{type_name}` has no Key"
            ));
        }
        let company_field = key
            .iter()
            .any(|name| name == COMPANY_FIELD)
            .then(|| COMPANY_FIELD.to_string());
        Ok(TableDef {
            name: set.to_string(),
            entity: Some(self.types[chain[0]].name.clone()),
            primary_key: key,
            company_field,
            fields,
            alternate_keys: Vec::new(),
            change_tracking: true,
            // Only public data entities are in the container.
            public: true,
        })
    }

    fn field_type(&self, kind: &str) -> FieldType {
        match kind {
            "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" | "Edm.SByte" => {
                FieldType::Integer
            }
            "Edm.Decimal" | "Edm.Double" | "Edm.Single" => FieldType::Decimal,
            "Edm.Boolean" => FieldType::Boolean,
            "Edm.Guid" => FieldType::Guid,
            "Edm.Date" => FieldType::Date,
            "Edm.DateTimeOffset" => FieldType::Datetime,
            other if self.enums.contains(other) => FieldType::Enum,
            _ => FieldType::String,
        }
    }
}

/// An attribute's value, normalised and unescaped.
fn attribute(element: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute =
            attribute.map_err(|e| format!("$metadata has a malformed attribute: {e}"))?;
        if attribute.key.local_name().as_ref() == name.as_bytes() {
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("$metadata: attribute `{name}` is malformed: {e}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

fn required(element: &BytesStart<'_>, name: &str, what: &str) -> Result<String, String> {
    attribute(element, name)?.ok_or_else(|| format!("$metadata: {what} has no `{name}` attribute"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a finops `$metadata` document, trimmed.
    const CSDL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Microsoft.Dynamics.DataEntities" Alias="mde" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="CustomerV3">
        <Key><PropertyRef Name="dataAreaId"/><PropertyRef Name="CustomerAccount"/></Key>
        <Property Name="dataAreaId" Type="Edm.String" Nullable="false" MaxLength="4"/>
        <Property Name="CustomerAccount" Type="Edm.String" Nullable="false" MaxLength="20">
          <Annotation Term="Org.OData.Core.V1.Description" String="Customer &amp; account"/>
        </Property>
        <Property Name="CreditLimit" Type="Edm.Decimal" Precision="32" Scale="6"/>
        <Property Name="IsOneTimeCustomer" Type="Microsoft.Dynamics.DataEntities.NoYes"/>
        <Property Name="Addresses" Type="Collection(mde.Address)"/>
        <NavigationProperty Name="Group" Type="Microsoft.Dynamics.DataEntities.CustomerGroup"/>
      </EntityType>
      <EntityType Name="Base" Abstract="true">
        <Key><PropertyRef Name="Id"/></Key>
        <Property Name="Id" Type="Edm.Int64"/>
      </EntityType>
      <EntityType Name="Derived" BaseType="mde.Base">
        <Property Name="Changed" Type="Edm.DateTimeOffset"/>
      </EntityType>
      <ComplexType Name="Address"><Property Name="City" Type="Edm.String"/></ComplexType>
      <EnumType Name="NoYes"><Member Name="No" Value="0"/><Member Name="Yes" Value="1"/></EnumType>
      <EntityContainer Name="Resources">
        <EntitySet Name="CustomersV3" EntityType="Microsoft.Dynamics.DataEntities.CustomerV3"/>
        <EntitySet Name="Deriveds" EntityType="mde.Derived"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

    #[test]
    fn entity_sets_become_tables() {
        let tables = parse(CSDL.as_bytes()).expect("parses");
        assert_eq!(tables.len(), 2);
        let customers = &tables[0];
        assert_eq!(customers.name, "CustomersV3");
        assert_eq!(customers.entity_name(), "CustomerV3");
        assert_eq!(customers.primary_key, ["dataAreaId", "CustomerAccount"]);
        assert_eq!(customers.company_field.as_deref(), Some("dataAreaId"));
        let names: Vec<&str> = customers.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dataAreaId",
                "CustomerAccount",
                "CreditLimit",
                "IsOneTimeCustomer",
                "Addresses"
            ],
            "no navigation or complex type properties"
        );
        let field = |name: &str| customers.field(name).expect(name);
        assert_eq!(field("CustomerAccount").max_length, Some(20));
        assert_eq!(field("CreditLimit").field_type, FieldType::Decimal);
        assert_eq!(field("IsOneTimeCustomer").field_type, FieldType::Enum);
        assert_eq!(
            field("IsOneTimeCustomer").enum_type.as_deref(),
            Some("NoYes")
        );
        let derived = &tables[1];
        assert_eq!(
            derived.primary_key,
            ["Id"],
            "the key comes from the base type"
        );
        assert_eq!(derived.company_field, None);
        assert_eq!(
            derived.field("Changed").map(|f| f.field_type),
            Some(FieldType::Datetime)
        );
        assert_eq!(
            derived.field("Id").map(|f| f.field_type),
            Some(FieldType::Integer)
        );
    }

    #[test]
    fn malformed_documents_say_what_is_wrong() {
        let check = |xml: &str, expected: &str| {
            let error = parse(xml.as_bytes()).expect_err(xml);
            assert!(error.contains(expected), "{error}");
        };
        check("{\"value\": []}", "no EntityContainer");
        check("<a><b></a>", "not well-formed");
        check(
            "<Edmx><Schema Namespace=\"n\"><EntityContainer>",
            "ends inside",
        );
        check(
            "<Schema Namespace=\"n\"><EntityContainer><EntitySet Name=\"X\" EntityType=\"n.T\"/></EntityContainer></Schema>",
            "`n.T` is not declared",
        );
        check(
            "<Schema Namespace=\"n\"><EntityType Name=\"T\" BaseType=\"n.T\"/><EntityContainer><EntitySet Name=\"X\" EntityType=\"n.T\"/></EntityContainer></Schema>",
            "cycle",
        );
        check(
            "<Schema Namespace=\"n\"><EntityType Name=\"T\"><Property Name=\"A\" Type=\"Edm.String\"/></EntityType><EntityContainer><EntitySet Name=\"X\" EntityType=\"n.T\"/></EntityContainer></Schema>",
            "has no Key",
        );
        check(
            "<Schema><EntityContainer/></Schema>",
            "Schema has no `Namespace`",
        );
    }
}
