//! `$expand` on the Dataverse Web API: related rows joined into a row.
//!
//! A single-valued navigation property is a lookup with a target table
//! (`primarycontactid`, `createdby`, the Owner column `ownerid` to a user
//! or a team); a collection-valued one is a one-to-many relationship of the
//! schema (`contact_customer_accounts`). Each expanded property takes, in
//! parentheses and separated by `;`, `$select`, and for a collection
//! `$filter`, `$orderby`, `$top`, and `$expand` (nested); `name/$ref`
//! returns references of a single-valued property. What "Join tables using
//! OData" documents
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/join-tables>):
//!
//! - up to 15 `$expand` options in a query; `$skip`, `$count`, `$search`
//!   and `$levels` are not supported in them;
//! - `$orderby` and `$top` only on a collection, and not when the query
//!   has a nested `$expand` anywhere (the documented `0x80060888` "Only
//!   $select and $filter clause can be provided while doing $expand on
//!   many-to-one relationship or nested one-to-many relationship.");
//! - `/$ref` only on a single-valued property ("Expand with $ref is only
//!   supported on lookup type navigation property.");
//! - on a collection read without a nested `$expand`, no paging applies to
//!   the expanded rows (up to 5,000), each keeps its `@odata.etag` and the
//!   lookup back to the row, and `<property>@odata.nextLink` is the
//!   relationship's collection with the options as a query, without paging
//!   information; with a nested `$expand`, `Prefer: odata.maxpagesize`
//!   pages each expanded collection too, and the link carries where the
//!   next page starts;
//! - single-valued rows inside a collection read carry no `@odata.etag`;
//!   on one row (a retrieve, or a create or update with
//!   `Prefer: return=representation`, "Create a table row using the Web
//!   API") every expanded row carries it and no link is added;
//! - `@odata.context` lists the selected columns, then each expanded
//!   property with its own list: `accounts(name,primarycontactid(fullname),Account_Tasks(subject))`,
//!   and for `$ref` `primarycontactid,primarycontactid/$ref()`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value, json};

use super::super::SharedState;
use super::super::http::{ApiError, compare_values};
use super::super::rows::{project, stored_name};
use super::super::store::StoredRow;
use super::definitions::split_outside_parentheses;
use super::read::{etag, storage};
use super::write::guid_pk;
use super::{SYSTEM_FIELDS, bad_request, unknown_property};
use dualwrite::odata::Filter;
use dualwrite::schema::{FieldType, Metadata, RelationshipDef, TableDef};

/// The most `$expand` options a query may hold, nested ones included.
const MAX_EXPANDS: usize = 15;

/// The most related rows an expanded collection returns.
const MAX_RELATED: usize = 5000;

/// The documented refusal of `$orderby` or `$top` where they do not apply.
const ONLY_SELECT_AND_FILTER: &str = "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship.";

/// What a navigation property leads to.
#[derive(Debug)]
pub(crate) enum Nav<'m> {
    /// A lookup: the tables it may point at (two for the Owner column).
    Single {
        lookup: String,
        targets: Vec<&'m TableDef>,
    },
    /// A one-to-many relationship and its many side.
    Collection {
        relationship: &'m RelationshipDef,
        many: &'m TableDef,
    },
}

/// One expanded navigation property and its options.
#[derive(Debug)]
pub(crate) struct Expansion<'m> {
    pub name: String,
    pub nav: Nav<'m>,
    /// `name/$ref`: references instead of rows.
    pub reference: bool,
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
    pub orderby: Vec<(String, bool)>,
    pub top: Option<usize>,
    pub expand: Vec<Expansion<'m>>,
    /// The options as a query string (`$select=fullname&$expand=…`), for
    /// `<name>@odata.nextLink`.
    pub query: String,
}

/// The `$expand` of a request.
#[derive(Debug, Default)]
pub(crate) struct Expand<'m> {
    pub items: Vec<Expansion<'m>>,
    /// Some expansion has a nested `$expand` (paging then applies to the
    /// expanded collections).
    pub nested: bool,
}

