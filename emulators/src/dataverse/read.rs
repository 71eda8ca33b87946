//! Dataverse reads: collections with paging, one row, change tracking.

use axum::http::{StatusCode, header};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::super::SharedState;
use super::super::http::{
    ApiError, ApiRequest, ApiResponse, QueryOptions, includes_annotation, max_page_size,
    parse_query, prefer,
};
use super::super::rows::{KeySegment, check_names, project, rebuild_query, with_first};
use super::super::store::{StoreError, StoredRow};
use super::expand::{Expand, Expander, Shape};
use super::{BAD_REQUEST, NOT_FOUND, SYSTEM_FIELDS, bad_request, describe_key, unknown_property};
use dualwrite::schema::TableDef;

/// Default and largest page: 5,000 rows, as the service.
const PAGE: usize = 5000;

/// The most rows `$count` counts in a standard table: "up to 5,000", with
/// `Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded` saying whether
/// there are more
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/count-rows>).
const COUNT_LIMIT: usize = 5000;

pub(crate) fn storage(e: StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "0x80040216",
        e.to_string(),
    )
}

pub(crate) fn etag(row: &StoredRow) -> String {
    format!("W/\"{}\"", row.version)
}

fn pk_name(table: &TableDef) -> &str {
    table.primary_key.first().map_or("", String::as_str)
}

/// A row as the service returns it: fields plus `@odata.etag`.
pub(crate) fn render(
    table: &TableDef,
    row: &StoredRow,
    select: Option<&Vec<String>>,
) -> Map<String, Value> {
    let fields = project(&row.row, select, &[pk_name(table)]);
    with_first("@odata.etag", Value::String(etag(row)), fields)
}

/// `@odata.context`: the set, then the selected columns and expansions
/// (`accounts(name,primarycontactid(fullname))`), then `suffix`.
pub(crate) fn context(
    state: &SharedState,
    table: &TableDef,
    select: Option<&Vec<String>>,
    expand: &Expand<'_>,
    suffix: &str,
) -> String {
    let list = super::expand::context_list(select, &expand.items);
    format!(
        "{}/api/data/v9.2/$metadata#{}{list}{suffix}",
        state.base_url, table.name
    )
}

/// A row with its expansions.
pub(crate) fn render_expanded(
    expander: &Expander<'_, '_>,
    table: &TableDef,
    row: &StoredRow,
    select: Option<&Vec<String>>,
) -> Result<Map<String, Value>, ApiError> {
    let mut out = render(table, row, select);
    expander.apply(table, row, &mut out)?;
    Ok(out)
}

/// Finds the stored row a key segment names.
pub(crate) fn find(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
) -> Result<Option<StoredRow>, ApiError> {
    let pk = match super::write::resolve_key(table, key)? {
        super::write::Resolved::Pk(pk) => Some(pk),
        super::write::Resolved::Alternate { key, values } => state
            .store
            .pk_by_key(&table.name, &key, &values)
            .map_err(storage)?,
    };
    match pk {
        Some(pk) => state.store.get(&table.name, &pk).map_err(storage),
        None => Ok(None),
    }
}

pub(super) fn one(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let options = parse_query(&request.query, BAD_REQUEST)?;
    check_names(table, &options, SYSTEM_FIELDS, |n| {
        unknown_property(table, n)
    })?;
    let expand = super::expand::parse(&state.metadata, table, options.expand.as_deref())?;
    let Some(row) = find(state, table, key)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!(
                "{} With {} Does Not Exist",
                table.entity_name(),
                describe_key(key)
            ),
        ));
    };
    if let Some(tag) = super::super::http::header_str(&request.headers, "if-none-match")
        && tag == etag(&row)
    {
        return Ok(ApiResponse::empty(StatusCode::NOT_MODIFIED));
    }
    let expander = Expander::new(state, &expand, Shape::Entity);
    let body = with_first(
        "@odata.context",
        Value::String(context(
            state,
            table,
            options.select.as_ref(),
            &expand,
            "/$entity",
        )),
        render_expanded(&expander, table, &row, options.select.as_ref())?,
    );
    Ok(
        ApiResponse::json(StatusCode::OK, Value::Object(body))
            .with_header(header::ETAG, etag(&row)),
    )
}

/// `GET set/$count`: the number of rows (at most 5,000, as the service),
/// as plain text.
pub(super) fn count(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let options = parse_query(&request.query, BAD_REQUEST)?;
    check_names(table, &options, SYSTEM_FIELDS, |n| {
        unknown_property(table, n)
    })?;
    // Counting stops at the limit: the rest of the table is not read.
    let mut total = 0;
    for raw in state.store.scan(&table.name, None, "") {
        let row = raw.and_then(|raw| raw.parse()).map_err(storage)?;
        if options.filter.as_ref().is_none_or(|f| f.matches(&row.row)) {
            total += 1;
            if total == COUNT_LIMIT {
                break;
            }
        }
    }
    Ok(ApiResponse::text(StatusCode::OK, total.to_string()))
}

