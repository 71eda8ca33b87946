//! Finance and Operations OData data entities under `/data/`.
//!
//! - Collections with `$select`, `$filter`, `$orderby`, `$top`, `$count`,
//!   `$skip`, paged by `@odata.nextLink` (`$skip`) at most 10,000 rows a page.
//!   Without `cross-company=true` only the default company's rows are seen.
//! - One row by full key: `CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`.
//! - Create (POST, 201 with the row), update (PATCH, 204), delete (DELETE,
//!   204) by full key; each commit publishes a data event to subscribers.
//! - Row-version change tracking (an emulator extension standing in for a
//!   deployment's change tracking):
//!   `GET /data/{Entity}/$changes?since=N[&top=M]` answers
//!   `{"value":[{"RowVersion":…,"Operation":"Upsert"|"Delete","Key":{…},"Row":{…}}],"LatestRowVersion":…}`
//!   for rows changed after version `N`, deletions included.

use axum::http::{HeaderName, Method, StatusCode, header};
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sled::transaction::ConflictableTransactionError;

use super::SharedState;
use super::http::{ApiError, ApiRequest, ApiResponse, max_page_size, parse_query};
use super::metadata::TableDef;
use super::rows::{
    KeySegment, check_names, parse_segment, primary_key, project, rebuild_query, run_query,
};
use super::store::{StoreError, StoredRow, TxFailure};

/// Largest page the service returns.
const PAGE: usize = 10_000;

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    let code = match status {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::BAD_REQUEST => "BadRequest",
        _ => "Error",
    };
    ApiError::new(status, code, message)
}

fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, message)
}

fn storage(e: StoreError) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Answers one request.
pub(crate) async fn handle(state: &SharedState, request: ApiRequest) -> ApiResponse {
    match route(state, &request).await {
        Ok(r) => r,
        Err(e) => e.to_response(),
    }
}

async fn route(state: &SharedState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let (segment, rest) = request.path.split_once('/').unwrap_or((&request.path, ""));
    let (name, key) = parse_segment(segment, "BadRequest")?;
    let table = state.metadata.table(&name).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("No HTTP resource was found that matches the entity '{name}'."),
        )
    })?;
    if rest == "$changes" && request.method == Method::GET && key.is_none() {
        return changes(state, table, request);
    }
    if !rest.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("'{rest}' is not a resource of {name}"),
        ));
    }
    match (&request.method, key) {
        (&Method::GET, None) => collection(state, table, request),
        (&Method::GET, Some(key)) => {
            let (pk, _) = full_key(state, table, &key)?;
            let row = state
                .store
                .get(&table.name, &pk)
                .map_err(storage)?
                .ok_or_else(|| not_found(table, &key))?;
            let mut body = render(&row, None);
            body.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/data/$metadata#{}/$entity",
                    state.base_url, table.name
                )),
            );
            Ok(ApiResponse::json(StatusCode::OK, Value::Object(body)))
        }
        (&Method::POST, None) => create(state, table, request).await,
        (&Method::PATCH, Some(key)) => update(state, table, &key, request).await,
        (&Method::DELETE, Some(key)) => delete(state, table, &key).await,
        (method, _) => Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported on '{}'", request.path),
        )),
    }
}

fn not_found(table: &TableDef, key: &KeySegment) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("No {} row matches the key {key:?}.", table.name),
    )
}

fn render(row: &StoredRow, select: Option<&Vec<String>>) -> Map<String, Value> {
    let mut out = project(&row.row, select, &[]);
    out.insert(
        "@odata.etag".into(),
        Value::String(format!("W/\"{}\"", row.version)),
    );
    out
}

/// Resolves a full key (every key field named) to the encoded primary key.
fn full_key(
    state: &SharedState,
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
        row.insert(name.clone(), normalize_company(table, name, value.clone()));
    }
    let _ = state;
    let pk = primary_key(table, &row).ok_or_else(|| {
        bad(format!(
            "name every key field of {}: {}",
            table.name,
            table.primary_key.join(", ")
        ))
    })?;
    Ok((pk, row))
}

fn normalize_company(table: &TableDef, name: &str, value: Value) -> Value {
    match (&table.company_field, value) {
        (Some(c), Value::String(s)) if c == name => Value::String(s.to_lowercase()),
        (_, v) => v,
    }
}

