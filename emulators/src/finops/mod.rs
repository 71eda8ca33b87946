//! Finance and Operations OData data entities under `/data/`.
//!
//! - Collections with `$select`, `$filter`, `$orderby`, `$top`, `$count`,
//!   `$skip`, paged by `@odata.nextLink` (`$skip`) at most 10,000 rows a page.
//!   Without `cross-company=true` only the default company's rows are seen.
//! - One row by full key: `CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`;
//!   a row of another company than the default needs `cross-company=true`.
//! - Create (POST, 201 with the row), update (PATCH, 204), delete (DELETE,
//!   204) by full key; each commit publishes a data event to subscribers
//!   (`events.rs`: the documented `RemoteExecutionContext`). Like the
//!   service, the entities offer no change feed over OData.

mod csdl;
pub(crate) mod ops;
mod page;
mod query;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::SharedState;
use super::http::{ApiError, ApiRequest, ApiResponse, QueryOptions, max_page_size, parse_query};
use super::rows::{
    KeySegment, check_names, parse_segment, primary_key, project, rebuild_query, with_first,
};
use super::store::{StoreError, StoredRow};
use axum::http::header;
use dualwrite::schema::TableDef;

/// Largest page the service returns.
const PAGE: usize = 10_000;

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    let code = match status {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::BAD_REQUEST => "BadRequest",
        _ => "Error",
    };
    ApiError::new(status, code, message)
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, message)
}

pub(crate) fn storage(e: StoreError) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Answers one request.
pub(crate) async fn handle(state: &SharedState, request: ApiRequest) -> ApiResponse {
    if request.path == "$batch" {
        return super::batch::handle(state, request).await;
    }
    if request.path == "$metadata" {
        return csdl::handle(state, &request);
    }
    if request.path.is_empty() && request.method == Method::GET {
        return service_document(state);
    }
    match route(state, &request).await {
        Ok(r) => r,
        Err(e) => e.to_response(),
    }
}

pub(crate) async fn route(
    state: &SharedState,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let (segment, rest) = request.path.split_once('/').unwrap_or((&request.path, ""));
    let (name, key) = parse_segment(segment, "BadRequest")?;
    let table = state.metadata.table(&name).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("No HTTP resource was found that matches the entity '{name}'."),
        )
    })?;
    state.security.authorize(table, request)?;
    if rest == "$count" && request.method == Method::GET && key.is_none() {
        let count = page::Visible::of(state, table, request)?.count(state)?;
        return Ok(ApiResponse::text(StatusCode::OK, count.to_string()));
    }
    if !rest.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("'{rest}' is not a resource of {name}"),
        ));
    }
    if let Some(key) = &key {
        check_company(state, table, key, request)?;
    }
    match (&request.method, key) {
        (&Method::GET, None) => collection(state, table, request),
        (&Method::GET, Some(key)) => {
            let options = parse_query(&request.query, "BadRequest")?;
            check_options(table, &options)?;
            let (pk, _) = full_key(table, &key)?;
            let row = state
                .store
                .get(&table.name, &pk)
                .map_err(storage)?
                .ok_or_else(|| not_found(table, &key))?;
            let select = options.select.as_ref();
            let body = with_first(
                "@odata.context",
                json!(context(state, table, select, "/$entity")),
                render(&row, select),
            );
            // The entity's ETag, the `@odata.etag` of its body (OData 4.0
            // Part 1 §8.3.1, §11.4.1.1).
            let tag = etag(&row);
            Ok(ApiResponse::json(StatusCode::OK, Value::Object(body))
                .with_header(header::ETAG, tag))
        }
        (_, key) => ops::execute(state, table, key, request).await,
    }
}

/// A row of another company than the default one is reached by key only
/// with `cross-company=true`, as on the service; otherwise it is not found.
fn check_company(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
    request: &ApiRequest,
) -> Result<(), ApiError> {
    let (Some(company_field), KeySegment::Named(parts)) = (&table.company_field, key) else {
        return Ok(());
    };
    let company = parts
        .iter()
        .find(|(name, _)| name == company_field)
        .and_then(|(_, v)| v.as_str())
        .map(str::to_lowercase);
    let cross_company = form_urlencoded::parse(request.query.as_bytes())
        .any(|(k, v)| k == "cross-company" && v.eq_ignore_ascii_case("true"));
    match company {
        Some(c) if c != state.default_company && !cross_company => Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "No {} row matches the key {key:?} in company {}: add ?cross-company=true to reach company {c}.",
                table.name, state.default_company
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn not_found(table: &TableDef, key: &KeySegment) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("No {} row matches the key {key:?}.", table.name),
    )
}

/// A row's ETag: `W/"<version>"`.
pub(crate) fn etag(row: &StoredRow) -> String {
    format!("W/\"{}\"", row.version)
}

/// `@odata.context` of `table`: with a `$select`, the projected columns
/// (`$metadata#CustomersV3(CustomerAccount,OrganizationName)`, OData JSON
/// Format 4.0 §10.9), then `suffix`.
pub(crate) fn context(
    state: &SharedState,
    table: &TableDef,
    select: Option<&Vec<String>>,
    suffix: &str,
) -> String {
    let list = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    format!(
        "{}/data/$metadata#{}{list}{suffix}",
        state.base_url, table.name
    )
}

