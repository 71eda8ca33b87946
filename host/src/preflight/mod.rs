//! The preflight (`dualwrite check`): everything that would stop a map,
//! found against the live systems of a config file before go-live.
//!
//! [`check_file`] gives a [`Report`]: a [`SystemSummary`] per system and
//! every [`Problem`], each with a stable code:
//!
//! 1. Per system, concurrently (`system`): it answers over TLS that
//!    verifies (an unauthenticated `GET` of the service root), a token can
//!    be had and stands for a user (Dataverse `WhoAmI`), its tables can be
//!    read (`EntityDefinitions`, `$metadata`). The first step that fails
//!    is the system's problem (`DW025`–`DW027`, `DW031`).
//! 2. The config is validated against the tables read (what
//!    `map validate --live` does: tables, fields, keys, lookups, plugins);
//!    a system that was not read is not checked for tables.
//! 3. Per enabled map (`maps`): change tracking on the Dataverse tables it
//!    reads (`DW028`), its key an alternate key of the Dataverse table
//!    (`DW029`), its finops entity public (`DW030`) and readable (`DW031`).
//! 4. Per Dataverse system (`privileges`): the privileges its maps need,
//!    held by the `WhoAmI` user at organization depth (`DW031`, `DW032`).
//!
//! - [`SystemTarget`]: how to reach one system of a config (service URL,
//!   client credentials, quick retries), shared with `map validate --live`.
//!
//! Boundary: the preflight reads the config and talks to the services
//! through the connectors, with reads only: it writes nothing to either
//! service and never opens the checkpoint store.

mod maps;
mod privileges;
mod system;
mod target;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::{BuildOptions, Config};
use crate::map::{LiveCatalogue, NoCatalogue, Problem, ProblemCode};

pub use system::SystemSummary;
pub use target::{SystemTarget, TargetError, describe, quick_options, service_url};

/// What the preflight found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config file.
    pub file: String,
    /// No error-level problem: the maps can go live.
    pub ready: bool,
    /// Each system, in name order.
    pub systems: Vec<SystemSummary>,
    /// How many maps the config has.
    pub maps_total: usize,
    /// The maps checked against at least one live system.
    pub maps_checked: Vec<String>,
    /// Every problem, errors first.
    pub problems: Vec<Problem>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// True when a problem stops a map.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Runs every check of the config at `path`; secrets come from `env`.
/// Cancelled, it stops; nothing is written anywhere.
pub async fn check_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Report {
    let file = path.display().to_string();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            let problem = Problem::new(
                ProblemCode::ConfigSyntax,
                error.to_string(),
                "fix the file; every key is listed in the config section of the README",
            );
            return finish(file, 0, Vec::new(), Vec::new(), vec![problem], Vec::new());
        }
    };
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut problems = Vec::new();
    let mut summaries = Vec::new();
    let mut checks = tokio::task::JoinSet::new();
    for (name, system) in &config.systems {
        match SystemTarget::from_config(name, system, &base_dir, env) {
            Ok(target) => {
                checks.spawn(system::check(target));
            }
            // Validation reports an unreadable `ca_file` (DW024).
            Err(TargetError::CaFile { .. }) => summaries.push(unreached(name, system)),
            Err(error) => {
                summaries.push(unreached(name, system));
                problems.push(
                    Problem::new(
                        ProblemCode::NoToken,
                        format!("no token can be had: {error}"),
                        format!(
                            "give `[systems.{name}]` an `auth` and set its secret's variable where the host runs"
                        ),
                    )
                    .on_system(name)
                    .at_field(format!("systems.{name}.auth")),
                );
            }
        }
    }
    let mut live = BTreeMap::new();
    while let Some(joined) = checks.join_next().await {
        // A system check that panicked has nothing to report but that.
        let Ok(checked) = joined else { continue };
        summaries.push(checked.summary);
        problems.extend(checked.problems);
        if let Some(system) = checked.live {
            live.insert(system.target.name.clone(), system);
        }
    }
    summaries.sort_by(|a, b| a.name.cmp(&b.name));

    let mut catalogue = LiveCatalogue::new(Box::new(NoCatalogue));
    for (name, system) in &config.systems {
        match live.get(name) {
            Some(read) => catalogue.add(system.kind, read.tables.clone()),
            None => catalogue.add_fallback(system.kind),
        }
    }
    let found = maps::check(&config, &live).await;
    let validation = match config.build(&BuildOptions {
        registry: Default::default(),
        file: file.clone(),
        base_dir,
        catalogue: &catalogue,
        env,
    }) {
        Ok(plan) => plan.warnings,
        Err(problems) => problems,
    };
    // Maps with a side on a system that was not read: where their lookups
    // point is not known, which says nothing about the map.
    let unread: Vec<&str> = config
        .maps
        .iter()
        .filter(|map| {
            [&map.left, &map.right]
                .iter()
                .any(|side| !live.contains_key(&side.system))
        })
        .map(|map| map.name.as_str())
        .collect();
    problems.extend(validation.into_iter().filter(|problem| {
        // A secret that is not set is a `no-token` error here, and a finops
        // entity missing from `$metadata` is `entity-not-public`.
        let secret = problem.code == ProblemCode::SecretUnset
            && problem
                .field
                .as_deref()
                .is_some_and(|field| field.ends_with(".auth.client_secret_env"));
        let hidden = problem.code == ProblemCode::UnknownTable
            && found.not_public.iter().any(|(map, field)| {
                problem.map.as_deref() == Some(map) && problem.field.as_deref() == Some(field)
            });
        let unknown_target = problem.code == ProblemCode::UnresolvedLookup
            && problem
                .map
                .as_deref()
                .is_some_and(|map| unread.contains(&map));
        !secret && !hidden && !unknown_target
    }));
    problems.extend(found.problems);
    for (name, needs) in &found.needs {
        if let Some(system) = live.get(name) {
            problems.extend(privileges::check(system, needs).await);
        }
    }
    finish(
        file,
        config.maps.len(),
        summaries,
        found.checked,
        problems,
        found.notes,
    )
}

fn unreached(name: &str, system: &crate::config::SystemConfig) -> SystemSummary {
    SystemSummary {
        name: name.to_string(),
        kind: system.kind,
        url: service_url(system.kind, &system.url).1,
        answered: false,
        user_id: None,
        tables: None,
    }
}

fn finish(
    file: String,
    maps_total: usize,
    systems: Vec<SystemSummary>,
    maps_checked: Vec<String>,
    mut problems: Vec<Problem>,
    notes: Vec<String>,
) -> Report {
    for problem in &mut problems {
        problem.file.clone_from(&file);
    }
    problems.sort_by_key(|problem| std::cmp::Reverse(problem.severity));
    Report {
        ready: !problems.iter().any(Problem::is_error),
        file,
        systems,
        maps_total,
        maps_checked,
        problems,
        notes,
    }
}
