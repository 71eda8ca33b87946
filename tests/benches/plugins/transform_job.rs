//! The transform job: a batch of customer rows as finops sends them (JSON,
//! money as a JSON number), the rows of two companies kept, the credit limit
//! rounded half away from zero to 2 places, the rows out as JSON.
//!
//! dualwrite runs it as the engine does: `company-filter` then
//! `currency-precision`, one map's plugin chain ([`Chain::run`]) over the
//! rows. Native runs the same job in plain Rust: serde_json in, the filter,
//! the rounding with rust_decimal, serde_json out. Both sides start from the
//! same JSON text and must give the same rows.

use dualwrite::checkpoint::Direction;
use dualwrite::config::{BuildOptions, Config};
use dualwrite::map::NoCatalogue;
use dualwrite::sync::plugins::Chain;
use dualwrite_tests::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};
use std::hint::black_box;
use std::str::FromStr;

/// Rows per batch.
pub const ROWS: usize = 1024;

/// The companies kept.
const COMPANIES: [&str; 2] = ["usmf", "demf"];

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

/// The plugin chain of the job's map, loaded through a real plan.
pub fn chain() -> Chain {
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
plugins = [
  {{ path = {COMPANY_FILTER:?}, direction = ">", kind = "filter", settings = {{ companies = "usmf, demf" }} }},
  {{ path = {CURRENCY_PRECISION:?}, direction = ">", kind = "transform", settings = {{ fields = "CREDITLIMIT", places = "2", rounding = "half-up" }} }},
]
"#
    );
    let config = Config::from_toml("bench.toml", &text).expect("the bench config parses");
    let plan = config
        .build(&BuildOptions {
            file: "bench.toml".into(),
            base_dir: ".".into(),
            catalogue: &NoCatalogue,
            env: &|_| None,
        })
        .unwrap_or_else(|problems| panic!("the bench config builds: {problems:?}"));
    Chain::load(runtime(), plan.map("customers").expect("the map")).expect("the chain loads")
}

/// The job through dualwrite: the service's JSON parsed into rows, the
/// map's chain run over them as the engine runs it, the kept rows out as
/// JSON.
pub fn dualwrite(chain: &Chain, json: &str) -> String {
    let rows: Vec<Map<String, Value>> = serde_json::from_str(json).expect("the batch parses");
    let mut rows: Vec<(Option<String>, Map<String, Value>)> =
        rows.into_iter().map(|row| (None, row)).collect();
    let fates = chain.run("customers", Direction::LeftToRight, &mut rows);
    let kept: Vec<&Map<String, Value>> = rows
        .iter()
        .zip(&fates)
        .filter(|(_, fate)| **fate == dualwrite::sync::plugins::Fate::Keep)
        .map(|((_, row), _)| row)
        .collect();
    serde_json::to_string(&kept).expect("rows serialize")
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

/// Checks that both sides give the same rows, then measures both: the
/// ratio is native rows/s ÷ dualwrite rows/s.
pub fn run(measure: impl Fn(usize, &mut dyn FnMut()) -> f64) {
    let json = batch_json();
    let chain = chain();
    let ours: Value = serde_json::from_str(&dualwrite(&chain, &json)).expect("our output parses");
    let theirs: Value = serde_json::from_str(&native(&json)).expect("native output parses");
    assert_eq!(ours, theirs, "dualwrite and native give the same rows");
    assert_eq!(
        theirs.as_array().map(Vec::len),
        Some(ROWS - ROWS / 3),
        "two companies of three are kept"
    );
    let ours = measure(ROWS, &mut || {
        black_box(dualwrite(&chain, black_box(&json)));
    });
    let theirs = measure(ROWS, &mut || {
        black_box(native(black_box(&json)));
    });
    println!(
        "\ntransform job ({ROWS} rows, 10 fields, company-filter then currency-precision, JSON in and out)"
    );
    println!(
        "{:<20} {:>14.0} rows/s ({:.2} µs a row)",
        "dualwrite",
        ours,
        1e6 / ours
    );
    println!(
        "{:<20} {:>14.0} rows/s ({:.2} µs a row)",
        "native",
        theirs,
        1e6 / theirs
    );
    println!("plugins/transform-job {:.2}", theirs / ours);
}