/// Parses `$expand` of a request on `table`.
pub(crate) fn parse<'m>(
    metadata: &'m Metadata,
    table: &TableDef,
    text: Option<&str>,
) -> Result<Expand<'m>, ApiError> {
    let Some(text) = text else {
        return Ok(Expand::default());
    };
    let mut count = 0;
    let items = items(metadata, table, text, &mut count)?;
    if count > MAX_EXPANDS {
        return Err(bad_request(format!(
            "The query has {count} $expand options; a query may include up to {MAX_EXPANDS}."
        )));
    }
    let nested = items.iter().any(|item| !item.expand.is_empty());
    if nested {
        refuse_order_and_top(&items)?;
    }
    Ok(Expand { items, nested })
}

fn refuse_order_and_top(items: &[Expansion<'_>]) -> Result<(), ApiError> {
    for item in items {
        if !item.orderby.is_empty() || item.top.is_some() {
            return Err(bad_request(ONLY_SELECT_AND_FILTER));
        }
        refuse_order_and_top(&item.expand)?;
    }
    Ok(())
}

fn items<'m>(
    metadata: &'m Metadata,
    table: &TableDef,
    text: &str,
    count: &mut usize,
) -> Result<Vec<Expansion<'m>>, ApiError> {
    let mut out = Vec::new();
    for item in split_outside_parentheses(text, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        *count += 1;
        let (head, options) = match item.split_once('(') {
            Some((head, rest)) => {
                let options = rest.strip_suffix(')').ok_or_else(|| {
                    bad_request(format!(
                        "Syntax error in $expand: '{item}' is not closed with ')'"
                    ))
                })?;
                (head.trim(), options)
            }
            None => (item, ""),
        };
        let (name, reference) = match head.strip_suffix("/$ref") {
            Some(name) => (name.trim(), true),
            None => (head, false),
        };
        let nav = navigation(metadata, table, name)?;
        if reference && matches!(nav, Nav::Collection { .. }) {
            return Err(bad_request(
                "Expand with $ref is only supported on lookup type navigation property.",
            ));
        }
        let mut expansion = Expansion {
            name: name.to_string(),
            nav,
            reference,
            select: None,
            filter: None,
            orderby: Vec::new(),
            top: None,
            expand: Vec::new(),
            query: String::new(),
        };
        if reference && !options.trim().is_empty() {
            return Err(bad_request(format!(
                "'{name}/$ref' takes no options: it returns references only"
            )));
        }
        options_of(metadata, &mut expansion, options, count)?;
        out.push(expansion);
    }
    Ok(out)
}

/// The navigation property `name` of `table`.
fn navigation<'m>(
    metadata: &'m Metadata,
    table: &TableDef,
    name: &str,
) -> Result<Nav<'m>, ApiError> {
    if let Some(relationship) = metadata.relationship(&table.name, name) {
        let many = metadata
            .table(&relationship.referencing)
            .filter(|t| t.field(&relationship.lookup).is_some())
            .ok_or_else(|| {
                bad_request(format!(
                    "relationship {name} names {}.{}, which the metadata does not declare: fix the metadata file",
                    relationship.referencing, relationship.lookup
                ))
            })?;
        return Ok(Nav::Collection { relationship, many });
    }
    match table.field(name) {
        Some(field) if field.field_type == FieldType::Lookup => {
            let sets: Vec<&str> = match super::owner::targets(table, name) {
                Some(targets) => targets.to_vec(),
                None => field.target.as_deref().into_iter().collect(),
            };
            let targets: Vec<&TableDef> = sets.iter().filter_map(|s| metadata.table(s)).collect();
            if targets.is_empty() {
                return Err(bad_request(format!(
                    "The emulator does not have the table that '{name}' points to, so it cannot expand '{name}'."
                )));
            }
            Ok(Nav::Single {
                lookup: name.to_string(),
                targets,
            })
        }
        Some(_) => Err(bad_request(format!(
            "Property '{name}' on type 'Microsoft.Dynamics.CRM.{}' is not a navigation property or complex property. Only navigation properties can be expanded.",
            table.entity_name()
        ))),
        None => Err(unknown_property(table, name)),
    }
}