fn collection(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let options = parse_query(&request.query, "BadRequest")?;
    check_names(table, &options, &[], |n| {
        bad(format!(
            "Could not find a property named '{n}' on type 'Microsoft.Dynamics.DataEntities.{}'.",
            table.name
        ))
    })?;
    let mut rows = state.store.rows(&table.name).map_err(storage)?;
    if let (Some(company), false) = (&table.company_field, options.cross_company) {
        rows.retain(|r| {
            r.row.get(company).and_then(Value::as_str) == Some(state.default_company.as_str())
        });
    }
    let mut rows = run_query(rows, &options);
    let skip = options.skip.unwrap_or(0);
    let total = rows.len();
    if let Some(top) = options.top {
        rows.truncate(skip.saturating_add(top));
    }
    let page = max_page_size(&request.headers)
        .unwrap_or(PAGE)
        .clamp(1, PAGE);
    let value: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(page)
        .map(|r| Value::Object(render(r, options.select.as_ref())))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/data/$metadata#{}", state.base_url, table.name)),
    );
    if options.count {
        body.insert("@odata.count".into(), json!(total));
    }
    body.insert("value".into(), Value::Array(value));
    if skip + page < rows.len() {
        let query = rebuild_query(&request.query, &format!("$skip={}", skip + page));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{}/data/{}?{query}", state.base_url, table.name)),
        );
    }
    Ok(ApiResponse::json(StatusCode::OK, Value::Object(body)))
}

fn parse_body(request: &ApiRequest) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(e) => Err(bad(format!("the request body is not valid JSON: {e}"))),
    }
}

/// Checks and copies body fields into the row.
fn apply_body(
    table: &TableDef,
    row: &mut Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    for (name, value) in body {
        if name.starts_with('@') || name.contains("@odata.") {
            continue;
        }
        let field = table.field(name).ok_or_else(|| {
            bad(format!("The property '{name}' does not exist on type 'Microsoft.Dynamics.DataEntities.{}'.", table.name))
        })?;
        let value = match (field.field_type, value) {
            // Accept the qualified form too: Microsoft.Dynamics.DataEntities.NoYes'Yes'.
            (super::metadata::FieldType::Enum, Value::String(s)) => match s.find('\'') {
                Some(i) if s.ends_with('\'') && i + 1 < s.len() => {
                    Value::String(s[i + 1..s.len() - 1].to_string())
                }
                _ => value.clone(),
            },
            _ => value.clone(),
        };
        table.check_value(field, &value).map_err(bad)?;
        row.insert(name.clone(), normalize_company(table, name, value));
    }
    Ok(())
}

fn event(
    table: &TableDef,
    kind: &str,
    version: u64,
    key: &Map<String, Value>,
    row: Option<&Map<String, Value>>,
) -> Value {
    let company = table
        .company_field
        .as_ref()
        .and_then(|c| key.get(c))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "BusinessEventId": format!("{}_{kind}", table.name),
        "EventId": uuid::Uuid::new_v4().to_string(),
        "EventTime": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "ControlNumber": version,
        "EntityName": table.name,
        "EventType": kind,
        "BusinessEventLegalEntity": company,
        "Key": key,
        "Row": row,
    })
}

fn key_of(table: &TableDef, row: &Map<String, Value>) -> Map<String, Value> {
    table
        .primary_key
        .iter()
        .filter_map(|k| row.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

fn committed(e: TxFailure<ApiError>) -> ApiError {
    match e {
        TxFailure::Abort(e) => e,
        TxFailure::Store(e) => storage(e),
    }
}

async fn create(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let body = parse_body(request)?;
    let mut row = Map::new();
    apply_body(table, &mut row, &body)?;
    if let Some(company) = &table.company_field {
        row.entry(company.clone())
            .or_insert_with(|| Value::String(state.default_company.clone()));
    }
    let pk = primary_key(table, &row).ok_or_else(|| {
        bad(format!(
            "a {} row needs every key field: {}",
            table.name,
            table.primary_key.join(", ")
        ))
    })?;
    state
        .hooks
        .check(
            &table.name,
            &json!({"table": table.name, "operation": "create", "row": row}),
            "BadRequest",
        )
        .await?;
    let stored = state
        .store
        .transact(|tx| {
            if tx.get::<ApiError>(&table.name, &pk)?.is_some() {
                return Err(ConflictableTransactionError::Abort(bad(format!(
                    "Write failed for table row of type '{}': a row with key {} already exists.",
                    table.name,
                    Value::Object(key_of(table, &row))
                ))));
            }
            tx.put::<DupAsBad>(&table.name, &pk, None, row.clone(), &Vec::new(), |_, _| {})
                .map_err(map_dup)
        })
        .map_err(committed)?;
    state.events.publish(
        &table.name,
        &event(
            table,
            "Created",
            stored.version,
            &key_of(table, &stored.row),
            Some(&stored.row),
        ),
    );
    let mut body = render(&stored, None);
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/data/$metadata#{}/$entity",
            state.base_url, table.name
        )),
    );
    Ok(ApiResponse::json(StatusCode::CREATED, Value::Object(body))
        .with_header(header::LOCATION, location(state, table, &stored.row)))
}

/// Error type for `Tx::put` on tables without alternate keys.
struct DupAsBad(ApiError);

impl From<super::store::WriteConflict> for DupAsBad {
    fn from(c: super::store::WriteConflict) -> Self {
        DupAsBad(bad(format!("{c:?}")))
    }
}

