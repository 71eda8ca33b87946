//! The checks of each enabled map against the systems that were read:
//! change tracking on the Dataverse tables it reads, its key an alternate
//! key of the Dataverse table, its finops entity public and readable; and
//! the privileges it needs on each Dataverse table, checked per system by
//! `privileges`.
//!
//! A map is read from the config as written (its `key` and `fields`
//! strings that parse), so it is checked even when validation found
//! errors elsewhere in the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::system::{Access, LiveSystem};
use super::target::describe;
use crate::config::{Config, MapConfig};
use crate::connector::ConnectorError;
use crate::map::{FieldMapping, Problem, ProblemCode, Side, SystemKind};
use crate::schema::TableDef;

/// What a Dataverse system must grant: table → privilege type → the maps
/// that need it.
pub(super) type Needs = BTreeMap<String, BTreeMap<&'static str, BTreeSet<String>>>;

/// What the map checks found.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub problems: Vec<Problem>,
    /// `(map, "left.table")`: a finops entity reported `entity-not-public`,
    /// which validation reports as an unknown table too.
    pub not_public: Vec<(String, String)>,
    /// Per Dataverse system, the privileges its maps need.
    pub needs: BTreeMap<String, Needs>,
    /// The maps checked against at least one live system.
    pub checked: Vec<String>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

/// Checks every enabled map of `config` against the `live` systems.
pub(super) async fn check(config: &Config, live: &BTreeMap<String, LiveSystem>) -> Found {
    let mut found = Found::default();
    let mut reads: HashMap<(String, String), Option<(ProblemCode, String)>> = HashMap::new();
    for map in &config.maps {
        if !map.enabled {
            found.notes.push(format!(
                "map `{}` is disabled: not checked against the systems",
                map.name
            ));
            continue;
        }
        let key: Vec<FieldMapping> = map
            .key
            .iter()
            .filter_map(|text| FieldMapping::parse_key(text).ok())
            .collect();
        let fields: Vec<FieldMapping> = map
            .fields
            .iter()
            .filter_map(|text| FieldMapping::parse(text).ok())
            .collect();
        let mut checked = false;
        for side in Side::BOTH {
            let config_side = match side {
                Side::Left => &map.left,
                Side::Right => &map.right,
            };
            let Some(system) = live.get(&config_side.system) else {
                if config.systems.contains_key(&config_side.system) {
                    found.notes.push(format!(
                        "map `{}`: `{}` of system `{}` was not checked: the system has a problem above",
                        map.name, config_side.table, config_side.system
                    ));
                }
                continue;
            };
            checked = true;
            let shape = Shape {
                map,
                key: &key,
                fields: &fields,
                side,
                system,
            };
            let table = system
                .tables
                .iter()
                .find(|table| table.name == config_side.table);
            match (system.target.kind, table) {
                (SystemKind::Finops, None) => {
                    found.problems.push(shape.not_public());
                    found
                        .not_public
                        .push((map.name.clone(), format!("{}.table", side.name())));
                }
                (SystemKind::Finops, Some(table)) => {
                    // One read per entity, however many maps use it.
                    let at = (system.target.name.clone(), table.name.clone());
                    if !reads.contains_key(&at) {
                        let read = read_one(system, table).await;
                        reads.insert(at.clone(), read);
                    }
                    if let Some(Some((code, message))) = reads.get(&at) {
                        found.problems.push(shape.unreadable(table, *code, message));
                    }
                }
                (SystemKind::Dataverse, None) => {}
                (SystemKind::Dataverse, Some(table)) => {
                    found.problems.extend(shape.dataverse(table));
                    shape.needs(
                        table,
                        found.needs.entry(system.target.name.clone()).or_default(),
                    );
                }
            }
        }
        if checked {
            found.checked.push(map.name.clone());
        }
    }
    found
}

/// A harmless read of one row of a finops entity (finops documents no
/// privilege check, and writes cannot be tried without writing): `None`
/// when it reads, else the code and message of the problem.
async fn read_one(system: &LiveSystem, table: &TableDef) -> Option<(ProblemCode, String)> {
    let Access::Finops(connector) = &system.access else {
        return None;
    };
    match connector.read_one(&table.name, &table.primary_key).await {
        Ok(_) => None,
        Err(
            error @ ConnectorError::Rejected {
                status: 401 | 403, ..
            },
        ) => Some((
            ProblemCode::MissingPrivilege,
            format!(
                "the identity may not read `{}`: {}",
                table.name,
                describe(&error)
            ),
        )),
        Err(error) => Some((
            ProblemCode::ServiceUnavailable,
            format!("`{}` could not be read: {}", table.name, describe(&error)),
        )),
    }
}

/// One side of one map, on a live system.
struct Shape<'a> {
    map: &'a MapConfig,
    key: &'a [FieldMapping],
    fields: &'a [FieldMapping],
    side: Side,
    system: &'a LiveSystem,
}