pub(super) fn collection(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let options = parse_query(&request.query, BAD_REQUEST)?;
    if options.skip.is_some() {
        return Err(bad_request(
            "The query parameter $skip is not supported: page with Prefer: odata.maxpagesize and @odata.nextLink.",
        ));
    }
    check_names(table, &options, SYSTEM_FIELDS, |n| {
        unknown_property(table, n)
    })?;
    let continued = options
        .skiptoken
        .as_deref()
        .is_some_and(|t| t.starts_with("ct:"));
    if options.deltatoken.is_some() || continued {
        if !table.change_tracking {
            // No token or page of this table was ever issued.
            return Err(match &options.deltatoken {
                Some(token) => delta_token_error(token),
                None => bad_request(
                    "$skiptoken is not one this service issued: follow @odata.nextLink as given",
                ),
            });
        }
        return delta(state, table, &options, request);
    }
    // A table without change tracking ignores the preference, as OData
    // lets a service do with any preference: the answer is a plain read,
    // without `Preference-Applied: odata.track-changes` or a delta link.
    if prefer(&request.headers, "odata.track-changes") && table.change_tracking {
        return delta(state, table, &options, request);
    }
    let size = page_size(request);
    let page = if super::page::scannable(&options) {
        super::page::scanned(state, table, &options, size)?
    } else {
        let rows = state.store.rows(&table.name).map_err(storage)?;
        super::page::in_memory(rows, &options, size)?
    };
    respond_page(state, table, page, &options, request, &table.name)
}

/// The rows a page holds: `Prefer: odata.maxpagesize`, at most 5,000.
pub(crate) fn page_size(request: &ApiRequest) -> usize {
    max_page_size(&request.headers)
        .unwrap_or(PAGE)
        .clamp(1, PAGE)
}

/// Answers a collection read with one page of it (a table's rows, or the
/// members of a collection-valued navigation property at `path`): with
/// `$count`, `$expand` and the next page's link.
pub(crate) fn respond_page(
    state: &SharedState,
    table: &TableDef,
    page: super::page::Page,
    options: &QueryOptions,
    request: &ApiRequest,
    path: &str,
) -> Result<ApiResponse, ApiError> {
    let expand = super::expand::parse(&state.metadata, table, options.expand.as_deref())?;
    let select = options.select.as_ref();
    let shape = Shape::Set {
        page: max_page_size(&request.headers).map(|n| n.clamp(1, PAGE)),
    };
    let expander = Expander::new(state, &expand, shape);
    let value: Vec<Value> = page
        .rows
        .iter()
        .map(|r| render_expanded(&expander, table, r, select).map(Value::Object))
        .collect::<Result<_, _>>()?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(state, table, select, &expand, "")),
    );
    if let (true, Some(total)) = (options.count, page.total) {
        let counted = total.min(COUNT_LIMIT);
        body.insert("@odata.count".into(), json!(counted));
        let crm = "Microsoft.Dynamics.CRM.";
        if includes_annotation(&request.headers, &format!("{crm}totalrecordcount")) {
            body.insert(format!("@{crm}totalrecordcount"), json!(counted));
        }
        if includes_annotation(
            &request.headers,
            &format!("{crm}totalrecordcountlimitexceeded"),
        ) {
            body.insert(
                format!("@{crm}totalrecordcountlimitexceeded"),
                json!(total > COUNT_LIMIT),
            );
        }
    }
    body.insert("value".into(), Value::Array(value));
    if let Some(token) = &page.next {
        let query = rebuild_query(&request.query, &format!("$skiptoken={token}"));
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{}/api/data/v9.2/{path}?{query}", state.base_url)),
        );
    }
    let mut response = ApiResponse::json(StatusCode::OK, Value::Object(body));
    if let Some(n) = max_page_size(&request.headers) {
        response = response.with_header(
            header::HeaderName::from_static("preference-applied"),
            format!("odata.maxpagesize={n}"),
        );
    }
    Ok(response)
}

fn delta_token_error(token: &str) -> ApiError {
    bad_request(format!(
        "The delta token '{token}' is invalid or has expired: start over with a request carrying Prefer: odata.track-changes."
    ))
}

/// Where a paged change tracking read resumes: `ct:<upto>:<cursor>`, where
/// the cursor is the last primary key sent (hex, initial read) or the last
/// change version sent (delta read).
struct DeltaPage {
    upto: u64,
    cursor: String,
}

