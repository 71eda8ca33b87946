//! Lookups: which map syncs the table a lookup column points at.

use super::build::{BuildOptions, Report};
use super::checks::{Side, unknown_field};
use super::{Config, MapConfig};
use crate::map::{FieldMapping, Problem, ProblemCode, TableLookup};

/// Resolves `mapping`'s lookup to a map: the one named with `via`, or the
/// one whose right table is the lookup column's target in the catalogue.
pub(super) fn resolve_lookup(
    map: &MapConfig,
    mapping: &mut FieldMapping,
    config: &Config,
    right: &Side<'_>,
    options: &BuildOptions<'_>,
    report: &mut Report,
) {
    let column = mapping.right.clone().unwrap_or_default();
    let Some(lookup) = mapping.lookup.as_mut() else {
        return;
    };
    if let Some(via) = &lookup.map {
        if !config.maps.iter().any(|other| &other.name == via) {
            report.push(
                Problem::new(
                    ProblemCode::UnknownLookupMap,
                    format!(
                        "the lookup `{column}.{}` goes through map `{via}`, which does not exist",
                        lookup.key_field
                    ),
                    "name an existing map after `via`, or add the map",
                )
                .in_map(&map.name)
                .at_field(column),
            );
        }
        return;
    }
    let target = right
        .table
        .and_then(|table| table.field(&column))
        .and_then(|field| field.target.clone());
    let Some(target) = target else {
        report.push(
            Problem::new(
                ProblemCode::UnresolvedLookup,
                format!("cannot tell which table the lookup `{column}` points at"),
                format!(
                    "name the map that syncs it: `… {column}.{} via MAP`",
                    lookup.key_field
                ),
            )
            .in_map(&map.name)
            .at_field(column),
        );
        return;
    };
    let through = config
        .maps
        .iter()
        .find(|other| other.right.system == map.right.system && other.right.table == target);
    match through {
        Some(other) => {
            lookup.map = Some(other.name.clone());
            let target_table = right
                .plan
                .as_ref()
                .map(|plan| options.catalogue.table(plan.kind, &target));
            if let Some(TableLookup::Found(table)) = target_table
                && table.field(&lookup.key_field).is_none()
            {
                report.push(unknown_field(map, table, &lookup.key_field, "lookup"));
            }
        }
        None => report.push(
            Problem::new(
                ProblemCode::UnknownLookupMap,
                format!("the lookup `{column}` points at `{target}`, but no map syncs `{target}`"),
                format!("add a map for `{target}`, or drop the field"),
            )
            .in_map(&map.name)
            .at_field(column),
        ),
    }
}