/// Reads `$select=…;$filter=…;…` into `expansion`.
fn options_of<'m>(
    metadata: &'m Metadata,
    expansion: &mut Expansion<'m>,
    options: &str,
    count: &mut usize,
) -> Result<(), ApiError> {
    let single = matches!(expansion.nav, Nav::Single { .. });
    let tables: Vec<&TableDef> = match &expansion.nav {
        Nav::Single { targets, .. } => targets.clone(),
        Nav::Collection { many, .. } => vec![*many],
    };
    let known = |name: &str| tables.iter().any(|t| t.readable(name, SYSTEM_FIELDS));
    let unknown = |name: &str| unknown_property(tables[0], name);
    let mut query = Vec::new();
    for option in split_outside_parentheses(options, ';') {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        let (name, value) = option.split_once('=').ok_or_else(|| {
            bad_request(format!(
                "Syntax error in $expand: '{option}' is not name=value"
            ))
        })?;
        let value = value.trim();
        match name.trim() {
            "$select" => {
                let fields: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = fields.iter().find(|f| !known(f)) {
                    return Err(unknown(bad));
                }
                expansion.select = Some(fields);
            }
            "$filter" => {
                let filter = Filter::parse(value).map_err(|e| {
                    bad_request(format!(
                        "Syntax error at position {} in '{value}': {}",
                        e.position, e.message
                    ))
                })?;
                if let Some(bad) = filter.field_names().into_iter().find(|f| !known(f)) {
                    return Err(unknown(bad));
                }
                expansion.filter = Some(filter);
            }
            "$orderby" if !single => {
                for part in value.split(',') {
                    let mut words = part.split_whitespace();
                    let Some(field) = words.next() else { continue };
                    if !known(field) {
                        return Err(unknown(field));
                    }
                    let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(bad_request(format!(
                                "$orderby direction '{other}' is not asc or desc"
                            )));
                        }
                    };
                    expansion.orderby.push((field.to_string(), desc));
                }
            }
            "$top" if !single => {
                expansion.top = Some(value.parse().map_err(|_| {
                    bad_request(format!(
                        "$top must be a non-negative whole number, got '{value}'"
                    ))
                })?);
            }
            "$orderby" | "$top" => return Err(bad_request(ONLY_SELECT_AND_FILTER)),
            "$expand" => {
                let table = tables[0];
                expansion.expand = items(metadata, table, value, count)?;
            }
            "$skip" | "$count" | "$search" | "$levels" => {
                return Err(bad_request(format!(
                    "The query option {} is not supported in $expand: use $select, $filter, $orderby, $top and $expand.",
                    name.trim()
                )));
            }
            other => {
                return Err(bad_request(format!(
                    "The query option '{other}' is not supported in $expand: use $select, $filter, $orderby, $top and $expand."
                )));
            }
        }
        query.push(format!("{}={value}", name.trim()));
    }
    expansion.query = query.join("&");
    Ok(())
}

/// The `(…)` of `@odata.context` for `select` and `expand`: the selected
/// columns, then each expansion with its own list; empty when both are.
pub(crate) fn context_list(select: Option<&Vec<String>>, expand: &[Expansion<'_>]) -> String {
    let mut parts: Vec<String> = select.cloned().unwrap_or_default();
    for item in expand {
        if item.reference {
            parts.push(item.name.clone());
            parts.push(format!("{}/$ref()", item.name));
        } else {
            let inner = context_list(item.select.as_ref(), &item.expand);
            let inner = inner
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_default()
                .to_string();
            parts.push(format!("{}({inner})", item.name));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(","))
    }
}

/// Whether the expanded rows belong to one row or to a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One row (a retrieve, a representation of a write).
    Entity,
    /// Rows of a collection read, with `Prefer: odata.maxpagesize` if sent.
    Set { page: Option<usize> },
}

/// The rows of a table by the parent id their lookup holds.
type Grouped = HashMap<String, Vec<StoredRow>>;

/// Adds the expansions to rendered rows; reads each related table once
/// per request.
pub(crate) struct Expander<'a, 'm> {
    state: &'a SharedState,
    expand: &'a Expand<'m>,
    shape: Shape,
    /// Rows of a many table grouped by the value of a lookup column, by
    /// (table, column).
    members: RefCell<HashMap<(String, String), Rc<Grouped>>>,
}

