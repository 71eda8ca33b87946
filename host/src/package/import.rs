//! Import into a running engine, in steps:
//!
//! 1. Decode and verify the package (signature with the key given,
//!    contract, every part's hash), read its parts.
//! 2. Decide what each part would change: a plugin new, upgraded, added
//!    or unchanged (a version the registry holds with other bytes is
//!    refused: a version never changes); an alert rule new, changed or
//!    unchanged, checked against the host's maps and the package's (one
//!    of the config file's that differs is refused); each map parsed.
//! 3. Stage the plugins the registry lacks (`registry::add`: checked and
//!    compiled), then validate the maps through
//!    [`RunningEngine::apply_maps`] as a dry run; a refusal removes what
//!    was staged and changes nothing.
//! 4. A dry run removes what was staged and reports. Otherwise the alert
//!    rules are stored, then the maps applied (each changed map takes its
//!    new version between batches); a failure of the maps puts the rules
//!    back and removes what was staged, so the import is whole or not at
//!    all. The rules come into force after the maps, as a rule may watch a
//!    map the package adds.

use serde::Serialize;
use utoipa::ToSchema;

use super::format::sha256;
use super::sign::VerifyingKey;
use super::{Contents, Package, PackageError, PluginPart, Verified};
use crate::alerts::{Known, RuleSource, RuleSpec};
use crate::checkpoint::Checkpoints;
use crate::config::MapConfig;
use crate::map::Plan;
use crate::registry::{self, RegistryError};
use crate::sync::alerts::AlertRuleStatus;
use crate::sync::{Difference, RunningEngine, Swapped, diff};

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// Only show what would change.
    pub dry_run: bool,
    /// The key the manifest's signature must verify with; `None` checks
    /// the hashes and the contract only.
    pub key: Option<&'a VerifyingKey>,
}

/// What an import did, or would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Imported {
    /// Whether nothing was applied.
    pub dry_run: bool,
    /// The package's plugin contract version.
    pub contract: String,
    /// The dualwrite version that made it.
    pub host_version: String,
    /// When it was made.
    pub created: String,
    /// The parts whose hashes matched the manifest.
    pub parts: usize,
    /// Whether it carries a signature.
    pub signed: bool,
    /// The fingerprint of the key its signature verified with (none when
    /// no key was given).
    pub verified_key: Option<String>,
    /// Each plugin of the package.
    pub plugins: Vec<PluginChange>,
    /// Each map of the package: added, changed (with the fields that
    /// changed) or unchanged.
    pub maps: Vec<Swapped>,
    /// Each alert rule of the package.
    pub alert_rules: Vec<RuleChange>,
}

/// What becomes of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PluginChange {
    /// `name@version`.
    pub plugin: String,
    /// `new` (no version of it in the registry), `upgraded` (higher than
    /// every version there), `added` (another version, not the highest)
    /// or `unchanged` (that version, the same bytes).
    pub change: String,
    /// The highest version the registry held before, `name@version`.
    pub from: Option<String>,
    /// The component's SHA-256.
    pub sha256: String,
}

/// What becomes of one alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleChange {
    /// The rule's name.
    pub rule: String,
    /// `new`, `changed` or `unchanged`.
    pub change: String,
    /// The fields that changed (a changed rule's).
    pub diff: Vec<Difference>,
    /// The rule.
    #[serde(skip)]
    pub(super) spec: RuleSpec,
}

/// Verifies `bytes` as a package and applies it to `engine` (or, with
/// `dry_run`, shows what it would change). Every refusal leaves the host
/// as it was.
pub async fn import(
    engine: &RunningEngine,
    bytes: &[u8],
    options: ImportOptions<'_>,
) -> Result<Imported, PackageError> {
    let package = Package::from_bytes(bytes)?;
    let verified = package.verify(options.key)?;
    let contents = package.contents()?;
    let store = engine.checkpoints().clone();
    let plan = engine.plan();
    let plugins = contents
        .plugins
        .iter()
        .map(|part| plugin_change(&store, part))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = rule_changes(&engine.alert_rules(), &plan, &contents)?;
    let maps = package_maps(&contents)?;

    let staged = stage(&store, &plan, &contents.plugins).await?;
    let checked = engine.apply_maps(maps.clone(), true).await;
    let report = match (checked, options.dry_run) {
        (Err(error), _) => {
            unstage(&store, &staged);
            return Err(error.into());
        }
        (Ok(report), true) => {
            unstage(&store, &staged);
            report
        }
        // The rules stored first, the maps then: a failure of either puts
        // back what was, so the import is whole or not at all. The rules
        // come into force once the maps they may watch run.
        (Ok(_), false) => {
            let before = match store_rules(&store, &rules) {
                Ok(before) => before,
                Err(error) => {
                    unstage(&store, &staged);
                    return Err(error);
                }
            };
            match engine.apply_maps(maps, false).await {
                Ok(report) => report,
                Err(error) => {
                    restore_rules(&store, &before);
                    unstage(&store, &staged);
                    return Err(error.into());
                }
            }
        }
    };
    if !options.dry_run {
        let specs: Vec<RuleSpec> = changed(&rules).map(|r| r.spec.clone()).collect();
        engine.take_alert_rules(&specs);
    }
    Ok(Imported::of(
        &package,
        verified,
        options.dry_run,
        plugins,
        report,
        rules,
        "A package was imported.",
    ))
}

