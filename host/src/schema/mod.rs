//! The table schema: entity sets, fields, primary and alternate keys, as
//! [`TableDef`]s gathered in a [`Metadata`].
//!
//! Validation (`map validate`), the connectors' metadata readers and the
//! emulators share this model. The standard tables of each service
//! ([`DATAVERSE_TABLES`], [`FINOPS_TABLES`]) and any custom tables come in
//! the same TOML format (see `docs/emulator-metadata.md`):
//!
//! ```toml
//! [[tables]]
//! name = "new_projects"            # entity set name, as in the URL
//! entity = "new_project"           # Dataverse logical name (defaults to name)
//! primary_key = ["new_projectid"]  # Dataverse: one guid field; finops: compound
//! company_field = "dataAreaId"     # finops only: the company column
//! fields = [
//!   { name = "new_code", type = "string", max_length = 20 },
//!   { name = "new_budget", type = "decimal" },
//!   { name = "new_accountid", type = "lookup", target = "accounts" },
//! ]
//! alternate_keys = [{ name = "new_code_key", fields = ["new_code"] }]
//! change_tracking = true           # Dataverse: ChangeTrackingEnabled (default true)
//! public = true                    # finops: IsPublic, served by OData (default true)
//! ```
//!
//! Dataverse one-to-many relationships (the collection-valued navigation
//! properties, [`RelationshipDef`]) come as `[[relationships]]` with
//! `name`, `referenced`, `referencing` and `lookup`.
//!
//! Field types: `string`, `integer`, `decimal`, `boolean`, `guid`, `date`,
//! `datetime`, `enum` (finops, with `enum = "NoYes"`), `lookup` (Dataverse,
//! with `target`). Key fields must be declared fields.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The standard Dataverse tables the built-in catalogue and the Dataverse
/// emulator know.
pub const DATAVERSE_TABLES: &str = include_str!("dataverse.toml");

/// The standard finops data entities the built-in catalogue and the finops
/// emulator know.
pub const FINOPS_TABLES: &str = include_str!("finops.toml");

/// Errors loading or checking metadata.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("could not read metadata file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not match the format.
    #[error("metadata is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A table refers to a field it does not declare.
    #[error("table {table}: {message}")]
    Invalid {
        /// The table at fault.
        table: String,
        /// What is wrong.
        message: String,
    },
}

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    String,
    /// Whole number.
    Integer,
    /// Exact decimal (money, quantities).
    Decimal,
    /// `true` / `false`.
    Boolean,
    /// A GUID.
    Guid,
    /// `2024-01-31`.
    Date,
    /// `2024-01-31T10:00:00Z`.
    Datetime,
    /// Finance and Operations enum, written as its member name.
    Enum,
    /// Dataverse lookup, set with `field@odata.bind`, read as `_field_value`.
    Lookup,
}

/// One field of a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Field name, case-sensitive as in the payloads.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Longest accepted string.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Enum type name (finops `enum` fields), e.g. `NoYes`.
    #[serde(default, rename = "enum")]
    pub enum_type: Option<String>,
    /// Target entity set of a lookup.
    #[serde(default)]
    pub target: Option<String>,
}

/// An alternate key: fields whose values together are unique.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDef {
    /// Key name.
    pub name: String,
    /// The fields, in key order.
    pub fields: Vec<String>,
}

/// One table (Dataverse entity set or finops data entity).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// Entity set name as it appears in the URL.
    pub name: String,
    /// Logical (entity type) name; defaults to `name`.
    #[serde(default)]
    pub entity: Option<String>,
    /// Primary key fields.
    pub primary_key: Vec<String>,
    /// Finops: the company field (`dataAreaId`).
    #[serde(default)]
    pub company_field: Option<String>,
    /// Declared fields (keys included).
    pub fields: Vec<FieldDef>,
    /// Alternate keys.
    #[serde(default)]
    pub alternate_keys: Vec<KeyDef>,
    /// Dataverse: change tracking is enabled on the table
    /// (`ChangeTrackingEnabled`), so delta links can be had; default `true`.
    #[serde(default = "yes")]
    pub change_tracking: bool,
    /// finops: the data entity is public (`IsPublic`), so the OData service
    /// exposes it; default `true`.
    #[serde(default = "yes")]
    pub public: bool,
}

fn yes() -> bool {
    true
}

impl TableDef {
    /// The logical name of the entity type.
    pub fn entity_name(&self) -> &str {
        self.entity.as_deref().unwrap_or(&self.name)
    }

