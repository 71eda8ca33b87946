//! Webhook registrations of the Dataverse Web API: the entity sets
//! `serviceendpoints`, `sdkmessages`, `sdkmessagefilters` and
//! `sdkmessageprocessingsteps`, the tables an application registers a
//! webhook and its steps with.
//!
//! - `serviceendpoints`: `POST`, `GET` (with `$filter`, `$select`, `$top`),
//!   `GET (id)`, `PATCH (id)`, `DELETE (id)`. Only `contract` 8 (Webhook) is
//!   served, with `authtype` 4 (WebhookKey), 5 (HttpHeader) or 6
//!   (HttpQueryString); `authvalue` is written, never read back
//!   (`IsValidForRead` is false on the service).
//! - `sdkmessages`: `Create`, `Update` and `Delete`, read-only, with ids
//!   that never change; `sdkmessagefilters`: one per table and message,
//!   `primaryobjecttypecode` the table's logical name, read-only.
//! - `sdkmessageprocessingsteps`: `POST` with `sdkmessageid@odata.bind`,
//!   `sdkmessagefilterid@odata.bind` and
//!   `eventhandler_serviceendpoint@odata.bind`, `GET` with `$filter`,
//!   `DELETE (id)`, which deletes the step's images too. An asynchronous
//!   step (`mode` 1) must run in PostOperation (`stage` 40); a synchronous
//!   one (`mode` 0) is called during the write (`synchronous`).
//! - `sdkmessageprocessingstepimages`: the steps' images (`images`).
//!
//! Pages: <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>,
//! and the table references
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/serviceendpoint>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessage>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessagefilter>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessageprocessingstep>.
//!
//! `serviceendpoints` are written through `endpoints`.
//!
//! Endpoints, steps and images are rows of the store (they survive a
//! restart); the contexts asynchronous steps send are queued and
//! delivered by `webhooks`. Registering needs the privileges the service
//! names `prv{Create,Read,Write,Delete}ServiceEndpoint`,
//! `prv…SdkMessageProcessingStep` and `prv…SdkMessageProcessingStepImage`;
//! a client whose role lacks the access to the set is refused with a 403.

use axum::http::{HeaderName, Method, StatusCode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse, parse_query};
use super::super::rows::{KeySegment, parse_segment, project, run_query};
use super::super::security::{Access, user_id};
use super::super::store::{StoredRow, TxFailure, encode_key};
use super::endpoints;
use super::images::{self, IMAGES};
use super::read::storage;
use super::write::{commit_failed, now, parse_body};
use super::{BAD_REQUEST, NOT_FOUND, bad_request};
use dualwrite::schema::TableDef;

/// `serviceendpoints`.
pub(crate) const ENDPOINTS: &str = "serviceendpoints";
/// `sdkmessages`.
const MESSAGES: &str = "sdkmessages";
/// `sdkmessagefilters`.
const FILTERS: &str = "sdkmessagefilters";
/// `sdkmessageprocessingsteps`.
pub(crate) const STEPS: &str = "sdkmessageprocessingsteps";

/// The `contract` of a webhook.
pub(crate) const WEBHOOK: i64 = 8;
/// `authtype` 4: `?code=` in the query string.
pub(crate) const WEBHOOK_KEY: i64 = 4;
/// `authtype` 5: the settings as request headers.
pub(crate) const HTTP_HEADER: i64 = 5;
/// `authtype` 6: the settings as query parameters.
pub(crate) const HTTP_QUERY_STRING: i64 = 6;

/// The messages steps can be registered on here.
pub(crate) const MESSAGE_NAMES: [&str; 3] = ["Create", "Update", "Delete"];

/// The columns a client may write.
const STEP_COLUMNS: &[&str] = &[
    "name",
    "description",
    "stage",
    "mode",
    "rank",
    "supporteddeployment",
    "asyncautodelete",
    "filteringattributes",
    "sdkmessageid@odata.bind",
    "sdkmessagefilterid@odata.bind",
    "eventhandler_serviceendpoint@odata.bind",
];

