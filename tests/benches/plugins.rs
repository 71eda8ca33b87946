//! Rows per second through each example plugin as a component, against the
//! same logic run natively in the same process, at batches of 1, 64 and 1024
//! rows; the time to instantiate a plugin from its `InstancePre` with the
//! pooling allocator; and the transform job (see [`transform_job`]), whose
//! ratio is printed as `plugins/transform-job <ratio>`.
//!
//! Run with `cargo xtask bench -- --bench plugins` (or, once the plugins are
//! built, `cargo bench -p dualwrite-tests --bench plugins`). Figures are
//! ratios measured in one run, so a noisy machine moves both sides alike.

use dualwrite::plugin::bindings::wire;
use dualwrite::plugin::json::parse_rows;
use dualwrite::plugin::{self as host, PluginLimits};
use dualwrite_plugin_sdk::bindings::types as sdk;
use dualwrite_plugin_sdk::testing::{filter_wire, transform_wire};
use dualwrite_tests::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "plugins/transform_job.rs"]
mod transform_job;

/// How long each measurement runs (after a warm-up of a tenth of that).
const MEASURE: Duration = Duration::from_millis(400);

enum Native {
    Filter(dualwrite_plugin_sdk::__private::FilterFn),
    Transform(dualwrite_plugin_sdk::__private::TransformFn),
}

struct Case {
    name: &'static str,
    path: &'static str,
    native: Native,
    settings: &'static [(&'static str, &'static str)],
    row: fn(usize) -> String,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "currency-precision",
            path: CURRENCY_PRECISION,
            native: Native::Transform(currency_precision::round_fields),
            settings: &[("fields", "CREDITLIMIT,BALANCE"), ("places", "2")],
            row: |i| {
                format!(
                    r#"{{"CUSTOMERACCOUNT": "C-{i:06}", "CREDITLIMIT": {{"decimal": "{i}.{i:04}5"}}, "BALANCE": {{"decimal": "-{i}.125"}}, "dataAreaId": "usmf"}}"#
                )
            },
        },
        Case {
            name: "company-filter",
            path: COMPANY_FILTER,
            native: Native::Filter(company_filter::by_company),
            settings: &[("companies", "usmf, demf")],
            row: |i| {
                format!(
                    r#"{{"CUSTOMERACCOUNT": "C-{i:06}", "dataAreaId": "{}"}}"#,
                    ["usmf", "demf", "gbsi"][i % 3]
                )
            },
        },
        Case {
            name: "party-name-split",
            path: PARTY_NAME_SPLIT,
            native: Native::Transform(party_name_split::split_name),
            settings: &[],
            row: |i| {
                format!(
                    r#"{{"CONTACTPERSONID": "CP-{i}", "fullname": "Grace Brewster{i} van Hopper"}}"#
                )
            },
        },
        Case {
            name: "value-map",
            path: VALUE_MAP,
            native: Native::Transform(value_map::map_value),
            settings: &[
                ("field", "PARTYTYPE"),
                ("values", "Organization:3, Person:1"),
            ],
            row: |i| {
                format!(
                    r#"{{"CUSTOMERACCOUNT": "C-{i}", "PARTYTYPE": "{}"}}"#,
                    ["Organization", "Person"][i % 2]
                )
            },
        },
        Case {
            name: "phone-normalize",
            path: PHONE_NORMALIZE,
            native: Native::Transform(phone_normalize::normalize_phones),
            settings: &[],
            row: |i| {
                format!(
                    r#"{{"CONTACTPERSONID": "CP-{i}", "telephone1": "(206) 709-{:04}"}}"#,
                    3400 + i % 500
                )
            },
        },
    ]
}