impl<'a, 'm> Expander<'a, 'm> {
    pub(crate) fn new(state: &'a SharedState, expand: &'a Expand<'m>, shape: Shape) -> Self {
        Self {
            state,
            expand,
            shape,
            members: RefCell::new(HashMap::new()),
        }
    }

    /// Adds every top-level expansion of `row` (of `table`) to `out`.
    pub(crate) fn apply(
        &self,
        table: &TableDef,
        row: &StoredRow,
        out: &mut Map<String, Value>,
    ) -> Result<(), ApiError> {
        self.add(table, row, &self.expand.items, out)
    }

    fn root(&self) -> String {
        format!("{}/api/data/v9.2", self.state.base_url)
    }

    fn add(
        &self,
        table: &TableDef,
        row: &StoredRow,
        items: &[Expansion<'m>],
        out: &mut Map<String, Value>,
    ) -> Result<(), ApiError> {
        for item in items {
            match &item.nav {
                Nav::Single { lookup, targets } => {
                    let column = stored_name(table, lookup);
                    let id = row.row.get(&column).and_then(Value::as_str);
                    if item.reference {
                        out.insert(column.clone(), id.map_or(Value::Null, |id| json!(id)));
                        let reference = match id {
                            Some(id) => self.find(targets, id)?.map(|(target, _)| {
                                json!({"@odata.id": format!("{}/{}({id})", self.root(), target.name)})
                            }),
                            None => None,
                        };
                        out.insert(item.name.clone(), reference.unwrap_or(Value::Null));
                        continue;
                    }
                    let related = match id {
                        Some(id) => self.find(targets, id)?,
                        None => None,
                    };
                    let value = match related {
                        Some((target, related))
                            if item.filter.as_ref().is_none_or(|f| f.matches(&related.row)) =>
                        {
                            let with_etag = self.shape == Shape::Entity;
                            Value::Object(self.render(target, &related, item, with_etag, None)?)
                        }
                        _ => Value::Null,
                    };
                    out.insert(item.name.clone(), value);
                }
                Nav::Collection { relationship, many } => {
                    self.add_collection(table, row, item, relationship, many, out)?;
                }
            }
        }
        Ok(())
    }

    fn add_collection(
        &self,
        table: &TableDef,
        row: &StoredRow,
        item: &Expansion<'m>,
        relationship: &RelationshipDef,
        many: &TableDef,
        out: &mut Map<String, Value>,
    ) -> Result<(), ApiError> {
        let pk = table.primary_key.first().map_or("", String::as_str);
        let id = row.row.get(pk).and_then(Value::as_str).unwrap_or_default();
        let column = stored_name(many, &relationship.lookup);
        let members = self.members_of(many, &column)?;
        let mut related: Vec<&StoredRow> = members
            .get(id)
            .map(|rows| {
                rows.iter()
                    .filter(|r| item.filter.as_ref().is_none_or(|f| f.matches(&r.row)))
                    .collect()
            })
            .unwrap_or_default();
        order(&mut related, &item.orderby);
        related.truncate(item.top.unwrap_or(MAX_RELATED).min(MAX_RELATED));
        let (page, single_mode) = match self.shape {
            Shape::Entity => (None, false),
            Shape::Set { page } if self.expand.nested => (page, false),
            Shape::Set { .. } => (None, true),
        };
        let shown = page.map_or(related.len(), |p| p.min(related.len()));
        let with_etag = self.shape == Shape::Entity || single_mode;
        let back = single_mode.then_some(column.as_str());
        let value = related
            .iter()
            .take(shown)
            .map(|r| {
                self.render(many, r, item, with_etag, back)
                    .map(Value::Object)
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(item.name.clone(), Value::Array(value));
        if self.shape == Shape::Entity {
            return Ok(());
        }
        let mut query = item.query.clone();
        if shown < related.len() {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("$skiptoken={shown}"));
        }
        let mut link = format!("{}/{}({id})/{}", self.root(), table.name, item.name);
        if !query.is_empty() {
            link.push('?');
            link.push_str(&query);
        }
        out.insert(format!("{}@odata.nextLink", item.name), json!(link));
        Ok(())
    }

    /// A related row: its selected columns (its key always), with its
    /// `@odata.etag` when `etag`, the lookup back to the parent when
    /// `back`, and its own expansions.
    fn render(
        &self,
        table: &TableDef,
        row: &StoredRow,
        item: &Expansion<'m>,
        with_etag: bool,
        back: Option<&str>,
    ) -> Result<Map<String, Value>, ApiError> {
        let pk = table.primary_key.first().map_or("", String::as_str);
        let mut always = vec![pk];
        always.extend(back);
        let mut out = Map::new();
        if with_etag {
            out.insert("@odata.etag".into(), json!(etag(row)));
        }
        out.extend(project(&row.row, item.select.as_ref(), &always));
        self.add(table, row, &item.expand, &mut out)?;
        Ok(out)
    }

    fn find(
        &self,
        targets: &[&'m TableDef],
        id: &str,
    ) -> Result<Option<(&'m TableDef, StoredRow)>, ApiError> {
        for target in targets {
            if let Some(row) = self
                .state
                .store
                .get(&target.name, &guid_pk(id))
                .map_err(storage)?
            {
                return Ok(Some((target, row)));
            }
        }
        Ok(None)
    }

    fn members_of(&self, many: &TableDef, column: &str) -> Result<Rc<Grouped>, ApiError> {
        let key = (many.name.clone(), column.to_string());
        if let Some(found) = self.members.borrow().get(&key) {
            return Ok(found.clone());
        }
        let mut grouped = Grouped::new();
        for row in self.state.store.rows(&many.name).map_err(storage)? {
            if let Some(parent) = row.row.get(column).and_then(Value::as_str) {
                grouped.entry(parent.to_string()).or_default().push(row);
            }
        }
        let grouped = Rc::new(grouped);
        self.members.borrow_mut().insert(key, grouped.clone());
        Ok(grouped)
    }
}

fn order(rows: &mut [&StoredRow], orderby: &[(String, bool)]) {
    if orderby.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for (field, desc) in orderby {
            let null = Value::Null;
            let o = compare_values(
                a.row.get(field).unwrap_or(&null),
                b.row.get(field).unwrap_or(&null),
            );
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        Metadata::from_toml(dualwrite::schema::DATAVERSE_TABLES).expect("built-in tables")
    }

    fn error(query: &str) -> String {
        let metadata = metadata();
        let accounts = metadata.table("accounts").expect("accounts");
        parse(&metadata, accounts, Some(query))
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn expansions_are_checked_as_the_service_checks_them() {
        assert_eq!(
            error(
                "primarycontactid($select=fullname),contact_customer_accounts($select=fullname;$filter=lastname ne null;$orderby=fullname desc;$top=2)"
            ),
            ""
        );
        assert!(error("nosuchnav").contains("Could not find a property named 'nosuchnav'"));
        assert!(error("name").contains("is not a navigation property"));
        assert!(error("contact_customer_accounts/$ref").contains("only supported on lookup"));
        assert!(error("primarycontactid($top=1)").contains("Only $select and $filter"));
        assert!(
            error("contact_customer_accounts($top=1;$expand=owninguser($select=fullname))")
                .contains("Only $select and $filter")
        );
        assert!(error("contact_customer_accounts($skip=1)").contains("$skip is not supported"));
        assert!(error("primarycontactid($select=nosuchcolumn)").contains("'nosuchcolumn'"));
        assert!(error("primarycontactid($select=fullname").contains("not closed"));
        assert!(error("msdyn_partyid").contains("does not have the table"));
        let sixteen = vec!["primarycontactid"; 16].join(",");
        assert!(error(&sixteen).contains("up to 15"));
    }

    #[test]
    fn the_context_lists_columns_then_expansions() {
        let metadata = metadata();
        let accounts = metadata.table("accounts").expect("accounts");
        let expand = parse(
            &metadata,
            accounts,
            Some("primarycontactid($select=fullname),contact_customer_accounts($select=fullname;$expand=owninguser($select=fullname)),createdby/$ref"),
        )
        .expect("parses");
        assert_eq!(
            context_list(Some(&vec!["name".to_string()]), &expand.items),
            "(name,primarycontactid(fullname),contact_customer_accounts(fullname,owninguser(fullname)),createdby,createdby/$ref())"
        );
        assert!(expand.nested);
        assert_eq!(context_list(None, &[]), "");
    }
}
