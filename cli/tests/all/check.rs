//! `dualwrite check` as a real process against emulators set up to fail
//! each check: one case per problem code, asserting the code and the exit
//! status, and the standard maps passing clean.

use std::path::Path;

use dualwrite_emulators::{
    Access, ClientCredentials, Depth, EmulatorConfig, RunningEmulator, SecurityRole, ServiceKind,
    TableAccess,
};
use serde_json::Value;

use crate::support::empty_config;

const SECRET_ENV: &str = "DUALWRITE_CHECK_TEST_SECRET";

const STANDARD_MAPS: &str = include_str!("../../../config/standard-maps.toml");

/// A custom Dataverse table keyed on `new_code`, change tracking on.
const PROJECTS: &str = r#"
[[tables]]
name = "new_projects"
entity = "new_project"
primary_key = ["new_projectid"]
fields = [
  { name = "new_projectid", type = "guid" },
  { name = "new_code", type = "string", max_length = 20 },
  { name = "new_name", type = "string" },
]
alternate_keys = [{ name = "new_code_key", fields = ["new_code"] }]
"#;

/// The finops side of the projects map.
const PROJECTS_FO: &str = r#"
[[tables]]
name = "ProjectsV1"
primary_key = ["ProjectId"]
fields = [
  { name = "ProjectId", type = "string", max_length = 20 },
  { name = "Name", type = "string", max_length = 60 },
]
"#;

const PROJECTS_MAP: &str = r#"
[[maps]]
name = "projects"
left = { system = "finops", table = "ProjectsV1" }
right = { system = "dataverse", table = "new_projects" }
key = ["ProjectId = new_code"]
fields = ["Name = new_name"]
"#;

/// A started emulator, with `tables` as its metadata file if any.
async fn emulator(
    kind: ServiceKind,
    dir: &Path,
    tables: Option<&str>,
    config: EmulatorConfig,
) -> RunningEmulator {
    let metadata_file = tables.map(|text| {
        let path = dir.join(format!("{kind:?}-tables.toml"));
        std::fs::write(&path, text).expect("write metadata");
        path
    });
    dualwrite_emulators::start(
        kind,
        EmulatorConfig {
            metadata_file,
            ..config
        },
    )
    .await
    .expect("emulator starts")
}

/// `[systems.NAME]` for a service at `url`, token from `token_url`.
fn system(name: &str, url: &str, token_url: &str) -> String {
    format!(
        "[systems.{name}]\nkind = \"{name}\"\nurl = \"{url}\"\n\
         auth = {{ token_url = \"{token_url}\", client_id = \"dualwrite\", client_secret_env = \"{SECRET_ENV}\" }}\n"
    )
}

fn systems(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        "{}{}",
        system("finops", &finops.url(), &finops.token_url()),
        system("dataverse", &dataverse.url(), &dataverse.token_url())
    )
}

/// What `dualwrite check` printed and how it exited.
struct Checked {
    success: bool,
    report: Value,
    stdout: String,
}

impl Checked {
    fn problems(&self) -> &[Value] {
        self.report["problems"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    fn codes(&self) -> Vec<&str> {
        self.problems()
            .iter()
            .filter_map(|problem| problem["code"].as_str())
            .collect()
    }

    /// The one problem with `code`.
    fn only(&self, code: &str) -> &Value {
        let found: Vec<&Value> = self
            .problems()
            .iter()
            .filter(|problem| problem["code"] == code)
            .collect();
        assert_eq!(found.len(), 1, "one {code} in {}", self.stdout);
        found[0]
    }
}

/// Runs the binary on `config` off the async runtime (the emulators keep
/// answering); `env` sets or, with `None`, removes the secret.
async fn check(config: String, json: bool, secret: Option<&str>) -> Checked {
    let secret = secret.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("maps.toml");
        std::fs::write(&path, config).expect("write config");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dualwrite"));
        command.args(["check", "-c"]).arg(&path);
        match secret {
            Some(secret) => command.env(SECRET_ENV, secret),
            None => command.env_remove(SECRET_ENV),
        };
        if json {
            command.arg("--json");
        }
        let out = command.output().expect("the binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report = if json {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|error| panic!("stdout is JSON ({error}): {stdout}"))
        } else {
            Value::Null
        };
        Checked {
            success: out.status.success(),
            report,
            stdout,
        }
    })
    .await
    .expect("the check thread")
}

async fn check_json(config: String) -> Checked {
    check(config, true, Some("dualwrite-secret")).await
}

