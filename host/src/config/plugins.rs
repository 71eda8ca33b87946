//! The checks of a map's plugin chain: the step names a file or a
//! registry plugin (not both), the component can be had, the host accepts
//! it, and it exports what the map asks.

use std::sync::Arc;

use super::build::{BuildOptions, PluginRegistry, Report};
use super::{MapConfig, PluginConfig};
use crate::map::{PluginKind, PluginSource, PluginStep, Problem, ProblemCode};
use crate::plugin::inspect;
use crate::registry::{self, PluginRef};

/// The map's plugin steps, or `None` when one of them has a problem.
pub(super) fn build_plugins(
    map: &MapConfig,
    options: &BuildOptions<'_>,
    report: &mut Report,
) -> Option<Vec<PluginStep>> {
    let mut steps = Vec::new();
    let mut all_good = true;
    for (index, plugin) in map.plugins.iter().enumerate() {
        let place = format!("plugins[{index}]");
        let (source, bytes) = match component(plugin, options) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err((code, message, help)) => {
                report.push(
                    Problem::new(code, message, help)
                        .in_map(&map.name)
                        .at_field(place),
                );
                all_good = false;
                continue;
            }
        };
        let shown = match &source {
            PluginSource::File(_) => plugin
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            PluginSource::Registry(entry) => entry.id(),
        };
        let refusal = match inspect(&shown, &bytes) {
            Ok(inspection) => {
                let reasons: Vec<String> = inspection
                    .problems()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if reasons.is_empty() {
                    Ok(inspection)
                } else {
                    Err(reasons.join("; "))
                }
            }
            Err(error) => Err(error.to_string()),
        };
        let inspection = match refusal {
            Ok(inspection) => inspection,
            Err(error) => {
                report.push(
                    Problem::new(
                        ProblemCode::PluginRefused,
                        format!("plugin `{shown}` is refused: {error}"),
                        "rebuild it as a component of the dualwrite:plugin contract with the SDK",
                    )
                    .in_map(&map.name)
                    .at_field(place),
                );
                all_good = false;
                continue;
            }
        };
        let missing = match plugin.kind {
            Some(PluginKind::Filter) if !inspection.exports_filter() => Some("filter"),
            Some(PluginKind::Transform) if !inspection.exports_transform() => Some("transform"),
            _ => None,
        };
        if let Some(missing) = missing {
            report.push(
                Problem::new(
                    ProblemCode::PluginExport,
                    format!(
                        "plugin `{shown}` does not export `{missing}` (it exports: {})",
                        inspection.exports.join(", ")
                    ),
                    "change `kind`, or use a plugin that exports it",
                )
                .in_map(&map.name)
                .at_field(place),
            );
            all_good = false;
            continue;
        }
        steps.push(PluginStep {
            source,
            bytes: Arc::from(bytes),
            direction: plugin.direction,
            kind: plugin.kind,
            settings: plugin.settings.clone(),
            limits: plugin.limits.clone().unwrap_or_default(),
            inspection,
        });
    }
    all_good.then_some(steps)
}

/// A problem: its code, message and help.
type Trouble = (ProblemCode, String, &'static str);

/// Where the step's component comes from, and its bytes; `None` for a
/// registry plugin left unresolved ([`PluginRegistry::Unchecked`]).
fn component(
    plugin: &PluginConfig,
    options: &BuildOptions<'_>,
) -> Result<Option<(PluginSource, Vec<u8>)>, Trouble> {
    let reference = match (&plugin.path, &plugin.plugin) {
        (Some(path), None) => {
            let full = options.base_dir.join(path);
            return match std::fs::read(&full) {
                Ok(bytes) => Ok(Some((PluginSource::File(full), bytes))),
                Err(error) => Err((
                    ProblemCode::PluginMissing,
                    format!("cannot read plugin `{}`: {error}", path.display()),
                    "build the plugin, or fix `path` (relative paths start at the config file's folder)",
                )),
            };
        }
        (None, Some(reference)) => reference,
        (Some(_), Some(_)) | (None, None) => {
            return Err((
                ProblemCode::PluginReference,
                "a plugin step names both or neither of `path` and `plugin`".into(),
                "give `path = \"FILE.wasm\"` for a component file, or `plugin = \"NAME@VERSION\"` for one of the host's registry",
            ));
        }
    };
    let parsed: PluginRef = reference.parse().map_err(|error: String| {
        (
            ProblemCode::PluginReference,
            format!("`plugin = \"{reference}\"`: {error}"),
            "name a registry plugin as `NAME`, `NAME@1.2.3` or `NAME@^1.2`",
        )
    })?;
    let store = match options.registry {
        PluginRegistry::Store(store) => store,
        PluginRegistry::Unchecked => return Ok(None),
        PluginRegistry::Absent => {
            return Err((
                ProblemCode::PluginReference,
                format!(
                    "`plugin = \"{reference}\"` names a registry plugin, and no registry was given to resolve it"
                ),
                "validate the config where the host's store (`[engine] data`) can be opened; a running host checks it with `dualwrite map apply --dry-run`",
            ));
        }
    };
    match registry::resolve(store, &parsed) {
        Ok((entry, bytes)) => Ok(Some((PluginSource::Registry(entry), bytes))),
        Err(error) => Err((
            ProblemCode::PluginReference,
            format!("`plugin = \"{reference}\"`: {error}"),
            "add the plugin with `dualwrite plugin add FILE.wasm`, or change the reference (`dualwrite plugin list` shows the registry)",
        )),
    }
}
