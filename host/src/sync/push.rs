//! Dataverse push: the host registers its own webhook and the steps of the
//! maps it runs, so Dataverse posts each change of a mapped table to the
//! receiver (`receiver/dataverse.rs`) instead of waiting for the next
//! change tracking read.
//!
//! - [`ensure_endpoints`] (at start): for each Dataverse system with
//!   `events_secret_env`, when `engine.listen` and `engine.public_url` are
//!   set and an enabled map reads from it, the service endpoint
//!   `dualwrite {system}` posting to `{public_url}/events/{system}` with the
//!   secret in the `x-dualwrite-secret` header.
//! - [`register`] (a map's start): the map's steps `dualwrite {map}
//!   {message}` on that endpoint, the `Update` step filtered on the map's
//!   Dataverse columns. Done, the side's change tracking is read at
//!   `engine.catch_all_interval`.
//! - [`unregister`] (`MapCommand::Stop`): the map's steps removed.
//!
//! A registration that fails is logged and the map runs on polling
//! ([`Push::Refused`] says why); it never fails the engine or the map.

use std::collections::HashMap;

use serde::Serialize;

use crate::connector::{ConnectorError, StepMode};
use crate::map::{Plan, SystemKind};

use super::Shared;
use super::receiver::SECRET_HEADER;
use super::runtime::MapRuntime;
use super::shape::{self, Side};
use super::system::{Connector, System, primary_id};

/// How a map's Dataverse side learns of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "push", content = "reason")]
pub enum Push {
    /// No push configured: change tracking at `engine.poll_interval`.
    Off,
    /// Steps registered: pushed, with change tracking at
    /// `engine.catch_all_interval` as the catch-all.
    Registered,
    /// The registration failed (the reason says why and what to do):
    /// change tracking at `engine.poll_interval`.
    Refused(String),
}

/// A side's registered steps.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// The service endpoint.
    pub endpoint: String,
    /// The table's logical name, which its contexts carry.
    pub logical_name: String,
}

/// The name of the host's service endpoint of `system`.
pub fn endpoint_name(system: &str) -> String {
    format!("dualwrite {system}")
}

/// The name prefix of a map's steps (`{prefix} Create`, …).
pub fn steps_name(map: &str) -> String {
    format!("dualwrite {map}")
}

/// The Dataverse systems whose changes are to be pushed: those with a
/// shared secret that an enabled map reads from, when the receiver listens
/// at a public URL.
fn pushed_systems(plan: &Plan) -> Vec<&str> {
    if plan.engine.listen.is_none() || plan.engine.public_url.is_none() {
        return Vec::new();
    }
    plan.systems
        .values()
        .filter(|system| system.kind == SystemKind::Dataverse && system.events_secret.is_some())
        .filter(|system| {
            plan.maps.iter().filter(|m| m.enabled).any(|m| {
                Side::BOTH.into_iter().any(|side| {
                    m.side(side).system == system.name && shape::flows_to(m, side.other())
                })
            })
        })
        .map(|system| system.name.as_str())
        .collect()
}

/// Ensures the service endpoint of every pushed system: its id, or why
/// not (logged).
pub(super) async fn ensure_endpoints(
    plan: &Plan,
    systems: &HashMap<String, System>,
) -> HashMap<String, Result<String, String>> {
    let mut out = HashMap::new();
    let Some(public_url) = plan.engine.public_url.as_deref() else {
        return out;
    };
    for name in pushed_systems(plan) {
        let (Some(system), Some(plan_system)) = (systems.get(name), plan.systems.get(name)) else {
            continue;
        };
        let Connector::Dataverse(connector) = &system.connector else {
            continue;
        };
        let Some((variable, secret)) = &plan_system.events_secret else {
            continue;
        };
        let Some(secret) = secret else {
            out.insert(
                name.to_owned(),
                Err(format!(
                    "the environment variable `{variable}` (`systems.{name}.events_secret_env`) is not set; set it to the webhook's shared secret"
                )),
            );
            continue;
        };
        let url = format!("{}/events/{name}", public_url.trim_end_matches('/'));
        let result = connector
            .ensure_webhook(&endpoint_name(name), &url, SECRET_HEADER, secret.expose())
            .await
            .map_err(|error| reason(&error));
        match &result {
            Ok(id) => {
                tracing::info!(system = name, endpoint = %id, %url, "The webhook of the host is registered; Dataverse pushes its changes.")
            }
            Err(reason) => {
                tracing::warn!(system = name, %reason, "The webhook of the host could not be registered; its maps read Dataverse by change tracking at the poll interval.")
            }
        }
        out.insert(name.to_owned(), result);
    }
    out
}

fn reason(error: &ConnectorError) -> String {
    error.to_string()
}

