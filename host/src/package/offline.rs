//! Import into a stopped host: its store and its config file, no engine.
//!
//! The maps in force are the config file's with the versions an admin
//! applied over them (`config::in_force`). The package's maps are merged
//! into those and the whole config built, against the catalogue given and
//! the store's registry with the package's plugins staged in it, exactly
//! as a running host validates an import. Then, all or nothing: the
//! package's alert rules are stored, and each changed or new map's
//! definition is stored as its next version and recorded as applied, so
//! that the host runs it at its next start while the file's entry of that
//! map stays as it is. The config file is read, never written.

use std::path::Path;

use super::import::{
    ImportOptions, Imported, package_maps, plugin_change, restore_rules, rule_changes, stage_now,
    store_rules, unstage,
};
use super::{Package, PackageError};
use crate::checkpoint::{Checkpoints, definition_sha256};
use crate::config::{Config, PluginRegistry, in_force, load_file, validate_config_in};
use crate::map::{Catalogue, Plan, Problem};
use crate::registry;
use crate::sync::{Change, SwapError, Swapped, alerts::rules_of, diff, same_tables};

/// Verifies `bytes` as a package and applies it to the stopped host of
/// `store`, whose config file is `file` (or, with `dry_run`, shows what it
/// would change). Every refusal leaves the host as it was.
pub fn import_stopped(
    store: &Checkpoints,
    file: &Path,
    catalogue: &dyn Catalogue,
    bytes: &[u8],
    options: ImportOptions<'_>,
) -> Result<Imported, PackageError> {
    let package = Package::from_bytes(bytes)?;
    let verified = package.verify(options.key)?;
    let contents = package.contents()?;
    let shown = file.display().to_string();
    let file_config = load_file(file).map_err(|problems| not_valid(&shown, &problems))?;
    let now = in_force(&file_config, store)?;
    let plan = build(file, &now.config, catalogue, store)
        .map_err(|problems| not_valid(&shown, &problems))?;
    let plugins = contents
        .plugins
        .iter()
        .map(|part| plugin_change(store, part))
        .collect::<Result<Vec<_>, _>>()?;
    let existing =
        rules_of(store, &plan).map_err(|error| PackageError::Refused(error.to_string()))?;
    let rules = rule_changes(&existing, &plan, &contents)?;
    let maps = package_maps(&contents)?;

    let compiled = registry::compiled_dir(&plan.engine.data);
    let staged = stage_now(store, &compiled, &contents.plugins)?;
    let mut merged = now.config.clone();
    merged.merge_maps(&maps);
    let planned = build(file, &merged, catalogue, store)
        .map_err(|problems| {
            SwapError::Invalid(problems.into_iter().filter(Problem::is_error).collect())
        })
        .and_then(|next| changes(store, &plan, &next, &maps).map(|report| (next, report)));
    let (next, mut report) = match planned {
        Ok(planned) => planned,
        Err(error) => {
            unstage(store, &staged);
            return Err(error.into());
        }
    };
    if options.dry_run {
        unstage(store, &staged);
    } else if let Err(error) = apply(store, &file_config, &next, &mut report, &rules) {
        unstage(store, &staged);
        return Err(error);
    }
    Ok(Imported::of(
        &package,
        verified,
        options.dry_run,
        plugins,
        report,
        rules,
        "A package was imported into a stopped host; it runs at the next start.",
    ))
}

fn build(
    file: &Path,
    config: &Config,
    catalogue: &dyn Catalogue,
    store: &Checkpoints,
) -> Result<Plan, Vec<Problem>> {
    validate_config_in(file, config, catalogue, PluginRegistry::Store(store))
}

fn not_valid(file: &str, problems: &[Problem]) -> PackageError {
    let list: Vec<String> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    PackageError::Refused(format!(
        "the host's config {file} does not validate as it stands, so nothing can be imported into it (a host that runs with --no-catalogue is imported into with --no-catalogue):\n{}",
        list.join("\n")
    ))
}

/// What the package's maps change from `plan` to `next`: each map added,
/// changed or unchanged, with the fields that changed (no version yet).
fn changes(
    store: &Checkpoints,
    plan: &Plan,
    next: &Plan,
    maps: &[crate::config::MapConfig],
) -> Result<Vec<Swapped>, SwapError> {
    let mut report = Vec::new();
    for map in maps {
        let Some(after) = next.map(&map.name) else {
            continue;
        };
        let before = plan.map(&map.name);
        if let Some(before) = before {
            same_tables(before, after)?;
        }
        let ids = crate::sync::registry_ids(after);
        let change = match before {
            None => Change::Added,
            Some(before)
                if before.definition == after.definition
                    && crate::sync::registry_ids(before) == ids =>
            {
                Change::Unchanged
            }
            Some(_) => Change::Changed,
        };
        let version = before.and_then(|_| store.map_version(&map.name));
        report.push(Swapped {
            map: map.name.clone(),
            change,
            from: version,
            to: match change {
                Change::Unchanged => version,
                _ => None,
            },
            plugins: ids,
            diff: match change {
                Change::Unchanged => Vec::new(),
                _ => diff(
                    &before.map(|b| b.definition.clone()).unwrap_or_default(),
                    &after.definition,
                ),
            },
        });
    }
    Ok(report)
}

/// Stores the rules, then each changed map's version, recorded as applied
/// over the file's entry; a failure puts the rules back.
fn apply(
    store: &Checkpoints,
    file_config: &Config,
    next: &Plan,
    report: &mut [Swapped],
    rules: &[super::RuleChange],
) -> Result<(), PackageError> {
    let before = store_rules(store, rules)?;
    let mut versions = Vec::new();
    for swapped in report.iter().filter(|s| s.change != Change::Unchanged) {
        let Some(map) = next.map(&swapped.map) else {
            continue;
        };
        let entry = match store.applied_map(&map.name) {
            Ok(Some(record)) => record.config_sha256,
            Ok(None) => file_config
                .maps
                .iter()
                .find(|m| m.name == map.name)
                .map(|m| definition_sha256(&m.definition)),
            Err(error) => {
                restore_rules(store, &before);
                return Err(error.into());
            }
        };
        let stored = store
            .store_map_version(&map.name, &map.definition)
            .and_then(|version| {
                store
                    .set_applied_map(&map.name, version, &map.definition, entry)
                    .map(|()| version)
            });
        match stored {
            Ok(version) => versions.push((swapped.map.clone(), version)),
            Err(error) => {
                restore_rules(store, &before);
                return Err(error.into());
            }
        }
    }
    for (map, version) in versions {
        if let Some(swapped) = report.iter_mut().find(|s| s.map == map) {
            swapped.to = Some(version);
        }
    }
    Ok(())
}
