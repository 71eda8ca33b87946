//! What validation knows about each system's tables: the [`Catalogue`]
//! trait, and [`EmulatorCatalogue`], the built-in tables of the emulators
//! as an offline catalogue of the standard tables.

use crate::schema::{Metadata, MetadataError, TableDef};

use super::SystemKind;

/// What a catalogue says about a table.
#[derive(Debug, Clone, Copy)]
pub enum TableLookup<'a> {
    /// The catalogue does not cover this system: skip table and field checks.
    NotCovered,
    /// The system has no such table.
    Missing,
    /// The table and its fields.
    Found(&'a TableDef),
}

/// Table definitions per system, consulted by validation. A live provider
/// would read each service's `$metadata`; validation itself does no I/O.
pub trait Catalogue {
    /// Looks up `table` of a system of `kind`.
    fn table(&self, kind: SystemKind, table: &str) -> TableLookup<'_>;

    /// The names of a system's tables, for suggestions.
    fn table_names(&self, kind: SystemKind) -> Vec<&str>;
}

/// A catalogue that covers nothing: only the config's own consistency is
/// checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCatalogue;

impl Catalogue for NoCatalogue {
    fn table(&self, _kind: SystemKind, _table: &str) -> TableLookup<'_> {
        TableLookup::NotCovered
    }

    fn table_names(&self, _kind: SystemKind) -> Vec<&str> {
        Vec::new()
    }
}

/// The tables the emulators serve, in the emulator metadata format.
#[derive(Debug, Clone)]
pub struct EmulatorCatalogue {
    finops: Metadata,
    dataverse: Metadata,
}

impl EmulatorCatalogue {
    /// The emulators' built-in tables.
    pub fn builtin() -> Result<Self, MetadataError> {
        Ok(EmulatorCatalogue {
            finops: Metadata::from_toml(crate::schema::FINOPS_TABLES)?,
            dataverse: Metadata::from_toml(crate::schema::DATAVERSE_TABLES)?,
        })
    }

    /// Adds (or replaces) tables of one system, e.g. custom tables.
    pub fn merge(&mut self, kind: SystemKind, tables: Metadata) {
        match kind {
            SystemKind::Finops => self.finops.merge(tables),
            SystemKind::Dataverse => self.dataverse.merge(tables),
        }
    }

    fn metadata(&self, kind: SystemKind) -> &Metadata {
        match kind {
            SystemKind::Finops => &self.finops,
            SystemKind::Dataverse => &self.dataverse,
        }
    }
}

impl Catalogue for EmulatorCatalogue {
    fn table(&self, kind: SystemKind, table: &str) -> TableLookup<'_> {
        match self.metadata(kind).table(table) {
            Some(found) => TableLookup::Found(found),
            None => TableLookup::Missing,
        }
    }

    fn table_names(&self, kind: SystemKind) -> Vec<&str> {
        self.metadata(kind)
            .tables()
            .map(|table| table.name.as_str())
            .collect()
    }
}

/// The closest name in `names` to `wanted` (case and `_` ignored, at most
/// two edits apart), as a "did you mean" sentence, or nothing.
pub(crate) fn suggest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let fold = |name: &str| name.to_ascii_lowercase().replace('_', "");
    let folded = fold(wanted);
    names
        .into_iter()
        .map(|name| (edit_distance(&fold(name), &folded), name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| format!("did you mean `{name}`? "))
        .unwrap_or_default()
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let names = ["accounts", "contacts", "CustomerAccount"];
        let check = |wanted: &str, expected: &str| {
            assert_eq!(suggest(wanted, names), expected, "{wanted}");
        };
        check("account", "did you mean `accounts`? ");
        check("CUSTOMERACCOUNT", "did you mean `CustomerAccount`? ");
        check("customer_account", "did you mean `CustomerAccount`? ");
        check("vendors", "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
