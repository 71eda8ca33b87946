//! `Config::build` in process: what the plan holds for the sync engine.

use std::path::PathBuf;

use super::{BuildOptions, Config};
use crate::map::{Direction, EmulatorCatalogue, Literal, NoCatalogue, Plan, Problem, ProblemCode};

const STANDARD_MAPS: &str = include_str!("../../../config/standard-maps.toml");

fn build(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, Vec<Problem>> {
    let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
    let config = Config::from_toml("maps.toml", text).expect("the config parses");
    config.build(&BuildOptions {
        file: "maps.toml".into(),
        base_dir: PathBuf::from("."),
        catalogue: &catalogue,
        env,
    })
}

fn secrets(name: &str) -> Option<String> {
    Some(format!("secret-of-{name}"))
}

#[test]
fn the_standard_maps_build_a_plan_with_resolved_lookups() {
    let plan = build(STANDARD_MAPS, &secrets).expect("the standard maps are valid");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let customers = plan.map("customers").expect("a customers map");
    assert_eq!(customers.key.len(), 2);
    let group = customers
        .fields
        .iter()
        .find(|field| field.left.as_deref() == Some("CustomerGroupId"))
        .expect("the customer group field");
    assert_eq!(group.direction, Direction::Both);
    let lookup = group.lookup.as_ref().expect("a lookup");
    assert_eq!(lookup.key_field, "msdyn_groupid");
    assert_eq!(lookup.map.as_deref(), Some("customer-groups"));
    let company = customers.key.get(1).and_then(|pair| pair.lookup.as_ref());
    assert_eq!(
        company.and_then(|lookup| lookup.map.as_deref()),
        Some("legal-entities")
    );
    let party_type = customers
        .fields
        .iter()
        .find(|field| field.left.as_deref() == Some("PartyType"))
        .expect("the party type default");
    assert_eq!(party_type.right, None);
    assert_eq!(
        party_type.default,
        Some(Literal::Text("Organization".into()))
    );
    assert!(customers.left.filter.is_some() && customers.right.filter.is_some());
    let company = customers
        .company_pair()
        .expect("customers are striped by company");
    assert_eq!(company.right.as_deref(), Some("msdyn_company"));
    let currencies = plan.map("currencies").expect("a currencies map");
    assert!(currencies.company_pair().is_none());
}

#[test]
fn secrets_come_from_the_environment_and_never_show_in_debug() {
    let plan = build(STANDARD_MAPS, &secrets).expect("valid");
    let auth = plan
        .systems
        .get("finops")
        .and_then(|system| system.auth.as_ref())
        .expect("finops has credentials");
    let secret = auth.client_secret.as_ref().expect("the secret was read");
    assert_eq!(secret.expose(), "secret-of-FINOPS_SECRET");
    let shown = format!("{plan:?}");
    assert!(
        !shown.contains("secret-of-"),
        "the secret leaked into Debug"
    );
    assert!(shown.contains("<redacted>"));

    let plan = build(STANDARD_MAPS, &|_| None).expect("an unset secret is only a warning");
    let codes: Vec<ProblemCode> = plan.warnings.iter().map(|problem| problem.code).collect();
    assert_eq!(codes, [ProblemCode::SecretUnset, ProblemCode::SecretUnset]);
}

#[test]
fn without_a_catalogue_only_the_config_itself_is_checked() {
    let text = STANDARD_MAPS.replace("\"CustomersV3\"", "\"NoSuchTable\"");
    assert!(build(&text, &secrets).is_err());
    let config = Config::from_toml("maps.toml", &text).expect("parses");
    let plan = config
        .build(&BuildOptions {
            file: "maps.toml".into(),
            base_dir: PathBuf::from("."),
            catalogue: &NoCatalogue,
            env: &secrets,
        })
        .expect("valid without a catalogue");
    let lookups = plan
        .maps
        .iter()
        .flat_map(|map| map.key.iter().chain(&map.fields))
        .filter(|field| field.lookup.is_some())
        .count();
    let unresolved = plan
        .warnings
        .iter()
        .filter(|problem| problem.code == ProblemCode::UnresolvedLookup)
        .count();
    assert_eq!(
        unresolved,
        lookups - 2,
        "all but the two `via` lookups are unresolved"
    );
}

#[test]
fn a_batch_size_one_batch_cannot_carry_is_an_error_not_clamped() {
    for size in [0, 1001, 5000] {
        let text = format!("{STANDARD_MAPS}\n[engine]\nbatch_size = {size}\n");
        let problems = build(&text, &secrets).expect_err("the batch size is refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::BatchSize)
            .unwrap_or_else(|| panic!("no DW022 for {size}: {problems:?}"));
        assert!(problem.is_error());
        assert_eq!(problem.file, "maps.toml");
        assert_eq!(problem.map, None);
        assert_eq!(problem.field.as_deref(), Some("engine.batch_size"));
        assert!(
            problem.message.contains("`[engine] batch_size`")
                && problem.message.contains(&format!(" {size}")),
            "{problem}"
        );
        assert!(
            problem
                .help
                .contains("at most 1000: a $batch carries at most 1,000 requests"),
            "{problem}"
        );
    }
    for size in [1, 1000] {
        let text = format!("{STANDARD_MAPS}\n[engine]\nbatch_size = {size}\n");
        let plan = build(&text, &secrets).expect("a batch size from 1 to 1000 is valid");
        assert_eq!(plan.engine.batch_size, size);
    }
}

#[test]
fn parse_errors_name_line_and_column() {
    let error = Config::from_toml("maps.toml", "[systems.x]\nkind = \"sap\"\n")
        .expect_err("an unknown kind");
    let text = error.to_string();
    assert!(text.starts_with("maps.toml:2:8:"), "{text}");
}

fn systems(finops_url: &str, extra: &str) -> String {
    format!(
        r#"
[systems.finops]
kind = "finops"
url = "{finops_url}"
auth = {{ token_url = "https://login.example.com/t/oauth2/v2.0/token", client_id = "c", client_secret_env = "S" }}
{extra}
"#
    )
}

fn problems_with(text: &str, code: ProblemCode) -> Vec<Problem> {
    match build(text, &secrets) {
        Ok(plan) => plan.warnings,
        Err(problems) => problems,
    }
    .into_iter()
    .filter(|problem| problem.code == code)
    .collect()
}

#[test]
fn plain_http_is_an_error_except_to_loopback() {
    for url in [
        "http://127.0.0.1:8081",
        "http://127.8.9.10/data",
        "http://[::1]:8082",
        "http://localhost:8081",
        "http://LOCALHOST",
        "https://contoso.operations.dynamics.com",
    ] {
        let text = systems(url, "");
        assert!(
            problems_with(&text, ProblemCode::InsecureUrl).is_empty(),
            "{url} is allowed"
        );
        build(&text, &secrets).unwrap_or_else(|problems| panic!("{url}: {problems:#?}"));
    }
    for url in [
        "http://contoso.operations.dynamics.com",
        "http://10.0.0.5:8081",
        "http://[::2]/data",
        "http://localhost.example.com",
    ] {
        let problems = problems_with(&systems(url, ""), ProblemCode::InsecureUrl);
        let [problem] = problems.as_slice() else {
            panic!("{url}: one insecure-url problem, got {problems:#?}");
        };
        assert!(problem.is_error(), "{problem}");
        assert_eq!(problem.field.as_deref(), Some("systems.finops.url"));
        let shown = problem.to_string();
        assert!(
            shown.contains("DW023 insecure-url")
                && shown.contains("system `finops`")
                && shown.contains(url)
                && shown.contains("https://"),
            "{shown}"
        );
    }
    let token_over_http = systems("https://contoso.operations.dynamics.com", "")
        .replace("https://login.example.com", "http://login.example.com");
    let problems = problems_with(&token_over_http, ProblemCode::InsecureUrl);
    assert_eq!(
        problems
            .iter()
            .map(|p| p.field.as_deref())
            .collect::<Vec<_>>(),
        [Some("systems.finops.auth.token_url")]
    );
}

#[test]
fn ca_file_is_read_at_build_and_a_bad_one_is_a_problem_naming_file_and_system() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let missing = dir.path().join("missing.pem");
    for (file, why) in [(&not_pem, "holds no"), (&missing, "cannot be read")] {
        let extra = format!("ca_file = {:?}", file.display().to_string());
        let problems = problems_with(
            &systems("https://contoso.operations.dynamics.com", &extra),
            ProblemCode::CaFile,
        );
        let [problem] = problems.as_slice() else {
            panic!("one ca-file problem, got {problems:#?}");
        };
        assert!(problem.is_error());
        assert_eq!(problem.field.as_deref(), Some("systems.finops.ca_file"));
        let shown = problem.to_string();
        assert!(
            shown.contains("DW024 ca-file")
                && shown.contains("system `finops`")
                && shown.contains(&file.display().to_string())
                && shown.contains(why),
            "{shown}"
        );
    }
    let plan = build(
        &systems("https://contoso.operations.dynamics.com", ""),
        &secrets,
    )
    .expect("valid without a CA");
    assert!(plan.systems.get("finops").is_some_and(|s| s.ca.is_none()));
}

#[test]
fn concurrency_out_of_bounds_is_an_error_naming_the_field() {
    let cases = [
        (
            "[engine]\nbatches_in_flight = 0\n",
            "engine.batches_in_flight",
        ),
        (
            "[engine]\nbatches_in_flight = 33\n",
            "engine.batches_in_flight",
        ),
    ];
    for (extra, field) in cases {
        let text = format!("{STANDARD_MAPS}\n{extra}");
        let problems = build(&text, &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::Concurrency)
            .unwrap_or_else(|| panic!("no DW033 for {extra}: {problems:?}"));
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    for max in [0, 53] {
        let text = STANDARD_MAPS.replacen(
            "[systems.dataverse]\n",
            &format!("[systems.dataverse]\nmax_concurrency = {max}\n"),
            1,
        );
        let problems = build(&text, &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::Concurrency)
            .unwrap_or_else(|| panic!("no DW033 for {max}: {problems:?}"));
        assert_eq!(
            problem.field.as_deref(),
            Some("systems.dataverse.max_concurrency")
        );
        assert!(problem.message.contains(&format!("is {max}")), "{problem}");
    }
    let text = STANDARD_MAPS.replacen(
        "[systems.dataverse]\n",
        "[systems.dataverse]\nmax_concurrency = 8\n",
        1,
    );
    let plan = build(&text, &secrets).expect("8 is allowed");
    assert_eq!(plan.systems["dataverse"].max_concurrency, 8);
    assert_eq!(plan.systems["finops"].max_concurrency, 52, "the default");
}