impl Imported {
    /// The report of an import of `package`, logged as `done` unless a
    /// dry run.
    pub(super) fn of(
        package: &Package,
        verified: Verified,
        dry_run: bool,
        plugins: Vec<PluginChange>,
        maps: Vec<Swapped>,
        alert_rules: Vec<RuleChange>,
        done: &str,
    ) -> Imported {
        if !dry_run {
            tracing::info!(
                maps = maps.len(),
                plugins = plugins.iter().filter(|p| p.change != "unchanged").count(),
                alert_rules = changed(&alert_rules).count(),
                "{done}"
            );
        }
        Imported {
            dry_run,
            contract: package.manifest.contract.clone(),
            host_version: package.manifest.host_version.clone(),
            created: package.manifest.created.clone(),
            parts: verified.parts,
            signed: package.signature.is_some(),
            verified_key: verified.key,
            plugins,
            maps,
            alert_rules,
        }
    }
}

/// What adding `part` to the registry of `store` would change.
pub(super) fn plugin_change(
    store: &Checkpoints,
    part: &PluginPart,
) -> Result<PluginChange, PackageError> {
    let versions = registry::versions(store, &part.name)?;
    let sha256 = sha256(&part.bytes);
    let highest = versions.last().map(|entry| entry.id());
    let change = match versions.iter().find(|entry| entry.version == part.version) {
        Some(same) if same.sha256 == sha256 => "unchanged",
        Some(other) => {
            return Err(PackageError::Plugin {
                part: part.path.clone(),
                source: RegistryError::Immutable {
                    id: other.id(),
                    stored: other.sha256.clone(),
                },
            });
        }
        None => match versions.last() {
            None => "new",
            Some(top)
                if semver::Version::parse(&part.version).ok()
                    > semver::Version::parse(&top.version).ok() =>
            {
                "upgraded"
            }
            Some(_) => "added",
        },
    };
    Ok(PluginChange {
        plugin: part.id(),
        change: change.to_owned(),
        from: highest,
        sha256,
    })
}

/// The package's maps, each read from its definition.
pub(super) fn package_maps(contents: &Contents) -> Result<Vec<MapConfig>, PackageError> {
    contents
        .maps
        .iter()
        .map(|map| {
            let config = MapConfig::from_definition(&map.definition).map_err(|error| {
                PackageError::Refused(format!("map `{}` does not read: {error}", map.name))
            })?;
            match config.name == map.name {
                true => Ok(config),
                false => Err(PackageError::Refused(format!(
                    "map `{}`'s definition names map `{}`",
                    map.name, config.name
                ))),
            }
        })
        .collect()
}

/// The rules an import writes: the new and the changed.
pub(super) fn changed(rules: &[RuleChange]) -> impl Iterator<Item = &RuleChange> {
    rules.iter().filter(|r| r.change != "unchanged")
}

/// The rule of each name as the store held it before (none: no rule).
pub(super) type RulesBefore = Vec<(String, Option<RuleSpec>)>;

/// Stores the new and changed rules among `rules` (as the API's); what
/// the store held under their names before. A failure puts back what it
/// had written.
pub(super) fn store_rules(
    store: &Checkpoints,
    rules: &[RuleChange],
) -> Result<RulesBefore, PackageError> {
    let held = store.alert_rules()?;
    let mut before = Vec::new();
    for rule in changed(rules) {
        let was = held.iter().find(|r| r.name == rule.rule).cloned();
        before.push((rule.rule.clone(), was));
        if let Err(error) = store.put_alert_rule(&rule.spec) {
            restore_rules(store, &before);
            return Err(error.into());
        }
    }
    Ok(before)
}