fn map_dup(e: ConflictableTransactionError<DupAsBad>) -> ConflictableTransactionError<ApiError> {
    match e {
        ConflictableTransactionError::Abort(DupAsBad(e)) => ConflictableTransactionError::Abort(e),
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
        ConflictableTransactionError::Storage(s) => ConflictableTransactionError::Storage(s),
    }
}

fn location(state: &SharedState, table: &TableDef, row: &Map<String, Value>) -> String {
    let parts: Vec<String> = table
        .primary_key
        .iter()
        .map(|k| match row.get(k) {
            Some(Value::String(s)) => format!("{k}='{}'", s.replace('\'', "''")),
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=null"),
        })
        .collect();
    format!(
        "{}/data/{}({})",
        state.base_url,
        table.name,
        parts.join(",")
    )
}

async fn update(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let (pk, key_row) = full_key(state, table, key)?;
    let body = parse_body(request)?;
    for k in &table.primary_key {
        if let Some(v) = body.get(k)
            && Some(&normalize_company(table, k, v.clone()))
                != key_row
                    .get(k)
                    .map(|x| normalize_company(table, k, x.clone()))
                    .as_ref()
        {
            return Err(bad(format!(
                "key field '{k}' cannot be changed by an update: delete the row and create it again"
            )));
        }
    }
    state
        .hooks
        .check(
            &table.name,
            &json!({"table": table.name, "operation": "update", "key": key_row, "row": body}),
            "BadRequest",
        )
        .await?;
    let stored = state
        .store
        .transact(|tx| {
            let Some(old) = tx.get::<ApiError>(&table.name, &pk)? else {
                return Err(ConflictableTransactionError::Abort(not_found(table, key)));
            };
            let mut row = old.row.clone();
            apply_body(table, &mut row, &body).map_err(ConflictableTransactionError::Abort)?;
            let empty = Vec::new();
            tx.put::<DupAsBad>(
                &table.name,
                &pk,
                Some((&old, &empty)),
                row,
                &empty,
                |_, _| {},
            )
            .map_err(map_dup)
        })
        .map_err(committed)?;
    state.events.publish(
        &table.name,
        &event(
            table,
            "Updated",
            stored.version,
            &key_row,
            Some(&stored.row),
        ),
    );
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT).with_header(
        HeaderName::from_static("etag"),
        format!("W/\"{}\"", stored.version),
    ))
}

async fn delete(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
) -> Result<ApiResponse, ApiError> {
    let (pk, key_row) = full_key(state, table, key)?;
    state
        .hooks
        .check(
            &table.name,
            &json!({"table": table.name, "operation": "delete", "key": key_row}),
            "BadRequest",
        )
        .await?;
    let version = state
        .store
        .transact(|tx| {
            let Some(old) = tx.get::<ApiError>(&table.name, &pk)? else {
                return Err(ConflictableTransactionError::Abort(not_found(table, key)));
            };
            tx.delete(&table.name, &pk, &old, &Vec::new(), key_of(table, &old.row))
        })
        .map_err(committed)?;
    state.events.publish(
        &table.name,
        &event(table, "Deleted", version, &key_row, None),
    );
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

fn changes(
    state: &SharedState,
    table: &TableDef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let mut since = 0u64;
    let mut top = PAGE;
    for (k, v) in form_urlencoded::parse(request.query.as_bytes()) {
        match k.as_ref() {
            "since" => {
                since = v
                    .parse()
                    .map_err(|_| bad(format!("since must be a row version number, got '{v}'")))?
            }
            "top" => {
                top = v
                    .parse::<usize>()
                    .map_err(|_| bad(format!("top must be a whole number, got '{v}'")))?
                    .clamp(1, PAGE)
            }
            _ => {}
        }
    }
    let purged = state.store.purged_version(&table.name).map_err(storage)?;
    if since < purged {
        return Err(error(
            StatusCode::GONE,
            format!(
                "row version {since} is older than the change tracking retention ({purged}): read the entity in full again"
            ),
        ));
    }
    let mut value = Vec::new();
    let mut latest = since;
    for (version, entry) in state
        .store
        .changes_after(&table.name, since)
        .map_err(storage)?
        .into_iter()
        .take(top)
    {
        latest = version;
        if entry.deleted {
            value.push(json!({"RowVersion": version, "Operation": "Delete", "Key": entry.key}));
        } else if let Some(row) = state.store.get(&table.name, &entry.pk).map_err(storage)? {
            value.push(json!({"RowVersion": version, "Operation": "Upsert", "Key": key_of(table, &row.row), "Row": row.row}));
        }
    }
    if value.is_empty() {
        latest = latest.max(state.store.current_version().map_err(storage)?);
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({"value": value, "LatestRowVersion": latest}),
    ))
}