/// True when `path` (below the service root) is one of the registration
/// sets.
pub(crate) fn handles(path: &str) -> bool {
    let set = path.split(['(', '/']).next().unwrap_or_default();
    [ENDPOINTS, MESSAGES, FILTERS, STEPS, IMAGES].contains(&set)
}

/// The id of message `name` (`Create`, `Update`, `Delete`): stable.
pub(crate) fn message_id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dualwrite-emulator:sdkmessage:{name}").as_bytes(),
    )
}

/// The id of the filter of `message` on the table `logical_name`: stable.
fn filter_id(message: &str, logical_name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dualwrite-emulator:sdkmessagefilter:{message}:{logical_name}").as_bytes(),
    )
}

/// The message and table a step is registered on.
pub(super) fn step_target<'s>(
    state: &'s SharedState,
    step: &Map<String, Value>,
) -> Option<(&'static str, &'s TableDef)> {
    let filter = step.get("_sdkmessagefilterid_value")?.as_str()?;
    filter_by_id(state, filter)
}

/// The store key of a registration row.
pub(crate) fn pk(id: &str) -> String {
    encode_key(&[&Value::String(id.to_lowercase())])
}

fn stored(row: Map<String, Value>) -> StoredRow {
    StoredRow { version: 0, row }
}

/// Every `sdkmessages` row.
fn messages() -> Vec<StoredRow> {
    MESSAGE_NAMES
        .iter()
        .map(|name| {
            stored(object(json!({
                "sdkmessageid": message_id(name).to_string(),
                "name": name,
                "categoryname": name,
            })))
        })
        .collect()
}

/// Every `sdkmessagefilters` row: each table of the metadata, each message.
fn filters(state: &SharedState) -> Vec<StoredRow> {
    state
        .metadata
        .tables()
        .flat_map(|table| {
            MESSAGE_NAMES.iter().map(move |message| {
                stored(object(json!({
                    "sdkmessagefilterid": filter_id(message, table.entity_name()).to_string(),
                    "_sdkmessageid_value": message_id(message).to_string(),
                    "primaryobjecttypecode": table.entity_name(),
                    "secondaryobjecttypecode": "none",
                    "iscustomprocessingstepallowed": true,
                })))
            })
        })
        .collect()
}

/// The filter with `id`: (message name, table).
fn filter_by_id<'s>(state: &'s SharedState, id: &str) -> Option<(&'static str, &'s TableDef)> {
    state.metadata.tables().find_map(|table| {
        MESSAGE_NAMES
            .iter()
            .find(|message| filter_id(message, table.entity_name()).to_string() == id)
            .map(|message| (*message, table))
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Answers a request on one of the four sets.
pub(crate) async fn handle(state: &SharedState, request: ApiRequest) -> ApiResponse {
    match answer(state, &request).await {
        Ok(response) => response,
        Err(error) => error.to_response(),
    }
}

async fn answer(state: &SharedState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let (set, key) = parse_segment(&request.path, BAD_REQUEST)?;
    let id = match &key {
        None => None,
        Some(KeySegment::Single(Value::String(id))) if Uuid::parse_str(id).is_ok() => {
            Some(id.to_lowercase())
        }
        Some(_) => {
            return Err(bad_request(format!(
                "{set} is addressed by its id: {set}(<guid>)"
            )));
        }
    };
    authorize(state, request, &set)?;
    match (set.as_str(), &request.method, id) {
        (MESSAGES, &Method::GET, id) => query(state, request, &set, messages(), id),
        (FILTERS, &Method::GET, id) => query(state, request, &set, filters(state), id),
        (ENDPOINTS | STEPS | IMAGES, &Method::GET, id) => {
            let rows = state.store.rows(&set).map_err(storage)?;
            query(state, request, &set, rows, id)
        }
        (ENDPOINTS, &Method::POST, None) => endpoints::create(state, request).await,
        (ENDPOINTS, &Method::PATCH, Some(id)) => endpoints::update(state, request, &id).await,
        (STEPS, &Method::POST, None) => create_step(state, request).await,
        (IMAGES, &Method::POST, None) => images::create(state, request).await,
        (ENDPOINTS | STEPS | IMAGES, &Method::DELETE, Some(id)) => delete(state, &set, &id).await,
        (_, method, _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            BAD_REQUEST,
            format!("{method} is not supported on '{}'", request.path),
        )),
    }
}

/// The privilege schema name of a set.
fn schema_name(set: &str) -> &'static str {
    match set {
        ENDPOINTS => "ServiceEndpoint",
        MESSAGES => "SdkMessage",
        FILTERS => "SdkMessageFilter",
        IMAGES => "SdkMessageProcessingStepImage",
        _ => "SdkMessageProcessingStep",
    }
}

/// Refuses a client whose role does not grant the access the method needs
/// on the set, naming the privilege as the service does.
fn authorize(state: &SharedState, request: &ApiRequest, set: &str) -> Result<(), ApiError> {
    let Some(client) = &request.client else {
        return Ok(());
    };
    let access = match request.method {
        Method::POST => Access::Create,
        Method::PATCH => Access::Write,
        Method::DELETE => Access::Delete,
        _ => Access::Read,
    };
    if state.security.holds(client, set, access).is_some() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "0x80040220",
        format!(
            "Principal user (Id={}, type=8) is missing prv{}{} privilege on OTC for entity '{}'.",
            user_id(client),
            access.privilege_type(),
            schema_name(set),
            set.trim_end_matches('s')
        ),
    ))
}