/// Both emulators with the projects tables, `finops` and `dataverse`
/// configs applied.
async fn projects(
    dir: &Path,
    dataverse_tables: &str,
    finops_tables: &str,
    dataverse: EmulatorConfig,
) -> (RunningEmulator, RunningEmulator) {
    let finops = emulator(
        ServiceKind::Finops,
        dir,
        Some(finops_tables),
        empty_config(),
    )
    .await;
    let dataverse = emulator(
        ServiceKind::Dataverse,
        dir,
        Some(dataverse_tables),
        dataverse,
    )
    .await;
    (finops, dataverse)
}

#[tokio::test]
async fn the_standard_maps_pass_against_the_emulators() {
    let dir = tempfile::tempdir().expect("temp dir");
    let finops = emulator(ServiceKind::Finops, dir.path(), None, empty_config()).await;
    let dataverse = emulator(ServiceKind::Dataverse, dir.path(), None, empty_config()).await;
    let config = STANDARD_MAPS
        .replace("http://127.0.0.1:8081", &finops.url())
        .replace("http://127.0.0.1:8082", &dataverse.url())
        .replace("FINOPS_SECRET", SECRET_ENV)
        .replace("DATAVERSE_SECRET", SECRET_ENV);
    let run = check_json(config.clone()).await;
    assert!(run.success, "{}", run.stdout);
    assert!(run.problems().is_empty(), "{}", run.stdout);
    assert_eq!(run.report["ready"], true);
    assert_eq!(
        run.report["maps_checked"].as_array().map(Vec::len),
        Some(7),
        "{}",
        run.stdout
    );
    for system in run.report["systems"].as_array().expect("systems") {
        assert_eq!(system["answered"], true, "{system}");
        assert!(system["tables"].as_u64().is_some_and(|n| n > 0), "{system}");
    }
    let dataverse_user = run.report["systems"]
        .as_array()
        .and_then(|systems| systems.iter().find(|s| s["name"] == "dataverse"))
        .map(|system| system["user_id"].clone());
    assert!(
        dataverse_user.is_some_and(|user| user.is_string()),
        "WhoAmI named the user: {}",
        run.stdout
    );

    let text = check(config, false, Some("dualwrite-secret")).await;
    assert!(text.success, "{}", text.stdout);
    for part in [
        "system `dataverse` (dataverse, ",
        ": answers, user ",
        "tables read",
        ": ready: 7 of 7 maps checked, against 2 of 2 systems",
    ] {
        assert!(text.stdout.contains(part), "no {part} in {}", text.stdout);
    }
}

#[tokio::test]
async fn a_system_that_does_not_answer_is_service_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, dataverse) = projects(dir.path(), PROJECTS, PROJECTS_FO, empty_config()).await;
    let down = format!("http://{closed}");
    let config = format!(
        "{}{}{PROJECTS_MAP}",
        system("finops", &down, &format!("{down}/common/oauth2/v2.0/token")),
        system("dataverse", &dataverse.url(), &dataverse.token_url())
    );
    let run = check_json(config).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW025"], "{}", run.stdout);
    let problem = run.only("DW025");
    assert_eq!(problem["system"], "finops");
    assert_eq!(problem["severity"], "error");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not answer") && m.contains(&closed.to_string())),
        "{problem}"
    );
    assert!(
        run.report["notes"]
            .to_string()
            .contains("`ProjectsV1` of system `finops` was not checked"),
        "{}",
        run.stdout
    );

    // A URL that answers, but is not a Dataverse service.
    let finops = emulator(
        ServiceKind::Finops,
        dir.path(),
        Some(PROJECTS_FO),
        empty_config(),
    )
    .await;
    let config = format!(
        "{}{}{PROJECTS_MAP}",
        system("finops", &finops.url(), &finops.token_url()),
        system("dataverse", &finops.url(), &finops.token_url())
    );
    let run = check_json(config).await;
    assert!(!run.success);
    let problem = run.only("DW025");
    assert_eq!(problem["system"], "dataverse");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("WhoAmI")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_tls_unverified_and_its_ca_file_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let finops = emulator(
        ServiceKind::Finops,
        dir.path(),
        Some(PROJECTS_FO),
        empty_config(),
    )
    .await;
    let dataverse = emulator(
        ServiceKind::Dataverse,
        dir.path(),
        Some(PROJECTS),
        EmulatorConfig {
            tls: true,
            ..empty_config()
        },
    )
    .await;
    assert!(dataverse.url().starts_with("https://"));
    let config = format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse));
    let run = check_json(config.clone()).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW026"], "{}", run.stdout);
    let problem = run.only("DW026");
    assert_eq!(problem["system"], "dataverse");
    assert_eq!(problem["field"], "systems.dataverse.url");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not verify")),
        "{problem}"
    );

    // The standard maps' lookups are not reported unresolved: the tables
    // they point at were not read.
    let standard = STANDARD_MAPS
        .replace("http://127.0.0.1:8081", &finops.url())
        .replace("http://127.0.0.1:8082", &dataverse.url())
        .replace("FINOPS_SECRET", SECRET_ENV)
        .replace("DATAVERSE_SECRET", SECRET_ENV);
    let run = check_json(standard).await;
    assert_eq!(run.codes(), ["DW026"], "{}", run.stdout);
    assert_eq!(run.report["maps_checked"].as_array().map(Vec::len), Some(7));

    let ca_file = dataverse
        .ca_file()
        .expect("a CA file")
        .display()
        .to_string();
    let trusted = config.replace(
        "[systems.dataverse]\n",
        &format!("[systems.dataverse]\nca_file = \"{ca_file}\"\n"),
    );
    let run = check_json(trusted).await;
    assert!(run.success && run.problems().is_empty(), "{}", run.stdout);
}

