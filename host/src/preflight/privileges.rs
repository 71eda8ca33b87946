//! Whether a Dataverse identity holds the privileges its maps need, as
//! documented for checking a user's privileges: the names a table defines
//! (`EntityDefinitions(LogicalName='…')` `Privileges`), then the ones the
//! user holds through its roles and teams, at their effective depth
//! (`RetrieveUserSetOfPrivilegesByNames` on the `WhoAmI` user,
//! <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/security-access-coding>).
//!
//! A privilege missing is an error per map and table; one held below
//! `Global` (organization) depth is a warning, since the host then sees
//! or changes only the rows of its user, team or business unit.

use std::collections::BTreeMap;

use super::maps::Needs;
use super::system::{Access, LiveSystem};
use super::target::describe;
use crate::map::{Problem, ProblemCode};

/// Checks `needs` on the Dataverse system `live`.
pub(super) async fn check(live: &LiveSystem, needs: &Needs) -> Vec<Problem> {
    let Access::Dataverse { connector, me } = &live.access else {
        return Vec::new();
    };
    let system = &live.target.name;
    let mut problems = Vec::new();
    // (table, kind) → privilege name.
    let mut names: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (table, kinds) in needs {
        let Some(definition) = live.tables.iter().find(|t| &t.name == table) else {
            continue;
        };
        let defined = match live.reader.privileges(definition.entity_name()).await {
            Ok(defined) => defined,
            Err(error) => {
                problems.push(unchecked(system, table, kinds, &describe(&error)));
                continue;
            }
        };
        for kind in kinds.keys() {
            match defined.iter().find(|privilege| privilege.kind == *kind) {
                Some(privilege) => {
                    names.insert((table.as_str(), *kind), privilege.name.clone());
                }
                None => problems.extend(kinds[kind].iter().map(|map| {
                    problem(
                        ProblemCode::MissingPrivilege,
                        system,
                        map,
                        table,
                        format!("`{table}` defines no {kind} privilege, which the map needs"),
                        "check the table: the host needs to read and write it".into(),
                    )
                })),
            }
        }
    }
    if names.is_empty() {
        return problems;
    }
    let wanted: Vec<String> = names.values().cloned().collect();
    let held = match connector.user_privileges(&me.user_id, &wanted).await {
        Ok(held) => held,
        Err(error) => {
            for (table, kinds) in needs {
                problems.push(unchecked(system, table, kinds, &describe(&error)));
            }
            return problems;
        }
    };
    for ((table, kind), name) in &names {
        let maps = &needs[*table][*kind];
        let depth = held
            .iter()
            .filter(|privilege| privilege.name.eq_ignore_ascii_case(name))
            .map(|privilege| privilege.depth.as_str())
            .max_by_key(|depth| rank(depth));
        for map in maps {
            match depth {
                None => problems.push(problem(
                    ProblemCode::MissingPrivilege,
                    system,
                    map,
                    table,
                    format!(
                        "the identity (user {}) does not hold {name}: it may not {} `{table}`",
                        me.user_id,
                        verb(kind)
                    ),
                    format!(
                        "give the application user a security role with {kind} on `{table}` at organization level"
                    ),
                )),
                Some(depth) if depth != "Global" => problems.push(problem(
                    ProblemCode::PrivilegeDepth,
                    system,
                    map,
                    table,
                    format!(
                        "the identity (user {}) holds {name} at {depth} depth only: it can {} only some rows of `{table}`",
                        me.user_id,
                        verb(kind)
                    ),
                    format!(
                        "grant {kind} on `{table}` at organization (Global) level in the application user's security role"
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// The order of `PrivilegeDepth` members, widest last.
fn rank(depth: &str) -> u8 {
    match depth {
        "Basic" => 1,
        "Local" => 2,
        "Deep" => 3,
        "Global" => 4,
        _ => 0,
    }
}

fn verb(kind: &str) -> &'static str {
    match kind {
        "Read" => "read",
        "Create" => "create rows of",
        "Write" => "update",
        "Delete" => "delete rows of",
        "Append" => "set lookups on",
        "AppendTo" => "be the target of lookups to",
        _ => "use",
    }
}

fn problem(
    code: ProblemCode,
    system: &str,
    map: &str,
    table: &str,
    message: String,
    help: String,
) -> Problem {
    Problem::new(code, message, help)
        .in_map(map)
        .on_system(system)
        .in_table(table)
}

/// The privileges of `table` could not be checked: an error per map, as
/// the host cannot be shown to be allowed what it needs.
fn unchecked(
    system: &str,
    table: &str,
    kinds: &BTreeMap<&'static str, std::collections::BTreeSet<String>>,
    why: &str,
) -> Problem {
    let maps: Vec<&str> = kinds
        .values()
        .flatten()
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut problem = Problem::new(
        ProblemCode::MissingPrivilege,
        format!(
            "the privileges on `{table}` could not be checked ({why}); maps that need them: {}",
            maps.join(", ")
        ),
        "let the application user read table definitions and users (prvReadEntity, prvReadUser), or check its roles by hand",
    )
    .on_system(system)
    .in_table(table);
    if let [only] = maps.as_slice() {
        problem = problem.in_map(only);
    }
    problem
}
