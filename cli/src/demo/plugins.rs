//! `dualwrite demo --plugins-only`: the example plugins over sample
//! Customers V3 and contact rows, as a table map would run them, without
//! the engine or the emulators; then a hostile plugin shown contained while
//! the others keep working.

use anyhow::Context as _;
use dualwrite::plugin::json::{parse_rows, value_to_json};
use dualwrite::plugin::{
    Context, Direction, Outcome, Plugin, PluginLimits, Runtime, RuntimeConfig, Verdict,
};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const CUSTOMERS: &str = r#"[
  {"CUSTOMERACCOUNT": "US-001", "ORGANIZATIONNAME": "Contoso Retail San Diego", "dataAreaId": "usmf",
   "CREDITLIMIT": {"decimal": "25000.125"}, "PRIMARYCONTACTPHONE": "(206) 709-3400", "PARTYTYPE": "Organization"},
  {"CUSTOMERACCOUNT": "US-002", "ORGANIZATIONNAME": "Fabrikam Electronics", "dataAreaId": "USMF",
   "CREDITLIMIT": {"decimal": "1000"}, "PRIMARYCONTACTPHONE": "+1 212 555 0142", "PARTYTYPE": "Person"},
  {"CUSTOMERACCOUNT": "DE-001", "ORGANIZATIONNAME": "Tailspin Toys GmbH", "dataAreaId": "demf",
   "CREDITLIMIT": {"decimal": "99999.995"}, "PRIMARYCONTACTPHONE": "030 901820", "PARTYTYPE": "Organization"},
  {"CUSTOMERACCOUNT": "US-003", "ORGANIZATIONNAME": "Litware, Inc.", "dataAreaId": "usmf",
   "CREDITLIMIT": null, "PRIMARYCONTACTPHONE": "call the front desk", "PARTYTYPE": "Robot"}
]"#;

const CONTACTS: &str = r#"[
  {"CONTACTPERSONID": "CP-1", "fullname": "Grace Brewster Hopper"},
  {"CONTACTPERSONID": "CP-2", "fullname": "Ludwig van Beethoven"},
  {"CONTACTPERSONID": "CP-3", "fullname": "Lovelace, Ada King"}
]"#;

/// One step of the demo: a plugin, its settings, and the rows it gets.
struct Step {
    plugin: &'static str,
    map: &'static str,
    settings: &'static [(&'static str, &'static str)],
    rows: &'static str,
    shows: &'static [&'static str],
}

const STEPS: &[Step] = &[
    Step {
        plugin: "company-filter",
        map: "customers",
        settings: &[("companies", "usmf")],
        rows: CUSTOMERS,
        shows: &["CUSTOMERACCOUNT", "dataAreaId"],
    },
    Step {
        plugin: "currency-precision",
        map: "customers",
        settings: &[
            ("fields", "CREDITLIMIT"),
            ("places", "2"),
            ("rounding", "half-even"),
        ],
        rows: CUSTOMERS,
        shows: &["CUSTOMERACCOUNT", "CREDITLIMIT"],
    },
    Step {
        plugin: "phone-normalize",
        map: "customers",
        settings: &[("fields", "PRIMARYCONTACTPHONE"), ("region", "US")],
        rows: CUSTOMERS,
        shows: &["CUSTOMERACCOUNT", "PRIMARYCONTACTPHONE"],
    },
    Step {
        plugin: "value-map",
        map: "customers",
        settings: &[
            ("field", "PARTYTYPE"),
            ("values", "Organization:3, Person:1"),
        ],
        rows: CUSTOMERS,
        shows: &["CUSTOMERACCOUNT", "PARTYTYPE"],
    },
    Step {
        plugin: "party-name-split",
        map: "contacts",
        settings: &[],
        rows: CONTACTS,
        shows: &["firstname", "middlename", "lastname"],
    },
];