#[tokio::test]
async fn no_token_refused_credentials_and_an_unset_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (finops, dataverse) = projects(dir.path(), PROJECTS, PROJECTS_FO, empty_config()).await;
    let config = format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse));

    let run = check(config.clone(), true, Some("not-the-secret")).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW027", "DW027"], "{}", run.stdout);
    for problem in run.problems() {
        assert!(
            problem["message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid_client")),
            "{problem}"
        );
    }

    let run = check(config, true, None).await;
    assert!(!run.success);
    assert_eq!(run.codes(), ["DW027", "DW027"], "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "the environment variable `{SECRET_ENV}` is not set"
        )),
        "{}",
        run.stdout
    );
    assert!(
        !run.codes().contains(&"DW017"),
        "the warning is not repeated"
    );
}

#[tokio::test]
async fn a_mapped_field_the_live_table_lacks_is_unknown_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let without = PROJECTS.replace("  { name = \"new_name\", type = \"string\" },\n", "");
    let (finops, dataverse) = projects(dir.path(), &without, PROJECTS_FO, empty_config()).await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW003"], "{}", run.stdout);
    assert_eq!(run.only("DW003")["field"], "new_name");
}

#[tokio::test]
async fn a_table_the_map_reads_without_change_tracking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let untracked = format!("{PROJECTS}change_tracking = false\n");
    let (finops, dataverse) = projects(dir.path(), &untracked, PROJECTS_FO, empty_config()).await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW028"], "{}", run.stdout);
    let problem = run.only("DW028");
    assert_eq!(
        (&problem["map"], &problem["system"], &problem["table"]),
        (
            &Value::from("projects"),
            &Value::from("dataverse"),
            &Value::from("new_projects")
        )
    );

    // A map that only writes the table does not read its changes.
    let one_way = PROJECTS_MAP
        .replace("\"ProjectId = new_code\"", "\"ProjectId > new_code\"")
        .replace("\"Name = new_name\"", "\"Name > new_name\"");
    let run = check_json(format!("{}{one_way}", systems(&finops, &dataverse))).await;
    assert!(run.success && run.problems().is_empty(), "{}", run.stdout);
}

#[tokio::test]
async fn a_key_that_is_no_alternate_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keyless = PROJECTS.replace(
        "alternate_keys = [{ name = \"new_code_key\", fields = [\"new_code\"] }]\n",
        "alternate_keys = [{ name = \"new_name_key\", fields = [\"new_name\"] }]\n",
    );
    let (finops, dataverse) = projects(dir.path(), &keyless, PROJECTS_FO, empty_config()).await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW029"], "{}", run.stdout);
    let message = run.only("DW029")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains("(new_code)") && message.contains("new_name_key (new_name)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_finops_entity_that_is_not_public() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hidden = format!("{PROJECTS_FO}public = false\n");
    let (finops, dataverse) = projects(dir.path(), PROJECTS, &hidden, empty_config()).await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW030"], "no DW002 beside it: {}", run.stdout);
    let problem = run.only("DW030");
    assert_eq!(problem["system"], "finops");
    assert_eq!(problem["table"], "ProjectsV1");
    assert_eq!(problem["field"], "left.table");
}