/// The logical column names of `side` a change must touch to matter: the
/// mapped columns (a lookup by its own name) and those its filter reads.
fn filtering_attributes(runtime: &MapRuntime, side: Side) -> Vec<String> {
    let plan = &runtime.plan;
    let table = &plan.side(side).table;
    let id = primary_id(table);
    let mut columns: Vec<String> = shape::mappings(plan)
        .filter_map(|mapping| shape::field_on(mapping, side).map(str::to_owned))
        .chain(
            plan.side(side)
                .filter
                .iter()
                .flat_map(|filter| filter.field_names())
                .map(|name| {
                    match name
                        .strip_prefix('_')
                        .and_then(|n| n.strip_suffix("_value"))
                    {
                        Some(lookup) => lookup.to_owned(),
                        None => name.to_owned(),
                    }
                }),
        )
        .filter(|column| *column != id)
        .collect();
    columns.sort();
    columns.dedup();
    columns
}

/// How the steps of `side` run: synchronous with a PostImage of what the
/// side's capture reads, for the Dataverse side of a live map that flows
/// into finops; else asynchronous.
fn step_mode(runtime: &MapRuntime, side: Side) -> StepMode {
    let plan = &runtime.plan;
    if !plan.mode.is_live() || plan.side(side.other()).kind != SystemKind::Finops {
        return StepMode::Asynchronous;
    }
    let mut image: Vec<String> = runtime
        .side(side)
        .select
        .iter()
        .map(|column| {
            match column
                .strip_prefix('_')
                .and_then(|c| c.strip_suffix("_value"))
            {
                Some(lookup) => lookup.to_owned(),
                None => column.clone(),
            }
        })
        .collect();
    image.sort();
    image.dedup();
    StepMode::Synchronous { image }
}

/// Registers the steps of `runtime`'s Dataverse sides that flow and whose
/// system has an endpoint; records the outcome on the runtime.
pub(super) async fn register(shared: &Shared, runtime: &MapRuntime) {
    for side in Side::BOTH {
        let plan_side = runtime.plan.side(side);
        if !runtime.side(side).flows || plan_side.kind != SystemKind::Dataverse {
            continue;
        }
        let Some(endpoint) = shared.webhooks.get(&plan_side.system) else {
            continue;
        };
        let endpoint = match endpoint {
            Ok(endpoint) => endpoint,
            Err(reason) => {
                runtime.set_push(side, Push::Refused(reason.clone()), None);
                continue;
            }
        };
        let Connector::Dataverse(connector) = &shared.systems[&plan_side.system].connector else {
            continue;
        };
        let columns = filtering_attributes(runtime, side);
        let mode = step_mode(runtime, side);
        match connector
            .ensure_steps(
                endpoint,
                &steps_name(runtime.name()),
                &plan_side.table,
                &columns,
                &mode,
            )
            .await
        {
            Ok(steps) => {
                match mode {
                    StepMode::Asynchronous => {
                        tracing::info!(map = %runtime.name(), table = %plan_side.table, steps = steps.step_ids.len(), "Dataverse pushes the map's changes; change tracking is the catch-all.")
                    }
                    StepMode::Synchronous { .. } => {
                        tracing::info!(map = %runtime.name(), table = %plan_side.table, steps = steps.step_ids.len(), "The map is live: a Dataverse save commits only once it is written to finops; change tracking is the catch-all.")
                    }
                }
                let registration = Registration {
                    endpoint: endpoint.clone(),
                    logical_name: steps.logical_name,
                };
                runtime.set_push(side, Push::Registered, Some(registration));
            }
            Err(error) => {
                let reason = reason(&error);
                tracing::warn!(map = %runtime.name(), table = %plan_side.table, %reason, "The map's webhook steps could not be registered; the map reads Dataverse by change tracking at the poll interval.");
                runtime.set_push(side, Push::Refused(reason), None);
            }
        }
    }
}

/// Removes the steps `register` made for `runtime` (the map stops).
pub(super) async fn unregister(shared: &Shared, runtime: &MapRuntime) {
    for side in Side::BOTH {
        let Some(registration) = runtime.registration(side) else {
            continue;
        };
        let system = &runtime.plan.side(side).system;
        let Connector::Dataverse(connector) = &shared.systems[system].connector else {
            continue;
        };
        match connector
            .remove_steps(&registration.endpoint, &steps_name(runtime.name()))
            .await
        {
            Ok(()) => {
                tracing::info!(map = %runtime.name(), "The map's webhook steps are removed.");
                runtime.set_push(side, Push::Off, None);
            }
            Err(error) => {
                tracing::warn!(map = %runtime.name(), %error, "The map's webhook steps could not be removed; remove the steps named `{}` in Dataverse.", steps_name(runtime.name()));
            }
        }
    }
}