fn main() {
    println!(
        "plugin throughput: rows/s through the component (warm instance) and natively, same run\n"
    );
    println!(
        "{:<20} {:>6} {:>14} {:>14} {:>8}",
        "plugin", "batch", "component", "native", "ratio"
    );
    // `PLUGINS_BENCH=name,…` measures only those plugins (and
    // `transform-job`), for a quicker look at one.
    let only: Option<Vec<String>> = std::env::var("PLUGINS_BENCH").ok().map(|names| {
        names
            .split(',')
            .map(|name| name.trim().to_owned())
            .collect()
    });
    let wanted = |name: &str| {
        only.as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    };
    for case in cases().into_iter().filter(|case| wanted(case.name)) {
        let plugin = load(case.path, PluginLimits::default());
        for size in [1usize, 64, 1024] {
            let json = format!(
                "[{}]",
                (0..size).map(case.row).collect::<Vec<_>>().join(",")
            );
            let batch = parse_rows(&json).expect("bench rows");
            let context = host::Context {
                table_map: "bench".into(),
                direction: host::Direction::LeftToRight,
                company: None,
                settings: case
                    .settings
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let wire_batch = to_sdk_batch(&batch);
            let wire_context = sdk::Context {
                table_map: context.table_map.clone(),
                direction: sdk::Direction::LeftToRight,
                company: None,
                settings: context.settings.clone(),
            };
            // The host holds the batch flat, as a map's chain does; each
            // call sends the plugin the fields it reads and, for a
            // transform, writes the changes into a copy of the rows.
            let rows = host::Rows::from_batch(&batch);
            let all: Vec<usize> = (0..rows.len()).collect();
            let interface = match case.native {
                Native::Filter(_) => host::Interface::Filter,
                Native::Transform(_) => host::Interface::Transform,
            };
            let reads = plugin.reads(interface, &context).expect("answers").result;
            let component = rows_per_second(size, || match case.native {
                Native::Filter(_) => {
                    black_box(
                        plugin
                            .filter_rows(&context, &rows, &all, reads.as_deref())
                            .expect("runs"),
                    );
                }
                Native::Transform(_) => {
                    let mut rows = rows.clone();
                    black_box(
                        plugin
                            .transform_rows(&context, &mut rows, &all, reads.as_deref())
                            .expect("runs"),
                    );
                }
            });
            let native = rows_per_second(size, || match case.native {
                Native::Filter(f) => {
                    black_box(filter_wire(f, wire_context.clone(), wire_batch.clone()));
                }
                Native::Transform(f) => {
                    black_box(transform_wire(f, wire_context.clone(), wire_batch.clone()));
                }
            });
            println!(
                "{:<20} {:>6} {:>14.0} {:>14.0} {:>7.2}x",
                case.name,
                size,
                component,
                native,
                native / component
            );
        }
    }

    if !wanted("instantiation") && !wanted("transform-job") {
        return;
    }
    let plugin = load(CURRENCY_PRECISION, PluginLimits::default());
    let rounds = 2_000;
    plugin.prewarm().expect("instantiates");
    let started = Instant::now();
    for _ in 0..rounds {
        plugin.prewarm().expect("instantiates");
    }
    let per = started.elapsed() / rounds;
    println!(
        "\ninstantiation from InstancePre (pooling allocator): {per:?} per instance (mean of {rounds})"
    );

    if wanted("transform-job") {
        transform_job::run(|rows, run| rows_per_second(rows, run));
    }
}

/// Rows per second of `run` (which handles `rows` rows a call), measured
/// for [`MEASURE`] after a warm-up.
fn rows_per_second(rows: usize, mut run: impl FnMut()) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < MEASURE / 10 {
        run();
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < MEASURE {
        run();
        calls += 1;
    }
    (calls as f64 * rows as f64) / started.elapsed().as_secs_f64()
}

/// The batch as the SDK's batch loop receives it: the host's wire form of
/// every field, in the SDK's own copy of the contract's types.
fn to_sdk_batch(batch: &host::Batch) -> sdk::Batch {
    let rows = host::Rows::from_batch(batch);
    let all: Vec<usize> = (0..rows.len()).collect();
    let wire = rows.wire_batch(&all, &rows.columns_for(None));
    sdk::Batch {
        fields: wire.fields,
        rows: wire.rows,
        text: wire.text,
        references: Vec::new(),
        values: wire.values.iter().map(to_sdk_value).collect(),
    }
}

fn to_sdk_value(value: &wire::Value) -> sdk::Value {
    match value {
        wire::Value::Null => sdk::Value::Null,
        wire::Value::Boolean(b) => sdk::Value::Boolean(*b),
        wire::Value::Integer(n) => sdk::Value::Integer(*n),
        wire::Value::Float(f) => sdk::Value::Float(*f),
        wire::Value::Decimal(d) => sdk::Value::Decimal(sdk::Decimal {
            lo: d.lo,
            hi: d.hi,
            scale: d.scale,
            negative: d.negative,
        }),
        wire::Value::Text(span) => sdk::Value::Text(sdk::Span {
            start: span.start,
            len: span.len,
        }),
        wire::Value::Choice(c) => sdk::Value::Choice(*c),
        other => panic!("the benchmark rows have no {other:?}"),
    }
}