/// The primary key column of a set.
fn id_column(set: &str) -> String {
    format!("{}id", set.trim_end_matches('s'))
}

fn query(
    state: &SharedState,
    request: &ApiRequest,
    set: &str,
    rows: Vec<StoredRow>,
    id: Option<String>,
) -> Result<ApiResponse, ApiError> {
    let options = parse_query(&request.query, BAD_REQUEST)?;
    let id_column = id_column(set);
    let hidden = |mut row: Map<String, Value>| {
        // Written, never read back.
        row.remove("authvalue");
        row
    };
    let context = format!("{}/api/data/v9.2/$metadata#{set}", state.base_url);
    if let Some(id) = id {
        let row = rows
            .into_iter()
            .find(|row| row.row.get(&id_column).and_then(Value::as_str) == Some(id.as_str()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    NOT_FOUND,
                    format!(
                        "{} With Id = {id} Does Not Exist",
                        set.trim_end_matches('s')
                    ),
                )
            })?;
        let mut body = project(&hidden(row.row), options.select.as_ref(), &[&id_column]);
        body.insert(
            "@odata.context".into(),
            Value::String(format!("{context}/$entity")),
        );
        return Ok(ApiResponse::json(StatusCode::OK, Value::Object(body)));
    }
    let value: Vec<Value> = run_query(rows, &options)
        .into_iter()
        .skip(options.skip.unwrap_or(0))
        .take(options.top.unwrap_or(usize::MAX))
        .map(|row| {
            Value::Object(project(
                &hidden(row.row),
                options.select.as_ref(),
                &[&id_column],
            ))
        })
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({"@odata.context": context, "value": value}),
    ))
}

/// Keeps only `allowed` columns of `body`, refusing any other as the
/// service refuses an unknown property.
pub(super) fn checked(
    body: &Map<String, Value>,
    allowed: &[&str],
    entity: &str,
) -> Result<Map<String, Value>, ApiError> {
    for name in body.keys() {
        if name.starts_with('@') || allowed.contains(&name.as_str()) {
            continue;
        }
        return Err(bad_request(format!(
            "The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{entity}'. Make sure to only use property names that are defined by the type."
        )));
    }
    Ok(body
        .iter()
        .filter(|(name, _)| !name.starts_with('@'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

pub(super) fn integer(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad_request(format!("{name} must be a whole number, got {value}"))),
    }
}

pub(super) fn text<'b>(
    body: &'b Map<String, Value>,
    name: &str,
) -> Result<Option<&'b str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad_request(format!("{name} must be a string, got {other}"))),
    }
}

