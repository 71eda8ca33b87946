//! `initial_sync` of a `[[maps]]` entry: read into the plan, defaulted to
//! the left side (the side that flows, on a one-way map), and refused with
//! `DW040 initial-sync` naming the map and the field.

use std::path::PathBuf;

use super::{BuildOptions, Config};
use crate::map::{EmulatorCatalogue, InitialSync, Plan, Problem, ProblemCode};

/// Builds `text` against the built-in tables (shared by the config's
/// per-key tests).
pub(super) fn build(text: &str) -> Result<Plan, Vec<Problem>> {
    let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
    let config = Config::from_toml("maps.toml", text).expect("the config parses");
    config.build(&BuildOptions {
        registry: Default::default(),
        file: "maps.toml".into(),
        base_dir: PathBuf::from("."),
        catalogue: &catalogue,
        env: &|name| Some(format!("secret-of-{name}")),
    })
}

/// A config with one currencies map: `fields`, and `line` in the map.
fn currencies(fields: &str, line: &str) -> String {
    currencies_with(fields, line, "", "")
}

/// A config with one currencies map: `fields`, `line` in the map, `engine`
/// lines in `[engine]`, `dataverse` lines in its system.
pub(super) fn currencies_with(fields: &str, line: &str, engine: &str, dataverse: &str) -> String {
    format!(
        r#"
[engine]
{engine}

[systems.finops]
kind = "finops"
url = "http://127.0.0.1:8081"
auth = {{ token_url = "http://127.0.0.1:8081/t/oauth2/v2.0/token", client_id = "c", client_secret_env = "S" }}

[systems.dataverse]
kind = "dataverse"
url = "http://127.0.0.1:8082"
auth = {{ token_url = "http://127.0.0.1:8082/t/oauth2/v2.0/token", client_id = "c", client_secret_env = "S" }}
{dataverse}

[[maps]]
name = "currencies"
left = {{ system = "finops", table = "Currencies" }}
right = {{ system = "dataverse", table = "transactioncurrencies" }}
key = ["CurrencyCode = isocurrencycode"]
fields = [{fields}]
{line}
"#
    )
}

fn mode(fields: &str, line: &str) -> InitialSync {
    let plan =
        build(&currencies(fields, line)).unwrap_or_else(|problems| panic!("{line}: {problems:#?}"));
    plan.map("currencies").expect("the map").initial_sync
}

#[test]
fn initial_sync_is_read_and_defaults_to_the_left_side() {
    let both = r#""Name = currencyname""#;
    assert_eq!(mode(both, ""), InitialSync::Left);
    assert_eq!(mode(both, r#"initial_sync = "left""#), InitialSync::Left);
    assert_eq!(mode(both, r#"initial_sync = "right""#), InitialSync::Right);
    assert_eq!(mode(both, r#"initial_sync = "none""#), InitialSync::None);
    // A one-way map copies the side it reads.
    assert_eq!(mode(r#""Name > currencyname""#, ""), InitialSync::Left);
    assert_eq!(mode(r#""Name < currencyname""#, ""), InitialSync::Right);
    assert_eq!(
        mode(r#""Name < currencyname""#, r#"initial_sync = "none""#),
        InitialSync::None
    );
}

fn refused(fields: &str, line: &str) -> Problem {
    let problems = build(&currencies(fields, line)).expect_err("the value is refused");
    let problem = problems
        .iter()
        .find(|problem| problem.code == ProblemCode::InitialSync)
        .unwrap_or_else(|| panic!("no DW040 for {line}: {problems:#?}"))
        .clone();
    assert!(problem.is_error());
    assert_eq!(problem.map.as_deref(), Some("currencies"));
    assert_eq!(problem.field.as_deref(), Some("initial_sync"));
    problem
}

#[test]
fn a_bad_initial_sync_is_dw039_naming_the_map_and_field() {
    for bad in ["finops", "Left", "", "both"] {
        let problem = refused(
            r#""Name = currencyname""#,
            &format!("initial_sync = \"{bad}\""),
        );
        assert!(
            problem
                .message
                .contains(&format!("`{bad}` is not an initial sync")),
            "{problem}"
        );
        assert!(problem.help.contains("\"left\""), "{problem}");
    }
}

#[test]
fn a_master_the_map_never_reads_is_dw039() {
    let problem = refused(r#""Name > currencyname""#, r#"initial_sync = "right""#);
    assert!(
        problem
            .message
            .contains("makes the right side the master, but the map never reads it"),
        "{problem}"
    );
    assert!(problem.help.contains("\"left\""), "{problem}");
    let problem = refused(r#""Name < currencyname""#, r#"initial_sync = "left""#);
    assert!(
        problem.message.contains("flow right to left only"),
        "{problem}"
    );
}