    /// A declared field by name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// True when `name` is a field a row of this table may carry when read
    /// (declared fields, `_x_value` of lookups, and the system fields).
    pub fn readable(&self, name: &str, system: &[&str]) -> bool {
        if system.contains(&name) || self.field(name).is_some() {
            return true;
        }
        name.strip_prefix('_')
            .and_then(|n| n.strip_suffix("_value"))
            .and_then(|n| self.field(n))
            .is_some_and(|f| f.field_type == FieldType::Lookup)
    }

    /// Checks one written value against the field's type; the message says
    /// what to send instead.
    pub fn check_value(&self, field: &FieldDef, value: &Value) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        let ok = match field.field_type {
            FieldType::String | FieldType::Enum => value.is_string(),
            FieldType::Integer => value.is_i64() || value.is_u64(),
            FieldType::Decimal => value.is_number(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Guid => value
                .as_str()
                .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
            FieldType::Date => value
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            FieldType::Datetime => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            FieldType::Lookup => false,
        };
        if !ok {
            return Err(format!(
                "the value {value} of field '{}' is not a {:?}",
                field.name, field.field_type
            ));
        }
        if let (Some(max), Some(s)) = (field.max_length, value.as_str())
            && s.chars().count() > max
        {
            return Err(format!(
                "field '{}' is longer than its maximum of {max} characters",
                field.name
            ));
        }
        Ok(())
    }
}

/// A one-to-many relationship between two Dataverse tables: its name is
/// the collection-valued navigation property of the referenced (one) side,
/// and the lookup on the referencing (many) side is its single-valued one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationshipDef {
    /// Relationship name, e.g. `contact_customer_accounts`.
    pub name: String,
    /// Entity set of the one side (`accounts`).
    pub referenced: String,
    /// Entity set of the many side (`contacts`).
    pub referencing: String,
    /// The lookup field of the many side that points to the one side.
    pub lookup: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    #[serde(default)]
    tables: Vec<TableDef>,
    #[serde(default)]
    relationships: Vec<RelationshipDef>,
}

/// All tables of one service, by entity set name, and the relationships
/// between them.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    tables: BTreeMap<String, TableDef>,
    relationships: Vec<RelationshipDef>,
}

impl Metadata {
    /// Parses metadata from TOML text and checks it.
    pub fn from_toml(text: &str) -> Result<Self, MetadataError> {
        let file: MetadataFile = toml::from_str(text)?;
        let mut out = Self::default();
        out.extend(file.tables)?;
        out.relationships = file.relationships;
        Ok(out)
    }

    /// Reads a metadata file.
    pub fn from_file(path: &Path) -> Result<Self, MetadataError> {
        let text = std::fs::read_to_string(path).map_err(|source| MetadataError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Adds the tables of `other`, replacing tables of the same name.
    pub fn merge(&mut self, other: Metadata) {
        self.tables.extend(other.tables);
        self.relationships
            .retain(|r| !other.relationships.iter().any(|o| o.name == r.name));
        self.relationships.extend(other.relationships);
    }

    /// The relationship whose collection-valued navigation property on
    /// `referenced` is `name`.
    pub fn relationship(&self, referenced: &str, name: &str) -> Option<&RelationshipDef> {
        self.relationships
            .iter()
            .find(|r| r.referenced == referenced && r.name == name)
    }

    /// All relationships.
    pub fn relationships(&self) -> impl Iterator<Item = &RelationshipDef> {
        self.relationships.iter()
    }

    fn extend(&mut self, tables: Vec<TableDef>) -> Result<(), MetadataError> {
        for table in tables {
            let invalid = |message: String| MetadataError::Invalid {
                table: table.name.clone(),
                message,
            };
            if table.primary_key.is_empty() {
                return Err(invalid("primary_key is empty: name the key fields".into()));
            }
            let key_fields = table
                .primary_key
                .iter()
                .chain(table.alternate_keys.iter().flat_map(|k| k.fields.iter()))
                .chain(table.company_field.iter());
            for name in key_fields {
                if table.field(name).is_none() {
                    return Err(invalid(format!(
                        "key field '{name}' is not declared in fields"
                    )));
                }
            }
            self.tables.insert(table.name.clone(), table);
        }
        Ok(())
    }

    /// Keeps only the tables `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&TableDef) -> bool) {
        self.tables.retain(|_, table| keep(table));
    }

    /// A table by entity set name.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// All tables.
    pub fn tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values()
    }
}