pub(super) fn created(state: &SharedState, set: &str, id: &str) -> ApiResponse {
    ApiResponse::empty(StatusCode::NO_CONTENT).with_header(
        HeaderName::from_static("odata-entityid"),
        format!("{}/api/data/v9.2/{set}({id})", state.base_url),
    )
}

pub(super) async fn put(
    state: &SharedState,
    set: &str,
    id: &str,
    row: Map<String, Value>,
) -> Result<(), ApiError> {
    let key = pk(id);
    state
        .store
        .transact_serial(|tx| {
            let previous = tx.get::<ApiError>(set, &key)?;
            let no_indexes = Vec::new();
            let previous = previous.as_ref().map(|old| (old, &no_indexes));
            tx.put::<ApiError>(set, &key, previous, row.clone(), &no_indexes, |_, _| {})?;
            Ok(())
        })
        .await
        .map_err(commit_failed)
}

pub(super) fn not_found(entity: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!("{entity} With Id = {id} Does Not Exist"),
    )
}

/// The id a `…@odata.bind` of `set` names: `/set(id)` or the full URL;
/// `entity` is the row being registered, for messages.
pub(super) fn bound_id(
    state: &SharedState,
    body: &Map<String, Value>,
    name: &str,
    set: &str,
    entity: &str,
) -> Result<String, ApiError> {
    let reference = text(body, name)?
        .ok_or_else(|| bad_request(format!("{entity} needs '{name}': \"/{set}(<guid>)\"")))?;
    let root = format!("{}/api/data/v9.2/", state.base_url);
    let path = reference
        .strip_prefix(&root)
        .unwrap_or(reference)
        .trim_start_matches('/');
    match parse_segment(path, BAD_REQUEST)? {
        (bound, Some(KeySegment::Single(Value::String(id))))
            if bound == set && Uuid::parse_str(&id).is_ok() =>
        {
            Ok(id.to_lowercase())
        }
        _ => Err(bad_request(format!(
            "{name}: '{reference}' does not name a row of {set}: write \"/{set}(<guid>)\""
        ))),
    }
}

async fn create_step(state: &SharedState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = checked(
        &parse_body(request)?,
        STEP_COLUMNS,
        "sdkmessageprocessingstep",
    )?;
    let name = text(&body, "name")?
        .ok_or_else(|| bad_request("sdkmessageprocessingstep needs 'name'"))?
        .to_owned();
    let stage = integer(&body, "stage")?
        .ok_or_else(|| bad_request("sdkmessageprocessingstep needs 'stage' (10, 20 or 40)"))?;
    let mode = integer(&body, "mode")?.unwrap_or(0);
    if ![10, 20, 40].contains(&stage) {
        return Err(bad_request(format!(
            "stage {stage} is not a pipeline stage: use 10 (PreValidation), 20 (PreOperation) or 40 (PostOperation)"
        )));
    }
    if ![0, 1].contains(&mode) {
        return Err(bad_request(format!(
            "mode {mode} is not 0 (synchronous) or 1 (asynchronous)"
        )));
    }
    if mode == 1 && stage != 40 {
        return Err(bad_request(
            "an asynchronous step (mode 1) runs only in PostOperation: set stage 40",
        ));
    }
    let step = "sdkmessageprocessingstep";
    let message = bound_id(state, &body, "sdkmessageid@odata.bind", MESSAGES, step)?;
    let filter = bound_id(state, &body, "sdkmessagefilterid@odata.bind", FILTERS, step)?;
    let endpoint = bound_id(
        state,
        &body,
        "eventhandler_serviceendpoint@odata.bind",
        ENDPOINTS,
        step,
    )?;
    let message_name = MESSAGE_NAMES
        .iter()
        .find(|m| message_id(m).to_string() == message)
        .ok_or_else(|| not_found("sdkmessage", &message))?;
    let (filter_message, table) =
        filter_by_id(state, &filter).ok_or_else(|| not_found("sdkmessagefilter", &filter))?;
    if filter_message != *message_name {
        return Err(bad_request(format!(
            "the sdkmessagefilter {filter} is a filter of {filter_message}, not of {message_name}: bind the filter of the step's message"
        )));
    }
    if state
        .store
        .get(ENDPOINTS, &pk(&endpoint))
        .map_err(storage)?
        .is_none()
    {
        return Err(not_found("serviceendpoint", &endpoint));
    }
    let filtering = text(&body, "filteringattributes")?.unwrap_or_default();
    for attribute in filtering
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        if table.field(attribute).is_none() && !super::SYSTEM_FIELDS.contains(&attribute) {
            return Err(bad_request(format!(
                "filteringattributes names '{attribute}', which is not a column of {}",
                table.entity_name()
            )));
        }
    }
    let id = Uuid::new_v4().to_string();
    let row = object(json!({
        "sdkmessageprocessingstepid": id,
        "name": name,
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "stage": stage,
        "mode": mode,
        "rank": integer(&body, "rank")?.unwrap_or(1),
        "supporteddeployment": integer(&body, "supporteddeployment")?.unwrap_or(0),
        "asyncautodelete": body.get("asyncautodelete").and_then(Value::as_bool).unwrap_or(false),
        "filteringattributes": (!filtering.is_empty()).then_some(filtering),
        "_sdkmessageid_value": message,
        "_sdkmessagefilterid_value": filter,
        "_eventhandler_value": endpoint,
        "statecode": 0,
        "statuscode": 1,
        "createdon": now(),
        "modifiedon": now(),
    }));
    put(state, STEPS, &id, row).await?;
    Ok(created(state, STEPS, &id))
}

