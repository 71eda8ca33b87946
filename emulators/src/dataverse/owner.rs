//! Ownership and audit columns, which the service sets on every write.
//!
//! A user- or team-owned table (`account`, `contact`) has the Owner column
//! `ownerid` (Targets `systemuser, team`), set with
//! `ownerid@odata.bind: "/systemusers(<id>)"` or `"/teams(<id>)"` and by
//! default the calling user, and the read-only lookups derived from it:
//! `owninguser` (the owning user, or null), `owningteam` (the owning team, or
//! null) and `owningbusinessunit` (the owner's business unit). `createdby`
//! and `modifiedby` name the calling user. A client never writes those five
//! (account reference, columns `OwnerId`, `OwningUser`, `OwningTeam`,
//! `OwningBusinessUnit`, `CreatedBy`, `ModifiedBy`:
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/account>).
//!
//! The principals they point at are seeded at start, as every environment
//! has them ([`seed_principals`]): the root business unit, its default team
//! (`teamtype` 0, Owner; `isdefault` true) and one application user per
//! configured client (`accessmode` 4, Non-interactive), the `UserId` and
//! `BusinessUnitId` that `WhoAmI` answers
//! (systemuser, businessunit and team references:
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/systemuser>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/businessunit>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/team>).

use serde_json::{Map, Value, json};

use super::super::State;
use super::super::security;
use super::super::store::{StoreError, Tx, WriteConflict};
use super::write::{Abort, guid_pk};
use dualwrite::schema::TableDef;

/// The Owner column.
pub(crate) const OWNER: &str = "ownerid";

/// The entity sets the Owner column may point at.
pub(crate) const OWNER_TARGETS: [&str; 2] = ["systemusers", "teams"];

/// The lookups the service sets and a client may not.
const SET_BY_SERVICE: [&str; 5] = [
    "owninguser",
    "owningteam",
    "owningbusinessunit",
    "createdby",
    "modifiedby",
];

const USERS: &str = "systemusers";
const TEAMS: &str = "teams";
const UNITS: &str = "businessunits";

/// True when the client may not set the lookup `name` of `table`.
pub(crate) fn set_by_service(table: &TableDef, name: &str) -> bool {
    SET_BY_SERVICE.contains(&name) && table.field(name).is_some()
}

/// The entity sets a lookup of `table` may point at, when it is the Owner
/// column.
pub(crate) fn targets(table: &TableDef, lookup: &str) -> Option<&'static [&'static str]> {
    (lookup == OWNER && table.field(OWNER).is_some()).then_some(OWNER_TARGETS.as_slice())
}

fn lookup_value(name: &str) -> String {
    format!("_{name}_value")
}

/// Sets the audit columns and, on a table with an owner, `ownerid` (the
/// caller when nothing else was bound) and the owning columns it implies.
pub(crate) fn stamp(
    state: &State,
    tx: &Tx<'_>,
    table: &TableDef,
    row: &mut Map<String, Value>,
    caller: Option<&str>,
    created: bool,
) -> Result<(), Abort> {
    let user = caller.map(|client| json!(security::user_id(client)));
    if let Some(user) = &user {
        if created && table.field("createdby").is_some() {
            row.insert(lookup_value("createdby"), user.clone());
        }
        if table.field("modifiedby").is_some() {
            row.insert(lookup_value("modifiedby"), user.clone());
        }
    }
    if table.field(OWNER).is_none() {
        return Ok(());
    }
    let owner_column = lookup_value(OWNER);
    if row.get(&owner_column).is_none_or(Value::is_null)
        && let Some(user) = user
    {
        row.insert(owner_column.clone(), user);
    }
    let owner = row
        .get(&owner_column)
        .and_then(Value::as_str)
        .map(str::to_string);
    let (owning_user, owning_team, unit) = match owner {
        None => (Value::Null, Value::Null, Value::Null),
        Some(id) => match principal(state, tx, &id)? {
            Some((USERS, unit)) => (json!(id), Value::Null, unit),
            Some((_, unit)) => (Value::Null, json!(id), unit),
            None => (Value::Null, Value::Null, Value::Null),
        },
    };
    for (name, value) in [
        ("owninguser", owning_user),
        ("owningteam", owning_team),
        ("owningbusinessunit", unit),
    ] {
        if table.field(name).is_some() {
            row.insert(lookup_value(name), value);
        }
    }
    Ok(())
}

/// The set (`systemusers` or `teams`) and business unit of the principal `id`.
fn principal(state: &State, tx: &Tx<'_>, id: &str) -> Result<Option<(&'static str, Value)>, Abort> {
    for set in OWNER_TARGETS {
        if state.metadata.table(set).is_none() {
            continue;
        }
        if let Some(stored) = tx.get(set, &guid_pk(id))? {
            let unit = stored
                .row
                .get(&lookup_value("businessunitid"))
                .cloned()
                .unwrap_or(Value::Null);
            return Ok(Some((set, unit)));
        }
    }
    Ok(None)
}

/// The id of the root business unit's default team.
pub(crate) fn default_team_id() -> uuid::Uuid {
    security::name_id("team", "root")
}

struct Conflict;

impl From<WriteConflict> for Conflict {
    fn from(_: WriteConflict) -> Self {
        Conflict
    }
}

/// Writes the root business unit, its default team and an application user
/// per client when they are missing (a store made before keeps what it has).
pub(crate) fn seed_principals(state: &State, clients: &[String]) -> Result<(), StoreError> {
    let unit = security::business_unit_id().to_string();
    let mut rows = vec![
        (
            UNITS,
            "businessunitid",
            json!({"businessunitid": unit, "name": "dualwrite emulator", "isdisabled": false,
                   "_parentbusinessunitid_value": null}),
        ),
        (
            TEAMS,
            "teamid",
            json!({"teamid": default_team_id().to_string(), "name": "dualwrite emulator",
                   "teamtype": 0, "isdefault": true, "membershiptype": 0,
                   "_businessunitid_value": unit}),
        ),
    ];
    for client in clients {
        let mut user = json!({
            "systemuserid": security::user_id(client).to_string(),
            "fullname": format!("# {client}"),
            "accessmode": 4,
            "isdisabled": false,
            "_businessunitid_value": unit,
        });
        if let Ok(app) = uuid::Uuid::parse_str(client) {
            user["applicationid"] = json!(app.to_string());
        }
        rows.push((USERS, "systemuserid", user));
    }
    for (set, id_field, row) in rows {
        if state.metadata.table(set).is_none() {
            continue;
        }
        let Value::Object(mut row) = row else {
            continue;
        };
        let id = row
            .get(id_field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let pk = guid_pk(&id);
        if state.store.get(set, &pk)?.is_some() {
            continue;
        }
        row.insert("createdon".into(), json!("2024-01-01T00:00:00Z"));
        row.insert("modifiedon".into(), json!("2024-01-01T00:00:00Z"));
        let written = state.store.transact(|tx| {
            tx.put::<Conflict>(set, &pk, None, row.clone(), &Vec::new(), |r, v| {
                r.insert("versionnumber".into(), json!(v));
            })
        });
        match written {
            Ok(_) | Err(super::super::store::TxFailure::Abort(Conflict)) => {}
            Err(super::super::store::TxFailure::Store(e)) => return Err(e),
        }
    }
    Ok(())
}
