//! [`LiveCatalogue`]: the tables the systems themselves describe, read from
//! their metadata beforehand, over a fallback catalogue for the systems
//! that could not be read.
//!
//! The catalogue is filled before validation (`add`, `add_fallback`) and
//! does no I/O itself: the metadata comes from
//! [`MetadataReader`](crate::connector::MetadataReader).
//!
//! A [`Catalogue`] answers per kind of system, not per system. So the
//! tables of every system of one kind that was read are pooled; when a
//! system of that kind could not be read, a table the others do not have
//! is looked up in the fallback too, so that system is still checked
//! against the built-in tables rather than reported missing.

use std::collections::BTreeMap;
use std::fmt;

use super::SystemKind;
use super::catalogue::{Catalogue, TableLookup};
use crate::schema::TableDef;

/// Tables read from the systems, over a fallback.
pub struct LiveCatalogue {
    fallback: Box<dyn Catalogue + Send + Sync>,
    finops: Live,
    dataverse: Live,
}

/// What was read for one kind of system.
#[derive(Debug, Default)]
struct Live {
    /// Tables by entity set name; `None` when no system of the kind was read.
    tables: Option<BTreeMap<String, TableDef>>,
    /// A system of the kind could not be read: consult the fallback too.
    fallback_too: bool,
}

impl LiveCatalogue {
    /// An empty catalogue: every lookup goes to `fallback` until tables
    /// are added.
    pub fn new(fallback: Box<dyn Catalogue + Send + Sync>) -> Self {
        LiveCatalogue {
            fallback,
            finops: Live::default(),
            dataverse: Live::default(),
        }
    }

    /// Adds the tables read from one system of `kind`.
    pub fn add(&mut self, kind: SystemKind, tables: Vec<TableDef>) {
        let live = self.live_mut(kind);
        let known = live.tables.get_or_insert_with(BTreeMap::new);
        known.extend(tables.into_iter().map(|table| (table.name.clone(), table)));
    }

    /// Records that a system of `kind` could not be read: its tables are
    /// looked up in the fallback.
    pub fn add_fallback(&mut self, kind: SystemKind) {
        self.live_mut(kind).fallback_too = true;
    }

    /// True when tables of at least one system of `kind` were read.
    pub fn is_live(&self, kind: SystemKind) -> bool {
        self.live(kind).tables.is_some()
    }

    fn live(&self, kind: SystemKind) -> &Live {
        match kind {
            SystemKind::Finops => &self.finops,
            SystemKind::Dataverse => &self.dataverse,
        }
    }

    fn live_mut(&mut self, kind: SystemKind) -> &mut Live {
        match kind {
            SystemKind::Finops => &mut self.finops,
            SystemKind::Dataverse => &mut self.dataverse,
        }
    }
}

impl Catalogue for LiveCatalogue {
    fn table(&self, kind: SystemKind, table: &str) -> TableLookup<'_> {
        let live = self.live(kind);
        let Some(tables) = &live.tables else {
            return self.fallback.table(kind, table);
        };
        match tables.get(table) {
            Some(found) => TableLookup::Found(found),
            None if live.fallback_too => self.fallback.table(kind, table),
            None => TableLookup::Missing,
        }
    }

    fn table_names(&self, kind: SystemKind) -> Vec<&str> {
        let live = self.live(kind);
        let Some(tables) = &live.tables else {
            return self.fallback.table_names(kind);
        };
        let mut names: Vec<&str> = tables.keys().map(String::as_str).collect();
        if live.fallback_too {
            names.extend(self.fallback.table_names(kind));
            names.sort_unstable();
            names.dedup();
        }
        names
    }
}

impl fmt::Debug for LiveCatalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |live: &Live| live.tables.as_ref().map(BTreeMap::len);
        f.debug_struct("LiveCatalogue")
            .field("finops_tables", &count(&self.finops))
            .field("dataverse_tables", &count(&self.dataverse))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{EmulatorCatalogue, NoCatalogue};

    fn table(name: &str) -> TableDef {
        TableDef {
            name: name.into(),
            entity: None,
            primary_key: vec!["id".into()],
            company_field: None,
            fields: Vec::new(),
            alternate_keys: Vec::new(),
            change_tracking: true,
            public: true,
        }
    }

    fn found(lookup: TableLookup<'_>) -> Option<&str> {
        match lookup {
            TableLookup::Found(table) => Some(table.name.as_str()),
            TableLookup::Missing => Some("<missing>"),
            TableLookup::NotCovered => None,
        }
    }

    #[test]
    fn live_tables_replace_the_fallback_per_kind() {
        let builtin = EmulatorCatalogue::builtin().expect("built-in tables");
        let mut catalogue = LiveCatalogue::new(Box::new(builtin));
        catalogue.add(SystemKind::Dataverse, vec![table("new_projects")]);
        let dataverse = |name| found(catalogue.table(SystemKind::Dataverse, name));
        assert_eq!(dataverse("new_projects"), Some("new_projects"));
        assert_eq!(
            dataverse("accounts"),
            Some("<missing>"),
            "only what was read"
        );
        assert_eq!(
            catalogue.table_names(SystemKind::Dataverse),
            ["new_projects"]
        );
        let finops = found(catalogue.table(SystemKind::Finops, "CustomersV3"));
        assert_eq!(finops, Some("CustomersV3"), "finops was not read: built-in");
        assert!(catalogue.is_live(SystemKind::Dataverse));
        assert!(!catalogue.is_live(SystemKind::Finops));
    }

    #[test]
    fn a_kind_with_an_unread_system_consults_the_fallback_too() {
        let builtin = EmulatorCatalogue::builtin().expect("built-in tables");
        let mut catalogue = LiveCatalogue::new(Box::new(builtin));
        catalogue.add(SystemKind::Dataverse, vec![table("new_projects")]);
        catalogue.add_fallback(SystemKind::Dataverse);
        let dataverse = |name| found(catalogue.table(SystemKind::Dataverse, name));
        assert_eq!(dataverse("accounts"), Some("accounts"));
        assert_eq!(dataverse("nothing"), Some("<missing>"));
        let names = catalogue.table_names(SystemKind::Dataverse);
        assert!(names.contains(&"new_projects") && names.contains(&"accounts"));

        let mut uncovered = LiveCatalogue::new(Box::new(NoCatalogue));
        uncovered.add_fallback(SystemKind::Finops);
        assert_eq!(found(uncovered.table(SystemKind::Finops, "X")), None);
    }
}
