//! The checks of one map: sides, filters, key, fields and lookups.

use std::collections::{BTreeMap, BTreeSet};

use super::build::{BuildOptions, Report};
use super::{Config, MapConfig, SideConfig};
use crate::map::COMPANY_FIELD;
use crate::map::catalogue::suggest;
use crate::map::{
    Direction, FieldMapping, InitialSync, MapPlan, Problem, ProblemCode, Side as MapSide, SidePlan,
    SystemPlan, TableLookup,
};
use crate::odata::Filter;
use crate::schema::TableDef;

/// A side with its table, when the catalogue knows it.
pub(super) struct Side<'a> {
    pub(super) plan: Option<SidePlan>,
    pub(super) table: Option<&'a TableDef>,
    pub(super) label: &'static str,
}

pub(super) fn build_map(
    map: &MapConfig,
    config: &Config,
    systems: &BTreeMap<String, SystemPlan>,
    options: &BuildOptions<'_>,
    report: &mut Report,
) -> Option<MapPlan> {
    let left = side(map, "left", &map.left, systems, options, report);
    let right = side(map, "right", &map.right, systems, options, report);
    let mut key = parse_all(map, "key", &map.key, FieldMapping::parse_key, report);
    let mut fields = parse_all(map, "fields", &map.fields, FieldMapping::parse, report);

    if map.key.is_empty() {
        report.push(
            Problem::new(
                ProblemCode::MissingKey,
                "the map has no integration key",
                "add `key = [\"LEFTFIELD = rightfield\"]` naming fields unique on both sides",
            )
            .in_map(&map.name)
            .at_field("key"),
        );
    }
    for mapping in key.iter().chain(&fields) {
        check_names(map, mapping, &left, &right, report);
    }
    check_key_covers_table(map, &key, &left, report);
    check_directions(map, &key, &fields, report);
    check_value_maps(map, &fields, report);
    let no_company_pair = !key
        .iter()
        .any(|pair| pair.left.as_deref() == Some(COMPANY_FIELD));
    if !map.companies.is_empty()
        && (no_company_pair
            || left
                .table
                .is_some_and(|table| table.company_field.is_none()))
    {
        report.push(
            Problem::new(
                ProblemCode::CompanyNotStriped,
                format!(
                    "`{}` is not striped by company: it needs a company field and a `{COMPANY_FIELD}` key pair",
                    map.left.table
                ),
                format!("remove `companies`, or map a company-specific table with a `{COMPANY_FIELD} = …` key pair"),
            )
            .in_map(&map.name)
            .at_field("companies"),
        );
    }
    for mapping in key.iter_mut().chain(fields.iter_mut()) {
        super::lookups::resolve_lookup(map, mapping, config, &right, options, report);
    }
    let plugins = super::plugins::build_plugins(map, options, report);
    let initial_sync = initial_sync(map, &fields, report);
    let mode = super::live::sync_mode(map, config, systems, &fields, report);
    Some(MapPlan {
        name: map.name.clone(),
        left: left.plan?,
        right: right.plan?,
        key,
        fields,
        depends_on: map.depends_on.clone(),
        companies: map.companies.clone(),
        conflict: map.conflict,
        on_filter_exit: map.on_filter_exit,
        enabled: map.enabled,
        plugins: plugins?,
        initial_sync: initial_sync?,
        mode: mode?,
        definition: map.definition.clone(),
    })
}

/// The map's `initial_sync`: as written, or by default the left side (the
/// side that flows, on a one-way map). The master must be a side the map
/// reads: a side whose changes flow nowhere is never read, so its values
/// could not win.
fn initial_sync(
    map: &MapConfig,
    fields: &[FieldMapping],
    report: &mut Report,
) -> Option<InitialSync> {
    let flows = |side: MapSide| {
        fields.iter().any(|m| match side {
            MapSide::Left => m.direction.writes_right(),
            MapSide::Right => m.direction.writes_left(),
        })
    };
    let Some(text) = map.initial_sync.as_deref() else {
        let side = match flows(MapSide::Left) || !flows(MapSide::Right) {
            true => InitialSync::Left,
            false => InitialSync::Right,
        };
        return Some(side);
    };
    let problem = |message: String, help: &str| {
        Problem::new(ProblemCode::InitialSync, message, help)
            .in_map(&map.name)
            .at_field("initial_sync")
    };
    let mode = match text.parse::<InitialSync>() {
        Ok(mode) => mode,
        Err(message) => {
            report.push(problem(
                message,
                "write `initial_sync = \"left\"`, `\"right\"` or `\"none\"`",
            ));
            return None;
        }
    };
    if let Some(master) = mode.master()
        && !flows(master)
        && flows(master.other())
    {
        report.push(problem(
            format!(
                "`initial_sync = \"{text}\"` makes the {} side the master, but the map never reads it: its fields flow {} only",
                master.name(),
                match master {
                    MapSide::Left => "right to left",
                    MapSide::Right => "left to right",
                }
            ),
            &format!(
                "write `initial_sync = \"{}\"` (the side that flows) or `\"none\"`",
                master.other().name()
            ),
        ));
        return None;
    }
    Some(mode)
}