impl Shape<'_> {
    fn problem(&self, code: ProblemCode, table: &str, message: String, help: String) -> Problem {
        Problem::new(code, message, help)
            .in_map(&self.map.name)
            .on_system(&self.system.target.name)
            .in_table(table)
            .at_field(format!("{}.table", self.side.name()))
    }

    /// The field of `mapping` on this side.
    fn field_of<'m>(&self, mapping: &'m FieldMapping) -> Option<&'m str> {
        match self.side {
            Side::Left => mapping.left.as_deref(),
            Side::Right => mapping.right.as_deref(),
        }
    }

    /// Whether any field mapping writes toward `to` (else that direction
    /// is idle, as the engine runs it).
    fn flows_to(&self, to: Side) -> bool {
        self.fields.iter().any(|mapping| writes_to(mapping, to))
    }

    fn not_public(&self) -> Problem {
        let table = match self.side {
            Side::Left => &self.map.left.table,
            Side::Right => &self.map.right.table,
        };
        self.problem(
            ProblemCode::EntityNotPublic,
            table,
            format!(
                "`{table}` is not an entity set of the service's $metadata: the data entity is not public, or there is none of that name"
            ),
            "set the data entity's IsPublic to Yes (with a public collection name) and deploy it, or name the entity set as `$metadata` lists it; names are case-sensitive".into(),
        )
    }

    fn unreadable(&self, table: &TableDef, code: ProblemCode, message: &str) -> Problem {
        let help = if code == ProblemCode::MissingPrivilege {
            "give the application's user a security role that reads the entity (System administration > Users)"
        } else {
            "check that the service is up and the entity can be read"
        };
        self.problem(code, &table.name, message.to_string(), help.into())
    }

    /// Change tracking on a table the map reads, and the key an
    /// alternate key.
    fn dataverse(&self, table: &TableDef) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.flows_to(self.side.other()) && !table.change_tracking {
            problems.push(self.problem(
                ProblemCode::ChangeTrackingOff,
                &table.name,
                format!(
                    "change tracking is not enabled on `{}` (ChangeTrackingEnabled is false), and the map reads its changes",
                    table.name
                ),
                "turn on Track changes in the table's properties (Power Apps: Tables > Properties > Advanced options), or set EntityMetadata.ChangeTrackingEnabled".into(),
            ));
        }
        let mut wanted: Vec<&str> = self
            .key
            .iter()
            .filter_map(|pair| self.field_of(pair))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return problems;
        }
        let same = |fields: &[String]| {
            let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            fields.sort_unstable();
            fields.dedup();
            fields == wanted
        };
        if same(&table.primary_key) || table.alternate_keys.iter().any(|key| same(&key.fields)) {
            return problems;
        }
        let keys: Vec<String> = table
            .alternate_keys
            .iter()
            .map(|key| format!("{} ({})", key.name, key.fields.join(", ")))
            .collect();
        problems.push(self.problem(
            ProblemCode::NoAlternateKey,
            &table.name,
            format!(
                "the map's key on `{}` is ({}), which is not an alternate key of the table; its keys: {}",
                table.name,
                wanted.join(", "),
                if keys.is_empty() { "none".to_string() } else { keys.join("; ") }
            ),
            format!(
                "add an alternate key of exactly ({}) to `{}` (Power Apps: Tables > Keys), or key the map on an existing one",
                wanted.join(", "),
                table.name
            ),
        ));
        problems
    }

    /// The privileges the map needs on this table and the tables its
    /// lookups point at: read always (capture, current rows, lookups);
    /// create, write and delete where it writes; append where it sets a
    /// lookup, and append-to on the lookup's target.
    fn needs(&self, table: &TableDef, needs: &mut Needs) {
        let mut need = |table: &str, kind: &'static str| {
            needs
                .entry(table.to_string())
                .or_default()
                .entry(kind)
                .or_default()
                .insert(self.map.name.clone());
        };
        need(&table.name, "Read");
        if !self.flows_to(self.side) {
            return;
        }
        for kind in ["Create", "Write", "Delete"] {
            need(&table.name, kind);
        }
        for mapping in self.key.iter().chain(self.fields) {
            if mapping.lookup.is_none() || !writes_to(mapping, self.side) {
                continue;
            }
            need(&table.name, "Append");
            let target = self
                .field_of(mapping)
                .and_then(|column| table.field(column))
                .and_then(|field| field.target.as_deref());
            if let Some(target) = target {
                need(target, "AppendTo");
                need(target, "Read");
            }
        }
    }
}

fn writes_to(mapping: &FieldMapping, to: Side) -> bool {
    match to {
        Side::Left => mapping.direction.writes_left(),
        Side::Right => mapping.direction.writes_right(),
    }
}
