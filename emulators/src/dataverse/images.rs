//! Step images of the Dataverse emulator (`sdkmessageprocessingstepimages`):
//! a snapshot of the row before (PreImage) or after (PostImage) the
//! operation that a step's context carries, so its handler gets the whole
//! row and not only the columns the request set (the table reference
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/sdkmessageprocessingstepimage>,
//! and "Understand the execution context", entity images,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/understand-the-data-context>).
//!
//! - `POST` with `sdkmessageprocessingstepid@odata.bind`, `name`,
//!   `entityalias` (the key of the image in the context), `imagetype` (0
//!   PreImage, 1 PostImage, 2 Both), `messagepropertyname` (`Target`; `Id`
//!   too for `Create`) and `attributes` (comma-separated columns of the
//!   step's table; empty or absent: every column). The service has no
//!   PreImage of a `Create` (the row is not there yet) nor a PostImage of a
//!   `Delete` (it is gone), so those are refused, as is a second image of
//!   one kind under the same alias on a step. `GET` with `$filter`,
//!   `$select`; `GET (id)`; `DELETE (id)`. Deleting a step deletes its
//!   images (`steps`).
//! - [`entities`]: a context's `PreEntityImages` and `PostEntityImages`,
//!   `[{"key": <entityalias>, "value": <Entity>}]`, each `Entity` built as
//!   the `Target` is (lookups as `EntityReference`s, the primary id,
//!   `RowVersion` the row's version) with the image's columns of the row
//!   before or after the operation. A PostImage is given to a step in
//!   PostOperation (stage 40) only, as the service does; a synchronous
//!   one gets the row as the write's dry run made it, which is what
//!   commits. `versionnumber` and `modifiedon` are in an image of every
//!   column, or in one that names them.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::super::store::StoredRow;
use super::read::storage;
use super::steps::{self, STEPS, bound_id, checked, created, integer, not_found, pk, put, text};
use super::webhooks::{self, Change};
use super::write::{now, parse_body};
use super::{SYSTEM_FIELDS, bad_request};
use dualwrite::schema::TableDef;

/// `sdkmessageprocessingstepimages`.
pub(crate) const IMAGES: &str = "sdkmessageprocessingstepimages";

/// The logical name of an image, for messages.
const ENTITY: &str = "sdkmessageprocessingstepimage";

/// The columns a client may write.
const COLUMNS: &[&str] = &[
    "name",
    "description",
    "entityalias",
    "imagetype",
    "messagepropertyname",
    "attributes",
    "sdkmessageprocessingstepid@odata.bind",
];

/// `imagetype` 0.
const PRE_IMAGE: i64 = 0;
/// `imagetype` 1.
const POST_IMAGE: i64 = 1;
/// `imagetype` 2.
const BOTH: i64 = 2;

/// The column of an image that names its step.
const STEP_COLUMN: &str = "_sdkmessageprocessingstepid_value";

/// The columns an `attributes` list names; none for every column.
fn columns(attributes: &str) -> Vec<&str> {
    attributes
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

fn required<'b>(body: &'b Map<String, Value>, name: &str) -> Result<&'b str, ApiError> {
    text(body, name)?
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            bad_request(format!(
                "{ENTITY} needs '{name}': an image is registered with name, entityalias, imagetype, messagepropertyname and sdkmessageprocessingstepid@odata.bind"
            ))
        })
}

/// `POST sdkmessageprocessingstepimages`.
pub(super) async fn create(
    state: &SharedState,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let body = checked(&parse_body(request)?, COLUMNS, ENTITY)?;
    let name = required(&body, "name")?.to_owned();
    let alias = required(&body, "entityalias")?.to_owned();
    let property = required(&body, "messagepropertyname")?.to_owned();
    let imagetype = integer(&body, "imagetype")?.ok_or_else(|| {
        bad_request(format!(
            "{ENTITY} needs 'imagetype': 0 (PreImage), 1 (PostImage) or 2 (Both)"
        ))
    })?;
    if ![PRE_IMAGE, POST_IMAGE, BOTH].contains(&imagetype) {
        return Err(bad_request(format!(
            "imagetype {imagetype} is not an image type: use 0 (PreImage), 1 (PostImage) or 2 (Both)"
        )));
    }
    let step_id = bound_id(
        state,
        &body,
        "sdkmessageprocessingstepid@odata.bind",
        STEPS,
        ENTITY,
    )?;
    let step = state
        .store
        .get(STEPS, &pk(&step_id))
        .map_err(storage)?
        .ok_or_else(|| not_found("sdkmessageprocessingstep", &step_id))?;
    let (message, table) = steps::step_target(state, &step.row).ok_or_else(|| {
        bad_request(format!(
            "the sdkmessageprocessingstep {step_id} is on no table of this emulator: register the step again"
        ))
    })?;
    check_image(message, imagetype, &property)?;
    let attributes = text(&body, "attributes")?.unwrap_or_default();
    for column in columns(attributes) {
        if table.field(column).is_none() && !SYSTEM_FIELDS.contains(&column) {
            return Err(bad_request(format!(
                "attributes names '{column}', which is not a column of {}: name columns of the step's table, or leave attributes empty for every column",
                table.entity_name()
            )));
        }
    }
    let kinds = |kind: i64| match kind {
        PRE_IMAGE => vec![PRE_IMAGE],
        POST_IMAGE => vec![POST_IMAGE],
        _ => vec![PRE_IMAGE, POST_IMAGE],
    };
    for image in of_step(&registered_rows(state)?, &step_id) {
        let same_alias = image.get("entityalias").and_then(Value::as_str) == Some(&alias);
        let other = image
            .get("imagetype")
            .and_then(Value::as_i64)
            .unwrap_or(PRE_IMAGE);
        if same_alias && kinds(other).iter().any(|k| kinds(imagetype).contains(k)) {
            return Err(bad_request(format!(
                "the sdkmessageprocessingstep {step_id} already has an image of that kind aliased '{alias}': use another entityalias or delete that image"
            )));
        }
    }
    let id = Uuid::new_v4().to_string();
    let row = match json!({
        "sdkmessageprocessingstepimageid": id,
        "name": name,
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "entityalias": alias,
        "imagetype": imagetype,
        "messagepropertyname": property,
        "attributes": (!attributes.trim().is_empty()).then_some(attributes),
        "_sdkmessageprocessingstepid_value": step_id,
        "createdon": now(),
        "modifiedon": now(),
    }) {
        Value::Object(row) => row,
        _ => Map::new(),
    };
    put(state, IMAGES, &id, row).await?;
    Ok(created(state, IMAGES, &id))
}