fn side<'a>(
    map: &MapConfig,
    label: &'static str,
    config: &SideConfig,
    systems: &BTreeMap<String, SystemPlan>,
    options: &BuildOptions<'a>,
    report: &mut Report,
) -> Side<'a> {
    let filter = match config.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match Filter::parse(text) {
            Ok(filter) => Some(filter),
            Err(error) => {
                report.push(
                    Problem::new(
                        ProblemCode::FilterSyntax,
                        format!("`{text}`: {error}"),
                        "write an OData $filter, e.g. `PartyType eq 'Organization'`",
                    )
                    .in_map(&map.name)
                    .at_field(format!("{label}.filter")),
                );
                None
            }
        },
    };
    let Some(system) = systems.get(&config.system) else {
        let known: Vec<&str> = systems.keys().map(String::as_str).collect();
        report.push(
            Problem::new(
                ProblemCode::UnknownSystem,
                format!("there is no system `{}`", config.system),
                format!(
                    "define `[systems.{}]` or use one of: {}",
                    config.system,
                    known.join(", ")
                ),
            )
            .in_map(&map.name)
            .at_field(format!("{label}.system")),
        );
        return Side {
            plan: None,
            table: None,
            label,
        };
    };
    let table = match options.catalogue.table(system.kind, &config.table) {
        TableLookup::NotCovered => None,
        TableLookup::Found(table) => Some(table),
        TableLookup::Missing => {
            let names = options.catalogue.table_names(system.kind);
            report.push(
                Problem::new(
                    ProblemCode::UnknownTable,
                    format!("system `{}` has no table `{}`", config.system, config.table),
                    format!(
                        "{}known tables: {}",
                        suggest(&config.table, names.iter().copied()),
                        names.join(", ")
                    ),
                )
                .in_map(&map.name)
                .at_field(format!("{label}.table")),
            );
            None
        }
    };
    if let (Some(table), Some(filter)) = (table, &filter) {
        for name in filter.field_names() {
            if table.field(name).is_none() {
                report.push(unknown_field(map, table, name, &format!("{label}.filter")));
            }
        }
    }
    Side {
        plan: Some(SidePlan {
            system: config.system.clone(),
            kind: system.kind,
            table: config.table.clone(),
            filter,
        }),
        table,
        label,
    }
}

fn parse_all(
    map: &MapConfig,
    label: &str,
    texts: &[String],
    parse: fn(&str) -> Result<FieldMapping, crate::map::FieldSyntaxError>,
    report: &mut Report,
) -> Vec<FieldMapping> {
    let mut out = Vec::new();
    for text in texts {
        match parse(text) {
            Ok(mapping) => out.push(mapping),
            Err(error) => report.push(
                Problem::new(
                    ProblemCode::FieldSyntax,
                    format!("`{text}` in `{label}` does not parse {error}"),
                    "write `LEFT = right`, `LEFT > right`, `LEFT < right`, then optional `via MAP`, `default VALUE`, `map { a: 1 }`",
                )
                .in_map(&map.name)
                .at_field(text.clone()),
            ),
        }
    }
    out
}

pub(super) fn unknown_field(map: &MapConfig, table: &TableDef, name: &str, place: &str) -> Problem {
    let names = table.fields.iter().map(|field| field.name.as_str());
    Problem::new(
        ProblemCode::UnknownField,
        format!(
            "table `{}` has no field `{name}` (in `{place}`)",
            table.name
        ),
        format!(
            "{}check the field name; names are case-sensitive",
            suggest(name, names)
        ),
    )
    .in_map(&map.name)
    .at_field(name)
}