/// Runs the plugin walkthrough over the components in `plugins_dir`.
pub fn run(plugins_dir: &Path) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(plugins_dir.join(".compiled")),
        ..RuntimeConfig::default()
    })?;
    println!("dualwrite demo: the example plugins, run by the sandboxed host over sample rows\n");
    for step in STEPS {
        let plugin = load(&runtime, plugins_dir, step.plugin, PluginLimits::default())?;
        let batch = parse_rows(step.rows).context("the demo's sample rows")?;
        let context = Context {
            table_map: step.map.into(),
            direction: Direction::LeftToRight,
            company: None,
            settings: step
                .settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let settings: Vec<String> = step
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "── {} on map `{}` ({})",
            plugin.id(),
            step.map,
            settings.join(", ")
        );
        if plugin.has_filter() {
            let call = plugin.filter(&context, &batch)?;
            for (row, verdict) in call.result.iter().enumerate() {
                let outcome = match verdict {
                    Verdict::Keep => "keep".to_owned(),
                    Verdict::Skip(reason) => format!("skip: {reason}"),
                    Verdict::Fail(message) => format!("fail: {message}"),
                };
                println!(
                    "   {:<44} {outcome}",
                    show(&batch.fields, &batch.rows[row], step.shows)
                );
            }
            println!(
                "   {:?} for {} rows\n",
                call.stats.elapsed,
                batch.rows.len()
            );
        } else {
            let call = plugin.transform(&context, &batch)?;
            for (row, outcome) in call.result.outcomes.iter().enumerate() {
                let line = match outcome {
                    Outcome::Unchanged => format!(
                        "{:<44} unchanged",
                        show(&batch.fields, &batch.rows[row], step.shows)
                    ),
                    Outcome::Changed(_) => {
                        let values: Vec<_> = call
                            .result
                            .row(&batch, row)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|v| v.unwrap_or(dualwrite::plugin::Value::Null))
                            .collect();
                        format!(
                            "{:<44} changed",
                            show(&call.result.fields, &values, step.shows)
                        )
                    }
                    Outcome::Skip(reason) => format!(
                        "{:<44} skip: {reason}",
                        show(&batch.fields, &batch.rows[row], step.shows)
                    ),
                    Outcome::Fail(message) => format!(
                        "{:<44} fail: {message}",
                        show(&batch.fields, &batch.rows[row], step.shows)
                    ),
                };
                println!("   {line}");
            }
            println!(
                "   {:?} for {} rows\n",
                call.stats.elapsed,
                batch.rows.len()
            );
        }
    }
    contain_hostile(&runtime, plugins_dir)?;
    Ok(ExitCode::SUCCESS)
}

fn contain_hostile(runtime: &Runtime, dir: &Path) -> anyhow::Result<()> {
    if !dir.join("hostile-loop.wasm").exists() {
        return Ok(());
    }
    println!("── a hostile plugin that loops forever, with a 200 ms deadline");
    let limits = PluginLimits {
        timeout: Duration::from_millis(200),
        ..PluginLimits::default()
    };
    let hostile = load(runtime, dir, "hostile-loop", limits)?;
    let batch = parse_rows(CONTACTS)?;
    let context = Context {
        table_map: "contacts".into(),
        direction: Direction::LeftToRight,
        company: None,
        settings: Vec::new(),
    };
    match hostile.transform(&context, &batch) {
        Ok(_) => println!("   it returned, which it should not have"),
        Err(error) => println!("   contained: {error}"),
    }
    let split = load(runtime, dir, "party-name-split", PluginLimits::default())?;
    let call = split.transform(&context, &batch)?;
    println!(
        "   and {} still serves the next batch: {} rows in {:?}",
        split.id(),
        call.result.outcomes.len(),
        call.stats.elapsed
    );
    Ok(())
}

fn load(runtime: &Runtime, dir: &Path, name: &str, limits: PluginLimits) -> anyhow::Result<Plugin> {
    let path = dir.join(format!("{name}.wasm"));
    if !path.exists() {
        anyhow::bail!(
            "plugin {name} is not built at {}; run `cargo xtask demo`, which builds the plugins first",
            path.display()
        );
    }
    Ok(Plugin::load_file(runtime, &path, limits)?)
}

fn show(fields: &[String], values: &[dualwrite::plugin::Value], shows: &[&str]) -> String {
    shows
        .iter()
        .filter_map(|name| {
            let index = fields.iter().position(|field| field == name)?;
            let json = value_to_json(values.get(index)?);
            Some(match json {
                serde_json::Value::String(text) => text,
                serde_json::Value::Object(object) => match object.into_iter().next() {
                    Some((_, serde_json::Value::String(text))) => text,
                    Some((_, other)) => other.to_string(),
                    None => String::new(),
                },
                other => other.to_string(),
            })
        })
        .collect::<Vec<_>>()
        .join(" │ ")
}
