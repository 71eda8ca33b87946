//! The transform job: a batch of customer rows as finops sends them (JSON,
//! money as a JSON number), the rows of two companies kept, the credit limit
//! rounded half away from zero to 2 places, the rows out as JSON.
//!
//! dualwrite runs it as `company-filter` then `currency-precision`, one
//! map's plugin chain ([`Chain`]): the JSON text read straight into plugin
//! rows, the chain run over them (each plugin sent only the fields it
//! reads, the rows passed from step to step), the kept rows written out as
//! JSON. Native runs the same job in plain Rust: serde_json in (a
//! `serde_json::Map` per row), the filter, the rounding with rust_decimal,
//! serde_json out. Both sides start from the same JSON text and must give
//! the same rows; the ratio is native rows/s ÷ dualwrite rows/s.
//!
//! The same run also measures dualwrite with one lever taken away at a time:
//! the rows read into `serde_json::Map`s first (as the engine's connectors
//! hand them over, [`Chain::run`]), every field sent to every plugin, and
//! each plugin a chain of its own with the rows written to JSON and read
//! again in between.

use dualwrite::checkpoint::Direction;
use dualwrite::config::{BuildOptions, Config};
use dualwrite::map::NoCatalogue;
use dualwrite::sync::plugins::{Chain, Fate, json};
use dualwrite_tests::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};
use std::hint::black_box;
use std::str::FromStr;

/// Rows per batch.
pub const ROWS: usize = 1024;

/// The companies kept.
const COMPANIES: [&str; 2] = ["usmf", "demf"];

/// The filter step of the job's map.
const FILTER: &str = r#"{ path = COMPANY_FILTER, direction = ">", kind = "filter", settings = { companies = "usmf, demf" } }"#;

/// The rounding step of the job's map.
const ROUND: &str = r#"{ path = CURRENCY_PRECISION, direction = ">", kind = "transform", settings = { fields = "CREDITLIMIT", places = "2", rounding = "half-up" } }"#;

