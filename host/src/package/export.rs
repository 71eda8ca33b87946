//! Export: the maps of a plan, the plugins they run and the store's alert
//! rules, made one [`Package`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::format::{ALERT_RULES, Content, Package, PartKind};
use super::{MapPart, PackageError};
use crate::checkpoint::Checkpoints;
use crate::map::{MapPlan, Plan, PluginSource};

/// A plugin the package carries.
struct Carried {
    bytes: Vec<u8>,
    /// The first map that runs it, as an error names it.
    map: String,
}

/// The package of `plan`'s maps (`maps`: only those, by name), as they
/// run: each map's definition with every plugin step naming exactly the
/// version it runs (`plugin = "name@version"`, a file's component by the
/// name and version of its metadata), and its version number in `store`;
/// the plugins' components; the alert rules the API added to `store`
/// that watch those maps (or every map).
pub fn export(
    store: &Checkpoints,
    plan: &Plan,
    maps: Option<&[String]>,
) -> Result<Package, PackageError> {
    let chosen: Vec<&MapPlan> = match maps {
        None => plan.maps.iter().collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                plan.map(name).ok_or_else(|| {
                    let known: Vec<&str> = plan.maps.iter().map(|m| m.name.as_str()).collect();
                    PackageError::UnknownMap {
                        map: name.clone(),
                        known: known.join(", "),
                    }
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut parts = Vec::new();
    let mut plugins: BTreeMap<(String, String), Carried> = BTreeMap::new();
    for map in &chosen {
        let definition = pinned(map, &mut plugins)?;
        let version = version_of(store, &map.name, &map.definition)?;
        let part = MapPart {
            name: map.name.clone(),
            version,
            definition,
        };
        parts.push(Content {
            path: format!("maps/{}.json", map.name),
            kind: PartKind::Map,
            name: map.name.clone(),
            version: version.map(|v| v.to_string()),
            bytes: serde_json::to_vec_pretty(&part).unwrap_or_default(),
        });
    }
    for ((name, version), carried) in plugins {
        parts.push(Content {
            path: format!("plugins/{name}@{version}.wasm"),
            kind: PartKind::Plugin,
            name,
            version: Some(version),
            bytes: carried.bytes,
        });
    }
    let names: Vec<&str> = chosen.iter().map(|m| m.name.as_str()).collect();
    let rules: Vec<_> = store
        .alert_rules()?
        .into_iter()
        .filter(|rule| rule.map.as_deref().is_none_or(|map| names.contains(&map)))
        .collect();
    parts.push(Content {
        path: ALERT_RULES.to_owned(),
        kind: PartKind::AlertRules,
        name: "alert-rules".to_owned(),
        version: None,
        bytes: serde_json::to_vec_pretty(&rules).unwrap_or_default(),
    });
    Ok(Package::new(parts))
}

/// `map`'s definition with each plugin step naming the exact version it
/// runs; each step's component added to `plugins`.
fn pinned(
    map: &MapPlan,
    plugins: &mut BTreeMap<(String, String), Carried>,
) -> Result<Value, PackageError> {
    let refused = |detail: String| PackageError::Export {
        map: map.name.clone(),
        detail,
    };
    let mut definition = map.definition.clone();
    let listed = definition.get("plugins").is_some();
    let steps = definition
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    if steps.len() != map.plugins.len() {
        return Err(refused(format!(
            "its definition has {} plugin steps, and it runs {}",
            steps.len(),
            map.plugins.len()
        )));
    }
    let mut rewritten = Vec::new();
    for (index, (mut step, plugin)) in steps.into_iter().zip(&map.plugins).enumerate() {
        let (name, version) = match &plugin.source {
            PluginSource::Registry(entry) => (entry.name.clone(), entry.version.clone()),
            PluginSource::File(path) => {
                let Some(version) = plugin.inspection.version.clone() else {
                    return Err(refused(format!(
                        "plugins[{index}] is the file {}, whose metadata carries no version: build it with `dualwrite plugin build`, or add it to the registry with `dualwrite plugin add FILE --version X.Y.Z` and name it there",
                        path.display()
                    )));
                };
                (plugin.inspection.name.clone(), version)
            }
        };
        let reference = crate::registry::PluginRef::exact(&name, &version).map_err(|error| {
            refused(format!(
                "plugins[{index}] ({}) cannot be named from a registry: {error}",
                plugin.shown()
            ))
        })?;
        match plugins.get(&(name.clone(), version.clone())) {
            Some(carried) if *carried.bytes != *plugin.bytes => {
                return Err(refused(format!(
                    "plugins[{index}] ({}) is {name}@{version}, and map `{}` runs other bytes under that name and version: give one of them another version",
                    plugin.shown(),
                    carried.map
                )));
            }
            Some(_) => {}
            None => {
                plugins.insert(
                    (name.clone(), version.clone()),
                    Carried {
                        bytes: plugin.bytes.to_vec(),
                        map: map.name.clone(),
                    },
                );
            }
        }
        if let Some(object) = step.as_object_mut() {
            object.remove("path");
            object.insert("plugin".into(), Value::String(reference.to_string()));
        }
        rewritten.push(step);
    }
    if let Some(object) = definition.as_object_mut()
        && listed
    {
        object.insert("plugins".into(), Value::Array(rewritten));
    }
    Ok(definition)
}

/// The number `store` gave `definition` of `map`: the current version when
/// it is that one, else the latest with that definition; none if the
/// store never ran it.
fn version_of(
    store: &Checkpoints,
    map: &str,
    definition: &Value,
) -> Result<Option<u32>, PackageError> {
    let versions = store.map_versions(map)?;
    let current = store.map_version(map);
    if let Some(current) = versions
        .iter()
        .find(|v| Some(v.version) == current && v.definition == *definition)
    {
        return Ok(Some(current.version));
    }
    Ok(versions
        .iter()
        .rev()
        .find(|v| v.definition == *definition)
        .map(|v| v.version))
}
