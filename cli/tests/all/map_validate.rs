//! `dualwrite map validate`, run as the real binary on small config files:
//! each problem code appears with its map and field, and the standard maps
//! validate clean against the emulators' tables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEMS: &str = r#"
[systems.finops]
kind = "finops"
url = "http://127.0.0.1:1"

[systems.dataverse]
kind = "dataverse"
url = "http://127.0.0.1:2"
"#;

const LEGAL_ENTITIES: &str = r#"
[[maps]]
name = "legal-entities"
left = { system = "finops", table = "LegalEntities" }
right = { system = "dataverse", table = "cdm_companies" }
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]
"#;

fn plugin(name: &str) -> String {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing; build the plugins with `cargo xtask plugins`",
        path.display()
    );
    path.display().to_string().replace('\\', "/")
}

fn validate(path: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["map", "validate", "-c"])
        .arg(path)
        .args(extra)
        .env_remove("FINOPS_SECRET")
        .env("DATAVERSE_SECRET", "set-for-the-test")
        .output()
        .expect("the binary runs")
}

/// Validates `config` (after the two systems) with `--json`, and checks
/// that every `(code, map, field)` in `expected` is reported, and whether
/// the run failed.
fn check(config: &str, expected: &[(&str, &str, &str)], fails: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maps.toml");
    std::fs::write(&path, format!("{SYSTEMS}{config}")).expect("write config");
    let out = validate(&path, &["--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("stdout is JSON ({error}): {stdout}"));
    for (code, map, field) in expected {
        let found = problems.iter().any(|problem| {
            problem["code"] == *code
                && problem["map"].as_str().unwrap_or("") == *map
                && problem["field"].as_str().unwrap_or("") == *field
        });
        assert!(
            found,
            "no {code} for map {map:?} field {field:?} in {stdout}"
        );
    }
    assert_eq!(
        !out.status.success(),
        fails,
        "exit status {:?}: {stdout}",
        out.status
    );
    for problem in &problems {
        assert!(
            problem["file"]
                .as_str()
                .is_some_and(|file| file.ends_with("maps.toml"))
        );
        assert!(
            !problem["help"].as_str().unwrap_or("").is_empty(),
            "{problem}"
        );
    }
}

fn customers(extra_fields: &str, extra: &str) -> String {
    format!(
        r#"{LEGAL_ENTITIES}
[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", {extra_fields}]
{extra}
"#
    )
}

#[test]
fn config_errors_are_reported_with_a_code() {
    check("[[maps]]\nname = 1\n", &[("DW000", "", "")], true);
    check(
        &customers("", "colour = \"red\""),
        &[("DW000", "", "")],
        true,
    );
}

#[test]
fn a_batch_size_one_batch_cannot_carry_is_reported() {
    for size in [0, 1001] {
        check(
            &format!("{LEGAL_ENTITIES}\n[engine]\nbatch_size = {size}\n"),
            &[("DW022", "", "engine.batch_size")],
            true,
        );
    }
    check(
        &format!("{LEGAL_ENTITIES}\n[engine]\nbatch_size = 1000\n"),
        &[],
        false,
    );
}

#[test]
fn systems_tables_and_fields_are_checked() {
    let config = customers("", "").replace(
        "right = { system = \"dataverse\", table = \"accounts\" }",
        "right = { system = \"crm\", table = \"accounts\" }",
    );
    check(&config, &[("DW001", "customers", "right.system")], true);
    let config = customers("", "").replace("\"CustomersV3\"", "\"Customers\"");
    check(&config, &[("DW002", "customers", "left.table")], true);
    check(
        &customers("\"CUSTOMERGROUP = msdyn_nothing\"", ""),
        &[
            ("DW003", "customers", "CUSTOMERGROUP"),
            ("DW003", "customers", "msdyn_nothing"),
        ],
        true,
    );
    check(
        &customers("\"CreditLimit >> creditlimit\"", ""),
        &[("DW004", "customers", "CreditLimit >> creditlimit")],
        true,
    );
}

#[test]
fn keys_are_checked() {
    let no_key = LEGAL_ENTITIES.replace("key = [\"LegalEntityId > cdm_companycode\"]", "");
    check(&no_key, &[("DW005", "legal-entities", "key")], true);
    let half_key =
        customers("", "").replace(", \"dataAreaId = msdyn_company.cdm_companycode\"", "");
    check(&half_key, &[("DW006", "customers", "dataAreaId")], true);
    let one_way = customers("", "").replace(
        "CustomerAccount = accountnumber",
        "CustomerAccount > accountnumber",
    );
    check(&one_way, &[("DW007", "customers", "CustomerAccount")], true);
    check(
        &customers("\"CustomerAccount > accountnumber\"", ""),
        &[("DW007", "customers", "CustomerAccount")],
        true,
    );
}

#[test]
fn lookups_are_resolved_through_maps() {
    check(
        &customers(
            "\"CustomerGroupId = msdyn_customergroupid.msdyn_groupid\"",
            "",
        ),
        &[("DW008", "customers", "msdyn_customergroupid")],
        true,
    );
    check(
        &customers(
            "\"CustomerGroupId = msdyn_customergroupid.msdyn_groupid via groups\"",
            "",
        ),
        &[("DW008", "customers", "msdyn_customergroupid")],
        true,
    );
    check(
        &customers("\"PaymentDay = msdyn_paymentday.msdyn_name\"", ""),
        &[("DW009", "customers", "msdyn_paymentday")],
        false,
    );
}

#[test]
fn dependencies_and_names_are_checked() {
    let cycle = format!(
        "{}\n{}",
        customers("", ""),
        LEGAL_ENTITIES.replace("fields =", "depends_on = [\"customers\"]\nfields =")
    )
    .replacen(LEGAL_ENTITIES, "", 1);
    check(&cycle, &[("DW010", "customers", "depends_on")], true);
    let unknown = customers("", "").replace(
        "depends_on = [\"legal-entities\"]",
        "depends_on = [\"legal-entities\", \"groups\"]",
    );
    check(&unknown, &[("DW011", "customers", "depends_on")], true);
    check(
        &format!("{LEGAL_ENTITIES}{LEGAL_ENTITIES}"),
        &[("DW012", "legal-entities", "name")],
        true,
    );
}

#[test]
fn filters_secrets_and_mappings_are_checked() {
    let config = customers("", "").replace(
        "table = \"CustomersV3\"",
        "table = \"CustomersV3\", filter = \"PartyType eq\"",
    );
    check(&config, &[("DW013", "customers", "left.filter")], true);
    let secret = SYSTEMS.replace(
        "url = \"http://127.0.0.1:1\"",
        "url = \"http://127.0.0.1:1\"\nauth = { token_url = \"http://127.0.0.1:1/t\", client_id = \"c\", client_secret_env = \"FINOPS_SECRET\" }",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maps.toml");
    std::fs::write(&path, format!("{secret}{LEGAL_ENTITIES}")).expect("write config");
    let out = validate(&path, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning does not fail: {stdout}");
    assert!(stdout.contains("warning[DW017 secret-unset]"), "{stdout}");
    assert!(
        stdout.contains("systems.finops.auth.client_secret_env"),
        "{stdout}"
    );
    check(
        &customers("\"SalesMemo > name\"", ""),
        &[("DW018", "customers", "name")],
        true,
    );
    check(
        &customers(
            "\"OnHoldStatus = msdyn_onholdstatus map { No: 1, Never: 1 }\"",
            "",
        ),
        &[("DW019", "customers", "OnHoldStatus")],
        true,
    );
    let striped = LEGAL_ENTITIES.replace("fields =", "companies = [\"usmf\"]\nfields =");
    check(&striped, &[("DW020", "legal-entities", "companies")], true);
    let unkeyed = customers("", "companies = [\"usmf\"]")
        .replace(", \"dataAreaId = msdyn_company.cdm_companycode\"", "");
    check(&unkeyed, &[("DW020", "customers", "companies")], true);
    check(&customers("", "companies = [\"usmf\"]"), &[], false);
}

#[test]
fn plugins_are_inspected() {
    let step = |path: &str, kind: &str| {
        customers(
            "",
            &format!("plugins = [{{ path = \"{path}\", direction = \">\"{kind} }}]"),
        )
    };
    check(
        &step("missing.wasm", ""),
        &[("DW014", "customers", "plugins[0]")],
        true,
    );
    check(
        &step(&plugin("hostile-wasi"), ""),
        &[("DW015", "customers", "plugins[0]")],
        true,
    );
    check(
        &step(&plugin("currency-precision"), ", kind = \"filter\""),
        &[("DW016", "customers", "plugins[0]")],
        true,
    );
    check(
        &step(&plugin("currency-precision"), ", kind = \"transform\""),
        &[],
        false,
    );
}

#[test]
fn the_standard_maps_validate_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/standard-maps.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["map", "validate", "-c"])
        .arg(&path)
        .env("FINOPS_SECRET", "x")
        .env("DATAVERSE_SECRET", "y")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("7 maps valid, in order: legal-entities, currencies, payment-terms, customer-groups, vendors, customers, contacts"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn text_output_names_code_severity_map_and_field_and_custom_tables_need_no_catalogue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maps.toml");
    let custom = customers("", "").replace("\"accounts\"", "\"new_projects\"");
    std::fs::write(&path, format!("{SYSTEMS}{custom}")).expect("write config");

    let out = validate(&path, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error[DW002 unknown-table]")
            && stdout.contains(
                "map `customers`, `right.table`: system `dataverse` has no table `new_projects`"
            )
            && stdout.contains("  help: known tables: accounts,"),
        "{stdout}"
    );

    let out = validate(&path, &["--no-catalogue"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning[DW009 unresolved-lookup]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 maps valid, in order: legal-entities, customers"),
        "{stdout}"
    );
}