fn check_names(
    map: &MapConfig,
    mapping: &FieldMapping,
    left: &Side<'_>,
    right: &Side<'_>,
    report: &mut Report,
) {
    for (side, name) in [(left, &mapping.left), (right, &mapping.right)] {
        if let (Some(table), Some(name)) = (side.table, name)
            && table.field(name).is_none()
        {
            report.push(unknown_field(map, table, name, side.label));
        }
    }
}

fn check_key_covers_table(
    map: &MapConfig,
    key: &[FieldMapping],
    left: &Side<'_>,
    report: &mut Report,
) {
    let Some(table) = left.table else { return };
    if key.is_empty() {
        return;
    }
    let keyed: BTreeSet<&str> = key.iter().filter_map(|pair| pair.left.as_deref()).collect();
    for field in &table.primary_key {
        let striped = table.company_field.as_ref() == Some(field) && !map.companies.is_empty();
        if !keyed.contains(field.as_str()) && !striped {
            report.push(
                Problem::new(
                    ProblemCode::KeyIncomplete,
                    format!(
                        "`{field}` is part of the key of `{}` but not of the map's key",
                        table.name
                    ),
                    format!("add `\"{field} = …\"` to `key`"),
                )
                .in_map(&map.name)
                .at_field(field.clone()),
            );
        }
    }
}

fn check_directions(
    map: &MapConfig,
    key: &[FieldMapping],
    fields: &[FieldMapping],
    report: &mut Report,
) {
    let writes_left = fields.iter().any(|field| field.direction.writes_left());
    let writes_right = fields.iter().any(|field| field.direction.writes_right());
    for pair in key {
        let (left, right) = (
            pair.left.as_deref().unwrap_or(""),
            pair.right.as_deref().unwrap_or(""),
        );
        let short = (writes_left && !pair.direction.writes_left())
            || (writes_right && !pair.direction.writes_right());
        if short {
            report.push(
                Problem::new(
                    ProblemCode::KeyDirection,
                    format!("key `{left} {} {right}` flows one way, but the map's fields write both ways", pair.direction.symbol()),
                    format!("write the key pair as `{left} = {right}`"),
                )
                .in_map(&map.name)
                .at_field(left),
            );
        }
        for field in fields {
            if field.left == pair.left
                && field.right == pair.right
                && field.direction != pair.direction
            {
                report.push(
                    Problem::new(
                        ProblemCode::KeyDirection,
                        format!("field `{left} {} {right}` repeats a key pair that flows `{}`", field.direction.symbol(), pair.direction.symbol()),
                        "write the field with the key's direction, or drop it (key pairs are synced anyway)",
                    )
                    .in_map(&map.name)
                    .at_field(left),
                );
            }
        }
    }
    let mut targets: BTreeSet<(bool, &str)> = BTreeSet::new();
    for field in fields {
        if key
            .iter()
            .any(|pair| pair.left == field.left && pair.right == field.right)
        {
            continue;
        }
        for (writes, to_right, name) in [
            (field.direction.writes_right(), true, &field.right),
            (field.direction.writes_left(), false, &field.left),
        ] {
            if let (true, Some(name)) = (writes, name)
                && !targets.insert((to_right, name.as_str()))
            {
                report.push(
                    Problem::new(
                        ProblemCode::DuplicateTarget,
                        format!("`{name}` is written by more than one mapping"),
                        "keep one mapping per target field and direction",
                    )
                    .in_map(&map.name)
                    .at_field(name.clone()),
                );
            }
        }
    }
}

fn check_value_maps(map: &MapConfig, fields: &[FieldMapping], report: &mut Report) {
    for field in fields
        .iter()
        .filter(|field| field.direction == Direction::Both)
    {
        let mut from = BTreeSet::new();
        let mut to = BTreeSet::new();
        let reversible = field
            .value_map
            .iter()
            .all(|(a, b)| from.insert(a.to_string()) && to.insert(b.to_string()));
        if !reversible {
            let name = field.left.clone().unwrap_or_default();
            report.push(
                Problem::new(
                    ProblemCode::ValueMapNotReversible,
                    format!("the value map of `{name}` flows both ways but is not one-to-one"),
                    "give each value its own counterpart, or make the mapping one-way (`>` or `<`)",
                )
                .in_map(&map.name)
                .at_field(name),
            );
        }
    }
}