async fn delete(state: &SharedState, set: &str, id: &str) -> Result<ApiResponse, ApiError> {
    let key = pk(id);
    if set == ENDPOINTS {
        let steps = state.store.rows(STEPS).map_err(storage)?;
        if steps
            .iter()
            .any(|step| step.row.get("_eventhandler_value").and_then(Value::as_str) == Some(id))
        {
            return Err(bad_request(format!(
                "the serviceendpoint {id} still has steps registered: delete its sdkmessageprocessingsteps first"
            )));
        }
    }
    let store = &state.store;
    // A step's images go with it, read while no write can add one.
    let gone = store
        .serial(|| {
            let images: Vec<String> = match set {
                STEPS => {
                    let rows: Vec<Map<String, Value>> = store
                        .rows(IMAGES)
                        .map_err(TxFailure::Store)?
                        .into_iter()
                        .map(|row| row.row)
                        .collect();
                    images::of_step(&rows, id)
                        .filter_map(|image| image.get("sdkmessageprocessingstepimageid"))
                        .filter_map(Value::as_str)
                        .map(pk)
                        .collect()
                }
                _ => Vec::new(),
            };
            store.transact(|tx| {
                let Some(old) = tx.get::<ApiError>(set, &key)? else {
                    return Ok(false);
                };
                tx.delete::<ApiError>(set, &key, &old, &Vec::new(), Map::new())?;
                for image in &images {
                    if let Some(old) = tx.get::<ApiError>(IMAGES, image)? {
                        tx.delete::<ApiError>(IMAGES, image, &old, &Vec::new(), Map::new())?;
                    }
                }
                Ok(true)
            })
        })
        .await
        .map_err(commit_failed)?;
    if !gone {
        return Err(not_found(set.trim_end_matches('s'), id));
    }
    if set == ENDPOINTS {
        state.webhooks.endpoint_removed(id);
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// The steps registered on `message` of `table`, as stored rows, with
/// their endpoint's id.
pub(crate) fn steps_for(
    state: &SharedState,
    table: &TableDef,
    message: &str,
) -> Vec<Map<String, Value>> {
    let filter = filter_id(message, table.entity_name()).to_string();
    match state.store.rows(STEPS) {
        Ok(rows) => rows
            .into_iter()
            .map(|row| row.row)
            .filter(|row| {
                row.get("_sdkmessagefilterid_value").and_then(Value::as_str) == Some(&filter)
                    && row.get("statecode").and_then(Value::as_i64) == Some(0)
            })
            .collect(),
        Err(error) => {
            tracing::error!(%error, "Could not read the registered steps.");
            Vec::new()
        }
    }
}