fn parse_delta_page(token: &str) -> Option<DeltaPage> {
    let rest = token.strip_prefix("ct:")?;
    let (upto, cursor) = rest.split_once(':')?;
    Some(DeltaPage {
        upto: upto.parse().ok()?,
        cursor: cursor.to_string(),
    })
}

/// Change tracking reads. Within a page, changed rows come first, then
/// deletions; `Prefer: odata.maxpagesize` pages them with
/// `@odata.nextLink`, and the last page carries `@odata.deltaLink`.
fn delta(
    state: &SharedState,
    table: &TableDef,
    options: &QueryOptions,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    if options.filter.is_some()
        || !options.orderby.is_empty()
        || options.top.is_some()
        || options.expand.is_some()
    {
        return Err(bad_request(
            "Change tracking supports $select only: remove $filter, $orderby, $top and $expand from the request.",
        ));
    }
    let select = options.select.as_ref();
    let current = state.store.current_version().map_err(storage)?;
    let page = match &options.skiptoken {
        None => None,
        Some(t) => Some(parse_delta_page(t).filter(|p| p.upto <= current).ok_or_else(|| {
            bad_request(format!("$skiptoken '{t}' is not one this service issued: follow @odata.nextLink as given"))
        })?),
    };
    let upto = page.as_ref().map_or(current, |p| p.upto);
    let size = max_page_size(&request.headers)
        .unwrap_or(PAGE)
        .clamp(1, PAGE);
    let mut value = Vec::new();
    let mut deleted = Vec::new();
    let mut next_cursor = None;
    match &options.deltatoken {
        None => {
            let after = page
                .as_ref()
                .and_then(|p| hex::decode(&p.cursor).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let rows = state
                .store
                .rows_after(&table.name, after.as_deref(), size + 1)
                .map_err(storage)?;
            for (pk, row) in rows.iter().take(size) {
                value.push(Value::Object(render(table, row, select)));
                next_cursor = Some(hex::encode(pk));
            }
            if rows.len() <= size {
                next_cursor = None;
            }
        }
        Some(token) => {
            let since: u64 = token
                .split('!')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| delta_token_error(token))?;
            let purged = state.store.purged_version(&table.name).map_err(storage)?;
            if since > current || since < purged {
                return Err(delta_token_error(token));
            }
            let after = page
                .as_ref()
                .and_then(|p| p.cursor.parse().ok())
                .unwrap_or(since);
            let entries: Vec<_> = state
                .store
                .changes_after(&table.name, after)
                .map_err(storage)?
                .into_iter()
                .take_while(|(version, _)| *version <= upto)
                .collect();
            for (version, entry) in entries.iter().take(size) {
                if entry.deleted {
                    let id = entry
                        .key
                        .get(pk_name(table))
                        .cloned()
                        .unwrap_or(Value::Null);
                    deleted.push(json!({
                        "@odata.context": format!("{}/api/data/v9.2/$metadata#{}/$deletedEntity", state.base_url, table.name),
                        "id": id,
                        "reason": "deleted",
                    }));
                } else if let Some(row) =
                    state.store.get(&table.name, &entry.pk).map_err(storage)?
                {
                    value.push(Value::Object(render(table, &row, select)));
                }
                next_cursor = Some(version.to_string());
            }
            if entries.len() <= size {
                next_cursor = None;
            }
        }
    }
    value.extend(deleted);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(state, table, select, &Expand::default(), "/$delta")),
    );
    body.insert("value".into(), Value::Array(value));
    match next_cursor {
        Some(cursor) => {
            let mut extra = String::new();
            if let Some(token) = &options.deltatoken {
                let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
                extra.push_str(&format!("$deltatoken={encoded}&"));
            }
            extra.push_str(&format!("$skiptoken=ct:{upto}:{cursor}"));
            let query = rebuild_query(&request.query, &extra);
            body.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{}/api/data/v9.2/{}?{query}",
                    state.base_url, table.name
                )),
            );
        }
        None => {
            let stamp = Utc::now().format("%m/%d/%Y %H:%M:%S").to_string();
            let token = format!("{upto}!{stamp}");
            let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
            let query = rebuild_query(&request.query, &format!("$deltatoken={encoded}"));
            body.insert(
                "@odata.deltaLink".into(),
                json!(format!(
                    "{}/api/data/v9.2/{}?{query}",
                    state.base_url, table.name
                )),
            );
        }
    }
    Ok(
        ApiResponse::json(StatusCode::OK, Value::Object(body)).with_header(
            header::HeaderName::from_static("preference-applied"),
            "odata.track-changes",
        ),
    )
}
