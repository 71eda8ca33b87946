//! The checks of a map's plugin chain: the file exists, the host accepts
//! the component, and it exports what the map asks.

use super::MapConfig;
use super::build::{BuildOptions, Report};
use crate::map::{PluginKind, PluginStep, Problem, ProblemCode};
use crate::plugin::inspect;

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
        let path = options.base_dir.join(&plugin.path);
        let shown = plugin.path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                report.push(
                    Problem::new(
                        ProblemCode::PluginMissing,
                        format!("cannot read plugin `{shown}`: {error}"),
                        "build the plugin, or fix `path` (relative paths start at the config file's folder)",
                    )
                    .in_map(&map.name)
                    .at_field(place),
                );
                all_good = false;
                continue;
            }
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
            path,
            direction: plugin.direction,
            kind: plugin.kind,
            settings: plugin.settings.clone(),
            limits: plugin.limits.clone().unwrap_or_default(),
            inspection,
        });
    }
    all_good.then_some(steps)
}