/// The batch as finops sends it: ten fields a row.
pub fn batch_json() -> String {
    let rows: Vec<String> = (0..ROWS)
        .map(|i| {
            format!(
                r#"{{"CUSTOMERACCOUNT": "C-{i:06}", "ORGANIZATIONNAME": "Contoso {i} Ltd", "dataAreaId": "{}", "CUSTOMERGROUPID": "{}", "SALESCURRENCYCODE": "USD", "CREDITLIMIT": {}.{:03}, "PAYMENTTERMS": "Net30", "SALESTAXGROUP": "CA", "PRIMARYCONTACTPHONE": "+1 206 555 {:04}", "ADDRESSCITY": "Seattle"}}"#,
                ["usmf", "demf", "gbsi"][i % 3],
                10 + i % 4,
                1000 + i * 7,
                (i * 37) % 1000,
                i % 10_000,
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// A map's plugin chain of `steps`, loaded through a real plan.
pub fn chain(steps: &[&str]) -> Chain {
    let steps: Vec<String> = steps
        .iter()
        .map(|step| {
            step.replace("COMPANY_FILTER", &format!("{COMPANY_FILTER:?}"))
                .replace("CURRENCY_PRECISION", &format!("{CURRENCY_PRECISION:?}"))
        })
        .collect();
    let text = format!(
        r#"
[systems.finops]
kind = "finops"
url = "http://127.0.0.1:1"

[systems.dataverse]
kind = "dataverse"
url = "http://127.0.0.1:2"

[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company"]
fields = ["OrganizationName = name"]
plugins = [{}]
"#,
        steps.join(", ")
    );
    let config = Config::from_toml("bench.toml", &text).expect("the bench config parses");
    let plan = config
        .build(&BuildOptions {
            registry: Default::default(),
            file: "bench.toml".into(),
            base_dir: ".".into(),
            catalogue: &NoCatalogue,
            env: &|_| None,
        })
        .unwrap_or_else(|problems| panic!("the bench config builds: {problems:?}"));
    Chain::load(runtime(), plan.map("customers").expect("the map")).expect("the chain loads")
}

/// The job through dualwrite: the JSON read straight into rows, the chain
/// run over them, the kept rows out as JSON.
pub fn dualwrite(chain: &Chain, json: &str) -> String {
    let mut rows = json::from_json(json).expect("the batch parses");
    let fates = chain.run_rows("customers", Direction::LeftToRight, &mut rows, &[]);
    json::to_json(&rows, |row| fates[row] == Fate::Keep)
}

/// The job as the engine runs a batch its connectors read: the JSON parsed
/// into a `serde_json::Map` per row, the chain run over them
/// ([`Chain::run`]: the maps to rows and the changes back), the kept rows
/// out as JSON.
pub fn dualwrite_via_maps(chain: &Chain, json: &str) -> String {
    let rows: Vec<Map<String, Value>> = serde_json::from_str(json).expect("the batch parses");
    let mut rows: Vec<(Option<String>, Map<String, Value>)> =
        rows.into_iter().map(|row| (None, row)).collect();
    let fates = chain.run("customers", Direction::LeftToRight, &mut rows);
    let kept: Vec<&Map<String, Value>> = rows
        .iter()
        .zip(&fates)
        .filter(|(_, fate)| **fate == Fate::Keep)
        .map(|((_, row), _)| row)
        .collect();
    serde_json::to_string(&kept).expect("rows serialize")
}

/// The job with each step a chain of its own: JSON out and in again
/// between them.
pub fn dualwrite_step_by_step(chains: &[Chain], json: &str) -> String {
    let mut text = json.to_owned();
    for chain in chains {
        text = dualwrite(chain, &text);
    }
    text
}

/// The same job in plain Rust.
pub fn native(json: &str) -> String {
    let rows: Vec<Map<String, Value>> = serde_json::from_str(json).expect("the batch parses");
    let mut kept = Vec::with_capacity(rows.len());
    for mut row in rows {
        let company = row.get("dataAreaId").and_then(Value::as_str).unwrap_or("");
        if !COMPANIES.iter().any(|c| c.eq_ignore_ascii_case(company)) {
            continue;
        }
        if let Some(Value::Number(limit)) = row.get("CREDITLIMIT") {
            let mut rounded = Decimal::from_str(&limit.to_string())
                .expect("a decimal")
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            rounded.rescale(2);
            let number = Number::from_str(&rounded.to_string()).expect("a number");
            row.insert("CREDITLIMIT".into(), Value::Number(number));
        }
        kept.push(row);
    }
    serde_json::to_string(&kept).expect("rows serialize")
}

/// Checks that every variant gives the native rows, then measures them;
/// prints each ratio to native, the main one as `plugins/transform-job`.
pub fn run(measure: impl Fn(usize, &mut dyn FnMut()) -> f64) {
    let json = batch_json();
    let full = chain(&[FILTER, ROUND]);
    let every_field = chain(&[FILTER, ROUND]).sending_every_field();
    let separate = [chain(&[FILTER]), chain(&[ROUND])];
    let theirs: Value = serde_json::from_str(&native(&json)).expect("native output parses");
    assert_eq!(
        theirs.as_array().map(Vec::len),
        Some(ROWS - ROWS / 3),
        "two companies of three are kept"
    );
    let variants: [(&str, &dyn Fn() -> String); 4] = [
        ("dualwrite", &|| dualwrite(&full, &json)),
        ("  rows via maps", &|| dualwrite_via_maps(&full, &json)),
        ("  every field sent", &|| dualwrite(&every_field, &json)),
        ("  JSON between steps", &|| {
            dualwrite_step_by_step(&separate, &json)
        }),
    ];
    for (name, variant) in &variants {
        let ours: Value = serde_json::from_str(&variant()).expect("our output parses");
        assert_eq!(ours, theirs, "{} gives the native rows", name.trim());
    }
    let native_rate = measure(ROWS, &mut || {
        black_box(native(black_box(&json)));
    });
    println!(
        "\ntransform job ({ROWS} rows, 10 fields, company-filter then currency-precision, JSON in and out)"
    );
    println!(
        "{:<24} {:>12.0} rows/s ({:.2} µs a row)",
        "native",
        native_rate,
        1e6 / native_rate
    );
    let mut main = 0.0;
    for (name, variant) in &variants {
        let rate = measure(ROWS, &mut || {
            black_box(variant());
        });
        if main == 0.0 {
            main = native_rate / rate;
        }
        println!(
            "{:<24} {:>12.0} rows/s ({:.2} µs a row) {:>6.2}x",
            name,
            rate,
            1e6 / rate,
            native_rate / rate
        );
    }
    println!("plugins/transform-job {main:.2}");
}