/// The client `dualwrite` with a role granting `privileges` only.
fn role(privileges: Vec<TableAccess>) -> EmulatorConfig {
    EmulatorConfig {
        clients: vec![ClientCredentials::default()],
        roles: vec![SecurityRole {
            client_id: "dualwrite".into(),
            privileges,
        }],
        ..empty_config()
    }
}

fn grant(table: &str, access: &[Access], depth: Depth) -> TableAccess {
    TableAccess {
        table: table.into(),
        access: access.to_vec(),
        depth,
    }
}

#[tokio::test]
async fn an_identity_without_the_privileges_a_map_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (finops, dataverse) = projects(
        dir.path(),
        PROJECTS,
        PROJECTS_FO,
        role(vec![grant(
            "new_projects",
            &[Access::Read, Access::Create, Access::Delete],
            Depth::Global,
        )]),
    )
    .await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW031"], "{}", run.stdout);
    let problem = run.only("DW031");
    assert_eq!(problem["table"], "new_projects");
    assert_eq!(problem["map"], "projects");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("prvWritenew_project") && m.contains("update")),
        "{problem}"
    );

    // Everything granted, but reading only the rows of its business unit.
    let dir = tempfile::tempdir().expect("temp dir");
    let (finops, dataverse) = projects(
        dir.path(),
        PROJECTS,
        PROJECTS_FO,
        role(vec![
            grant(
                "new_projects",
                &[Access::Create, Access::Write, Access::Delete],
                Depth::Global,
            ),
            grant("new_projects", &[Access::Read], Depth::Local),
        ]),
    )
    .await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(run.success, "a warning does not fail: {}", run.stdout);
    assert_eq!(run.codes(), ["DW032"], "{}", run.stdout);
    let problem = run.only("DW032");
    assert_eq!(problem["severity"], "warning");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("Local depth")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_finops_identity_that_may_not_read_the_entity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let finops = emulator(
        ServiceKind::Finops,
        dir.path(),
        Some(PROJECTS_FO),
        role(vec![grant("Currencies", &[Access::Read], Depth::Global)]),
    )
    .await;
    let dataverse = emulator(
        ServiceKind::Dataverse,
        dir.path(),
        Some(PROJECTS),
        empty_config(),
    )
    .await;
    let run = check_json(format!("{}{PROJECTS_MAP}", systems(&finops, &dataverse))).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.codes(), ["DW031"], "{}", run.stdout);
    let problem = run.only("DW031");
    assert_eq!(problem["system"], "finops");
    assert_eq!(problem["table"], "ProjectsV1");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("403")),
        "{problem}"
    );
}

/// A lookup needs append on its table and append-to on the table it
/// points at: without append-to on `cdm_companies`, every map whose key
/// goes through the company lookup is stopped.
#[tokio::test]
async fn a_lookup_target_without_append_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tables = [
        "cdm_companies",
        "transactioncurrencies",
        "msdyn_paymentterms",
        "msdyn_customergroups",
        "msdyn_vendors",
        "accounts",
        "contacts",
    ];
    let grants = tables
        .iter()
        .map(|table| {
            let access: Vec<Access> = Access::ALL
                .into_iter()
                .filter(|access| *table != "cdm_companies" || *access != Access::AppendTo)
                .collect();
            grant(table, &access, Depth::Global)
        })
        .collect();
    let finops = emulator(ServiceKind::Finops, dir.path(), None, empty_config()).await;
    let dataverse = emulator(ServiceKind::Dataverse, dir.path(), None, role(grants)).await;
    let config = STANDARD_MAPS
        .replace("http://127.0.0.1:8081", &finops.url())
        .replace("http://127.0.0.1:8082", &dataverse.url())
        .replace("FINOPS_SECRET", SECRET_ENV)
        .replace("DATAVERSE_SECRET", SECRET_ENV);
    let run = check_json(config).await;
    assert!(!run.success, "{}", run.stdout);
    let mut maps: Vec<&str> = run
        .problems()
        .iter()
        .map(|problem| {
            assert_eq!(problem["code"], "DW031", "{problem}");
            assert_eq!(problem["table"], "cdm_companies", "{problem}");
            problem["map"].as_str().unwrap_or("")
        })
        .collect();
    maps.sort_unstable();
    assert_eq!(
        maps,
        [
            "contacts",
            "customer-groups",
            "customers",
            "payment-terms",
            "vendors"
        ],
        "{}",
        run.stdout
    );
}