/// Refuses an image the step's message has not.
fn check_image(message: &str, imagetype: i64, property: &str) -> Result<(), ApiError> {
    let properties: &[&str] = match message {
        "Create" => &["Target", "Id"],
        _ => &["Target"],
    };
    if !properties.contains(&property) {
        return Err(bad_request(format!(
            "messagepropertyname '{property}' is not a property of the {message} message: use {}",
            properties.join(" or ")
        )));
    }
    match (message, imagetype) {
        ("Create", PRE_IMAGE | BOTH) => Err(bad_request(
            "a Create step has no PreImage (the row does not exist before it): register a PostImage (imagetype 1)",
        )),
        ("Delete", POST_IMAGE | BOTH) => Err(bad_request(
            "a Delete step has no PostImage (the row is gone after it): register a PreImage (imagetype 0)",
        )),
        _ => Ok(()),
    }
}

fn registered_rows(state: &SharedState) -> Result<Vec<Map<String, Value>>, ApiError> {
    Ok(state
        .store
        .rows(IMAGES)
        .map_err(storage)?
        .into_iter()
        .map(|row| row.row)
        .collect())
}

/// Every registered image (none, logged, when they cannot be read).
pub(crate) fn registered(state: &SharedState) -> Vec<Map<String, Value>> {
    registered_rows(state).unwrap_or_else(|error| {
        tracing::error!(%error, "Could not read the registered step images.");
        Vec::new()
    })
}

/// The images of step `step_id` among `images`.
pub(crate) fn of_step<'i>(
    images: &'i [Map<String, Value>],
    step_id: &'i str,
) -> impl Iterator<Item = &'i Map<String, Value>> {
    images
        .iter()
        .filter(move |image| image.get(STEP_COLUMN).and_then(Value::as_str) == Some(step_id))
}

/// The `PreEntityImages` and `PostEntityImages` of `step`'s context for
/// `change`, from the registered `images`.
pub(crate) fn entities(
    state: &SharedState,
    change: &Change<'_>,
    step: &Map<String, Value>,
    images: &[Map<String, Value>],
) -> (Value, Value) {
    let step_id = step
        .get("sdkmessageprocessingstepid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let post_operation = step.get("stage").and_then(Value::as_i64) == Some(40);
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    for image in of_step(images, step_id) {
        let alias = image
            .get("entityalias")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = image
            .get("imagetype")
            .and_then(Value::as_i64)
            .unwrap_or(PRE_IMAGE);
        let wanted = columns(
            image
                .get("attributes")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let snapshot = |row: &StoredRow| json!({"key": alias, "value": snapshot(state, change.table, row, change.id, &wanted)});
        if let (PRE_IMAGE | BOTH, Some(row)) = (kind, change.before) {
            pre.push(snapshot(row));
        }
        if let (POST_IMAGE | BOTH, Some(row), true) = (kind, change.after, post_operation) {
            post.push(snapshot(row));
        }
    }
    (Value::Array(pre), Value::Array(post))
}

/// The `Entity` of an image: the `wanted` columns of `row` with its
/// primary id, or, with none wanted, every column it holds a value of.
fn snapshot(
    state: &SharedState,
    table: &TableDef,
    row: &StoredRow,
    id: &str,
    wanted: &[&str],
) -> Value {
    let pk = table.primary_key.first().map_or("", String::as_str);
    let mut columns: Vec<&str> = vec![pk];
    if wanted.is_empty() {
        let declared = table.fields.iter().map(|field| field.name.as_str());
        for column in declared.chain(SYSTEM_FIELDS.iter().copied()) {
            if !columns.contains(&column)
                && !webhooks::attribute(state, table, row, column).is_null()
            {
                columns.push(column);
            }
        }
    } else {
        for column in wanted {
            if !columns.contains(column) {
                columns.push(column);
            }
        }
    }
    webhooks::entity(state, table, columns, row, id)
}