pub(crate) fn render(row: &StoredRow, select: Option<&Vec<String>>) -> Map<String, Value> {
    let fields = project(&row.row, select, &[]);
    with_first("@odata.etag", Value::String(etag(row)), fields)
}

/// Resolves a full key (every key field named) to the encoded primary key.
pub(crate) fn full_key(
    table: &TableDef,
    key: &KeySegment,
) -> Result<(String, Map<String, Value>), ApiError> {
    let KeySegment::Named(parts) = key else {
        if let (KeySegment::Single(v), [field]) = (key, table.primary_key.as_slice()) {
            let mut row = Map::new();
            row.insert(field.clone(), v.clone());
            return primary_key(table, &row)
                .map(|pk| (pk, row))
                .ok_or_else(|| bad("the key is empty"));
        }
        return Err(bad(format!(
            "name every key field of {}: {}",
            table.name,
            table.primary_key.join(", ")
        )));
    };
    let mut row = Map::new();
    for (name, value) in parts {
        if !table.primary_key.contains(name) {
            return Err(bad(format!(
                "'{name}' is not a key field of {}: its key is {}",
                table.name,
                table.primary_key.join(", ")
            )));
        }
        if let Some(field) = table.field(name) {
            table.check_value(field, value).map_err(bad)?;
        }
        row.insert(name.clone(), normalize_company(table, name, value.clone()));
    }
    let pk = primary_key(table, &row).ok_or_else(|| {
        bad(format!(
            "name every key field of {}: {}",
            table.name,
            table.primary_key.join(", ")
        ))
    })?;
    Ok((pk, row))
}

pub(crate) fn normalize_company(table: &TableDef, name: &str, value: Value) -> Value {
    match (&table.company_field, value) {
        (Some(c), Value::String(s)) if c == name => Value::String(s.to_lowercase()),
        (_, v) => v,
    }
}

fn unknown_property(table: &TableDef, name: &str) -> ApiError {
    bad(format!(
        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.DataEntities.{}'.",
        table.entity_name()
    ))
}

/// Checks the names a query uses, and refuses `$expand`: the service
/// supports first-level `$expand` of navigation properties ("Open Data
/// Protocol (OData)", supported features:
/// <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>),
/// but the pages document none for the emulator's entities, so the
/// emulator declares none and answers as OData does for a name that is no
/// navigation property: an unknown one, or a structural property that
/// cannot be expanded.
fn check_options(table: &TableDef, options: &QueryOptions) -> Result<(), ApiError> {
    check_names(table, options, &[], |n| unknown_property(table, n))?;
    let Some(expand) = &options.expand else {
        return Ok(());
    };
    let first = expand
        .split([',', '(', '/'])
        .next()
        .unwrap_or_default()
        .trim();
    Err(match table.field(first) {
        Some(_) => bad(format!(
            "Property '{first}' on type 'Microsoft.Dynamics.DataEntities.{}' is not a navigation property or complex property. Only navigation properties can be expanded.",
            table.entity_name()
        )),
        None => unknown_property(table, first),
    })
}

fn collection(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let visible = page::Visible::of(state, table, request)?;
    let options = &visible.options;
    let skip = options.skip.unwrap_or(0);
    let page = max_page_size(&request.headers)
        .unwrap_or(PAGE)
        .clamp(1, PAGE);
    let (rows, more, total) = if visible.scannable() {
        let (rows, more) = visible.window(state, skip, page)?;
        (rows, more, None)
    } else {
        let mut rows = visible.all(state)?;
        let total = rows.len();
        if let Some(top) = options.top {
            rows.truncate(skip.saturating_add(top));
        }
        let more = skip.saturating_add(page) < rows.len();
        let rows: Vec<StoredRow> = rows.into_iter().skip(skip).take(page).collect();
        (rows, more, Some(total))
    };
    let value: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(render(r, options.select.as_ref())))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(state, table, options.select.as_ref(), "")),
    );
    if let (true, Some(total)) = (options.count, total) {
        body.insert("@odata.count".into(), json!(total));
    }
    body.insert("value".into(), Value::Array(value));
    if more {
        // The next page starts after this one, and `$top` counts what is
        // left of it, so the pages together hold what `$top` asked.
        let mut extra = format!("$skip={}", skip.saturating_add(page));
        if let Some(top) = options.top {
            extra.push_str(&format!("&$top={}", top.saturating_sub(page)));
        }
        let kept: Vec<&str> = request
            .query
            .split('&')
            .filter(|p| !p.starts_with("$top="))
            .collect();
        let query = rebuild_query(&kept.join("&"), &extra);
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{}/data/{}?{query}", state.base_url, table.name)),
        );
    }
    let mut response = ApiResponse::json(StatusCode::OK, Value::Object(body));
    if let Some(n) = max_page_size(&request.headers) {
        response = response.with_header(
            axum::http::HeaderName::from_static("preference-applied"),
            format!("odata.maxpagesize={}", n.clamp(1, PAGE)),
        );
    }
    Ok(response)
}

/// `GET /data/`: the OData service document (OData JSON Format 4.0 §5),
/// one `EntitySet` per public data entity.
fn service_document(state: &SharedState) -> ApiResponse {
    let value: Vec<Value> = state
        .metadata
        .tables()
        .map(|t| json!({"name": t.name, "kind": "EntitySet", "url": t.name}))
        .collect();
    ApiResponse::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}/data/$metadata", state.base_url), "value": value}),
    )
}
