//! Which rows a page of a Dataverse collection read holds, and where the
//! next one starts (`$skiptoken`, opaque to clients: they follow
//! `@odata.nextLink` as given).
//!
//! - [`scanned`]: a table read without `$orderby` or `$count`, in primary
//!   key order, reads the store from where the previous page stopped to
//!   the first row past this one, never the whole table. Its token is
//!   `k<rows served>.<last primary key, hex>`.
//! - [`in_memory`]: any other read (an order, a count, the members of a
//!   relationship) filters, sorts and cuts the whole set; its token is the
//!   offset of the page. A numeric token is read as an offset by both.
//!
//! Both give the same rows for the same query: key order when nothing
//! else is asked, `$top` counted over all pages.

use axum::http::StatusCode;

use super::super::SharedState;
use super::super::http::{ApiError, QueryOptions};
use super::super::rows::run_query;
use super::super::store::StoredRow;
use super::bad_request;
use super::read::storage;
use dualwrite::schema::TableDef;

/// The rows of one page.
#[derive(Debug)]
pub(crate) struct Page {
    pub rows: Vec<StoredRow>,
    /// The `$skiptoken` of the next page, when there is one.
    pub next: Option<String>,
    /// The rows of the whole read (after `$top`), when they were counted.
    pub total: Option<usize>,
}

enum Start {
    /// Skip this many matching rows from the start.
    Offset(usize),
    /// Continue after this primary key, `served` rows having been sent.
    After { served: usize, pk: String },
}

fn start(token: Option<&str>) -> Result<Start, ApiError> {
    let Some(token) = token else {
        return Ok(Start::Offset(0));
    };
    let not_ours = || {
        bad_request(format!(
            "$skiptoken '{token}' is not one this service issued: follow @odata.nextLink as given"
        ))
    };
    if let Ok(offset) = token.parse::<usize>() {
        return Ok(Start::Offset(offset));
    }
    let (served, pk) = token
        .strip_prefix('k')
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(not_ours)?;
    let served = served.parse().map_err(|_| not_ours())?;
    let pk = hex::decode(pk)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(not_ours)?;
    Ok(Start::After { served, pk })
}

/// True when [`scanned`] can answer `options`.
pub(crate) fn scannable(options: &QueryOptions) -> bool {
    options.orderby.is_empty() && !options.count
}

/// A page of `table` in key order, reading only up to the page's end.
pub(crate) fn scanned(
    state: &SharedState,
    table: &TableDef,
    options: &QueryOptions,
    size: usize,
) -> Result<Page, ApiError> {
    let (after, served, mut skip) = match start(options.skiptoken.as_deref())? {
        Start::Offset(offset) => (None, offset, offset),
        Start::After { served, pk } => (Some(pk), served, 0),
    };
    // What `$top` still allows after the rows already served.
    let allowed = options
        .top
        .map_or(usize::MAX, |top| top.saturating_sub(served));
    let wanted = size.min(allowed);
    let mut rows = Vec::new();
    let mut last = None;
    let mut more = false;
    for raw in state.store.scan(&table.name, after.as_deref(), "") {
        let raw = raw.map_err(storage)?;
        let row = raw.parse().map_err(storage)?;
        if options
            .filter
            .as_ref()
            .is_some_and(|f| !f.matches(&row.row))
        {
            continue;
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if rows.len() == wanted {
            more = wanted < allowed;
            break;
        }
        last = Some(raw.pk);
        rows.push(row);
    }
    let next = match (more, last) {
        (true, Some(pk)) => Some(format!(
            "k{}.{}",
            served.saturating_add(rows.len()),
            hex::encode(pk)
        )),
        _ => None,
    };
    Ok(Page {
        rows,
        next,
        total: None,
    })
}

/// A page of `rows`, filtered, ordered and cut by `$top` as a whole.
pub(crate) fn in_memory(
    rows: Vec<StoredRow>,
    options: &QueryOptions,
    size: usize,
) -> Result<Page, ApiError> {
    let offset = match start(options.skiptoken.as_deref())? {
        Start::Offset(offset) => offset,
        Start::After { .. } => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                super::BAD_REQUEST,
                "$skiptoken belongs to a read without $orderby or $count: follow @odata.nextLink as given",
            ));
        }
    };
    let mut rows = run_query(rows, options);
    if let Some(top) = options.top {
        rows.truncate(top);
    }
    let total = rows.len();
    let next =
        (offset.saturating_add(size) < total).then(|| offset.saturating_add(size).to_string());
    let rows = rows.into_iter().skip(offset).take(size).collect();
    Ok(Page {
        rows,
        next,
        total: Some(total),
    })
}