/// Puts back the rules `store_rules` replaced.
pub(super) fn restore_rules(store: &Checkpoints, before: &RulesBefore) {
    for (name, was) in before {
        let put_back = match was {
            Some(spec) => store.put_alert_rule(spec),
            None => store.remove_alert_rule(name).map(|_| ()),
        };
        if let Err(error) = put_back {
            tracing::warn!(rule = %name, %error, "An alert rule of an import that stopped could not be put back.");
        }
    }
}

/// What each of the package's alert rules would change, each checked
/// against the host's maps and the package's; `existing`, the host's
/// rules.
pub(super) fn rule_changes(
    existing: &[AlertRuleStatus],
    plan: &Plan,
    contents: &Contents,
) -> Result<Vec<RuleChange>, PackageError> {
    let mut maps: Vec<&str> = plan.maps.iter().map(|m| m.name.as_str()).collect();
    maps.extend(contents.maps.iter().map(|m| m.name.as_str()));
    let systems: Vec<&str> = plan.systems.keys().map(String::as_str).collect();
    let mut changes = Vec::new();
    for spec in &contents.rules {
        let known = Known {
            maps: &maps,
            systems: &systems,
        };
        if let Err(problems) = spec.check(known, RuleSource::Api) {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(PackageError::Refused(format!(
                "alert rule `{}` does not check on this host: {}",
                spec.name,
                problems.join("; ")
            )));
        }
        let (change, before) = match existing.iter().find(|s| s.rule.name == spec.name) {
            None => ("new", serde_json::Value::Null),
            Some(status) if status.rule == *spec => ("unchanged", serde_json::Value::Null),
            Some(status) if status.source == RuleSource::Config => {
                return Err(PackageError::Refused(format!(
                    "alert rule `{}` of the package differs from the rule of that name in this host's config file: change it there, or rename the package's",
                    spec.name
                )));
            }
            Some(status) => (
                "changed",
                serde_json::to_value(&status.rule).unwrap_or_default(),
            ),
        };
        let after = serde_json::to_value(spec).unwrap_or_default();
        changes.push(RuleChange {
            rule: spec.name.clone(),
            change: change.to_owned(),
            diff: match change {
                "changed" => diff(&before, &after),
                _ => Vec::new(),
            },
            spec: spec.clone(),
        });
    }
    Ok(changes)
}

/// Adds the plugins the registry lacks (checked and compiled); the ones
/// it added, to remove if the import stops.
async fn stage(
    store: &Checkpoints,
    plan: &Plan,
    plugins: &[PluginPart],
) -> Result<Staged, PackageError> {
    let store = store.clone();
    let compiled = registry::compiled_dir(&plan.engine.data);
    let plugins = plugins.to_vec();
    tokio::task::spawn_blocking(move || stage_now(&store, &compiled, &plugins))
        .await
        .map_err(|error| PackageError::Refused(format!("adding the plugins stopped: {error}")))?
}

/// The plugins an import added to the registry, `(name, version)`.
pub(super) type Staged = Vec<(String, String)>;

/// [`stage`], on this thread: the compile cache is `compiled`.
pub(super) fn stage_now(
    store: &Checkpoints,
    compiled: &std::path::Path,
    plugins: &[PluginPart],
) -> Result<Staged, PackageError> {
    let mut staged = Vec::new();
    for part in plugins {
        match registry::add(
            store,
            compiled,
            &part.path,
            &part.bytes,
            Some(&part.name),
            Some(&part.version),
        ) {
            Ok(added) if added.new => staged.push((part.name.clone(), part.version.clone())),
            Ok(_) => {}
            Err(source) => {
                unstage(store, &staged);
                return Err(PackageError::Plugin {
                    part: part.path.clone(),
                    source,
                });
            }
        }
    }
    Ok(staged)
}

/// Removes the plugins `stage` added.
pub(super) fn unstage(store: &Checkpoints, staged: &[(String, String)]) {
    for (name, version) in staged {
        if let Err(error) = registry::remove(store, name, version) {
            tracing::warn!(plugin = %format!("{name}@{version}"), %error, "A plugin staged for an import that stopped could not be removed.");
        }
    }
}
