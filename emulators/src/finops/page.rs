//! The rows a finops collection read sees, and the page of them it
//! answers.
//!
//! [`Visible`] is a read's company (the default one, or all with
//! `cross-company=true`) and `$filter`. Without `$orderby` or `$count`,
//! [`Visible::window`] reads the store in primary key order from the start
//! to the first row past the page, skipping `$skip` rows (unparsed when
//! nothing needs their fields), never the whole table; rows of one company
//! are one range of keys when the company leads the key, as `dataAreaId`
//! does. Otherwise [`Visible::all`] filters and sorts the whole entity. The
//! two give the same rows: key order when nothing else is asked.

use serde_json::Value;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, QueryOptions, parse_query};
use super::super::rows::run_query;
use super::super::store::{StoredRow, encode_key};
use super::query::FinopsFilter;
use super::{check_options, storage};
use dualwrite::schema::TableDef;

/// What a collection read of one entity sees.
pub(crate) struct Visible<'t> {
    table: &'t TableDef,
    pub options: QueryOptions,
    filter: Option<FinopsFilter>,
    /// The company field to compare, when its rows are not one key range.
    company_field: Option<&'t str>,
    company: String,
    /// The start of every visible row's key.
    prefix: String,
}

impl<'t> Visible<'t> {
    /// Reads and checks the request's options.
    pub(crate) fn of(
        state: &SharedState,
        table: &'t TableDef,
        request: &ApiRequest,
    ) -> Result<Self, ApiError> {
        let mut options = parse_query(&request.query, "BadRequest")?;
        check_options(table, &options)?;
        let filter = options.filter.take().map(|f| FinopsFilter::new(&f));
        let company = state.default_company.clone();
        let restricted = table
            .company_field
            .as_deref()
            .filter(|_| !options.cross_company);
        let leads_key =
            restricted.is_some() && table.primary_key.first().map(String::as_str) == restricted;
        let prefix = if leads_key {
            format!("{}\u{1f}", encode_key(&[&Value::String(company.clone())]))
        } else {
            String::new()
        };
        Ok(Self {
            table,
            options,
            filter,
            company_field: restricted.filter(|_| !leads_key),
            company,
            prefix,
        })
    }

    fn needs_fields(&self) -> bool {
        self.filter.is_some() || self.company_field.is_some()
    }

    fn matches(&self, row: &StoredRow) -> bool {
        self.company_field
            .is_none_or(|c| row.row.get(c).and_then(Value::as_str) == Some(self.company.as_str()))
            && self.filter.as_ref().is_none_or(|f| f.matches(&row.row))
    }

    /// True when [`Visible::window`] can answer the read.
    pub(crate) fn scannable(&self) -> bool {
        self.options.orderby.is_empty() && !self.options.count
    }

    /// Every visible row, filtered and ordered.
    pub(crate) fn all(&self, state: &SharedState) -> Result<Vec<StoredRow>, ApiError> {
        let mut rows = Vec::new();
        for raw in state.store.scan(&self.table.name, None, &self.prefix) {
            let row = raw.and_then(|raw| raw.parse()).map_err(storage)?;
            if self.matches(&row) {
                rows.push(row);
            }
        }
        Ok(run_query(rows, &self.options))
    }

    /// How many rows are visible.
    pub(crate) fn count(&self, state: &SharedState) -> Result<usize, ApiError> {
        let mut count = 0;
        for raw in state.store.scan(&self.table.name, None, &self.prefix) {
            let raw = raw.map_err(storage)?;
            if !self.needs_fields() || self.matches(&raw.parse().map_err(storage)?) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Rows `skip..skip + size` in key order (no further than `$top` from
    /// `skip`), and whether a visible row follows them within `$top`.
    pub(crate) fn window(
        &self,
        state: &SharedState,
        skip: usize,
        size: usize,
    ) -> Result<(Vec<StoredRow>, bool), ApiError> {
        let allowed = self.options.top.unwrap_or(usize::MAX);
        let wanted = size.min(allowed);
        let mut skip = skip;
        let mut rows = Vec::new();
        for raw in state.store.scan(&self.table.name, None, &self.prefix) {
            let raw = raw.map_err(storage)?;
            let parsed = if self.needs_fields() {
                let row = raw.parse().map_err(storage)?;
                if !self.matches(&row) {
                    continue;
                }
                Some(row)
            } else {
                None
            };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if rows.len() == wanted {
                return Ok((rows, wanted < allowed));
            }
            let row = match parsed {
                Some(row) => row,
                None => raw.parse().map_err(storage)?,
            };
            rows.push(row);
        }
        Ok((rows, false))
    }
}
