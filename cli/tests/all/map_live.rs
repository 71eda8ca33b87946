//! Live metadata: the emulators serve Dataverse `EntityDefinitions` and the
//! finops `$metadata` document as the services do, the metadata reader
//! turns them back into the tables the emulators were started with, and
//! `dualwrite map validate --live` checks a config against them.

use std::collections::BTreeSet;
use std::path::Path;

use dualwrite::connector::{
    ConnectorOptions, Credentials, ENTITY_DEFINITIONS, MetadataReader, SystemKind,
};
use dualwrite::map::{self, Catalogue, EmulatorCatalogue};
use dualwrite_emulators::{EmulatorConfig, FieldType, RunningEmulator, ServiceKind, TableDef};
use reqwest::Method;
use serde_json::Value;

use crate::support::{Harness, empty_config, error_message};

const SECRET_ENV: &str = "DUALWRITE_LIVE_TEST_SECRET";

const DATAVERSE_TABLES: &str = r#"
[[tables]]
name = "new_projects"
entity = "new_project"
primary_key = ["new_projectid"]
fields = [
  { name = "new_projectid", type = "guid" },
  { name = "new_code", type = "string", max_length = 20 },
  { name = "new_company", type = "string", max_length = 4 },
  { name = "new_name", type = "string" },
  { name = "new_accountid", type = "lookup", target = "accounts" },
]
alternate_keys = [{ name = "new_code_key", fields = ["new_company", "new_code"] }]
"#;

const FINOPS_TABLES: &str = r#"
[[tables]]
name = "ProjectsV1"
primary_key = ["dataAreaId", "ProjectId"]
company_field = "dataAreaId"
fields = [
  { name = "dataAreaId", type = "string", max_length = 4 },
  { name = "ProjectId", type = "string", max_length = 20 },
  { name = "Name", type = "string", max_length = 60 },
  { name = "IsClosed", type = "enum", enum = "NoYes" },
]
"#;

const PROJECTS: &str = r#"
[[maps]]
name = "projects"
left = { system = "finops", table = "ProjectsV1" }
right = { system = "dataverse", table = "new_projects" }
key = ["dataAreaId = new_company", "ProjectId = new_code"]
fields = ["Name = new_name"]
"#;

const CURRENCIES: &str = r#"
[[maps]]
name = "currencies"
left = { system = "finops", table = "Currencies" }
right = { system = "dataverse", table = "transactioncurrencies" }
key = ["CurrencyCode = isocurrencycode"]
fields = ["Name = currencyname"]
"#;

/// An emulator started with the custom tables in `tables`, if any.
async fn emulator(kind: ServiceKind, dir: &Path, tables: Option<&str>) -> RunningEmulator {
    let metadata_file = tables.map(|text| {
        let path = dir.join(format!("{kind:?}.toml"));
        std::fs::write(&path, text).expect("write metadata");
        path
    });
    dualwrite_emulators::start(
        kind,
        EmulatorConfig {
            metadata_file,
            ..empty_config()
        },
    )
    .await
    .expect("emulator starts")
}

/// `[systems.NAME]` for an emulator at `url`, with credentials whose
/// secret is in `SECRET_ENV`.
fn system(name: &str, kind: &str, url: &str, token_url: &str) -> String {
    format!(
        "[systems.{name}]\nkind = \"{kind}\"\nurl = \"{url}\"\n\
         auth = {{ token_url = \"{token_url}\", client_id = \"dualwrite\", client_secret_env = \"{SECRET_ENV}\" }}\n"
    )
}

fn systems(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        "{}{}",
        system("finops", "finops", &finops.url(), &finops.token_url()),
        system(
            "dataverse",
            "dataverse",
            &dataverse.url(),
            &dataverse.token_url()
        ),
    )
}

/// What `dualwrite map validate --json` printed, and whether it succeeded.
struct Validation {
    success: bool,
    problems: Vec<Value>,
    stdout: String,
}

impl Validation {
    /// The problems with this code, as `(map, field, message)`.
    fn with_code(&self, code: &str) -> Vec<(String, String, String)> {
        let text = |problem: &Value, key: &str| problem[key].as_str().unwrap_or("").to_string();
        self.problems
            .iter()
            .filter(|problem| problem["code"] == code)
            .map(|problem| {
                (
                    text(problem, "map"),
                    text(problem, "field"),
                    text(problem, "message"),
                )
            })
            .collect()
    }

    fn codes(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter_map(|problem| problem["code"].as_str())
            .collect()
    }
}

/// Runs the binary on `config` off the async runtime, so the emulators of
/// the test keep answering.
async fn validate(config: String, extra: &[&str], text: bool) -> Validation {
    let extra: Vec<String> = extra.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("maps.toml");
        std::fs::write(&path, config).expect("write config");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dualwrite"));
        command
            .args(["map", "validate", "-c"])
            .arg(&path)
            .args(&extra)
            .env(SECRET_ENV, "dualwrite-secret");
        if !text {
            command.arg("--json");
        }
        let out = command.output().expect("the binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let problems = if text {
            Vec::new()
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|error| panic!("stdout is JSON ({error}): {stdout}"))
        };
        Validation {
            success: out.status.success(),
            problems,
            stdout,
        }
    })
    .await
    .expect("the validation thread")
}

fn find<'a>(rows: &'a [Value], key: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|row| row[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {rows:?}"))
}

#[tokio::test]
async fn dataverse_serves_entity_definitions() {
    let h = Harness::dataverse().await;
    let (status, body) = h.get_json(ENTITY_DEFINITIONS).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .is_some_and(|c| c.contains("/api/data/v9.2/$metadata#EntityDefinitions(")),
        "{body}"
    );
    let entities = body["value"].as_array().expect("a value array");
    let account = find(entities, "LogicalName", "account");
    assert_eq!(account["EntitySetName"], "accounts");
    assert_eq!(account["PrimaryIdAttribute"], "accountid");
    assert!(
        account["MetadataId"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "MetadataId is always returned: {account}"
    );
    let attributes = account["Attributes"].as_array().expect("Attributes");
    for (name, kind) in [
        ("accountid", "Uniqueidentifier"),
        ("name", "String"),
        ("creditlimit", "Decimal"),
        ("numberofemployees", "Integer"),
        ("msdyn_creditlimitismandatory", "Boolean"),
        ("msdyn_company", "Lookup"),
        ("versionnumber", "BigInt"),
        ("modifiedon", "DateTime"),
    ] {
        let attribute = find(attributes, "LogicalName", name);
        assert_eq!(attribute["AttributeType"], kind, "{attribute}");
        assert!(attribute["@odata.type"].is_string(), "{attribute}");
        assert!(
            attribute.get("IsPrimaryId").is_none(),
            "$select is applied: {attribute}"
        );
    }
    let keys = account["Keys"].as_array().expect("Keys");
    assert_eq!(
        find(keys, "LogicalName", "accountnumber_key")["KeyAttributes"],
        serde_json::json!(["accountnumber"])
    );
    let relationships = account["ManyToOneRelationships"]
        .as_array()
        .expect("ManyToOneRelationships");
    assert_eq!(
        find(relationships, "ReferencingAttribute", "msdyn_company")["ReferencedEntity"],
        "cdm_company"
    );

    let (status, one) = h
        .get_json("EntityDefinitions(LogicalName='contact')?$select=EntitySetName")
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["EntitySetName"], "contacts");
    assert!(one.get("LogicalName").is_none() && one.get("Attributes").is_none());
    assert!(
        one["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("/$entity"))
    );
    let by_id = format!(
        "EntityDefinitions({})?$select=LogicalName",
        account["MetadataId"].as_str().unwrap_or_default()
    );
    assert_eq!(h.get_json(&by_id).await.1["LogicalName"], "account");
    let (status, filtered) = h
        .get_json("EntityDefinitions?$select=LogicalName&$filter=EntitySetName eq 'uoms'")
        .await;
    assert_eq!(status, 200);
    assert_eq!(filtered["value"].as_array().map(Vec::len), Some(1));

    let (status, missing) = h.get_json("EntityDefinitions(LogicalName='nothing')").await;
    assert_eq!(status, 404);
    assert!(error_message(&missing, "0x80040217").contains("'nothing'"));
    let (status, bad) = h.get_json("EntityDefinitions?$select=Colour").await;
    assert_eq!(status, 400);
    assert!(error_message(&bad, "0x80060888").contains("'Colour'"));
    let anonymous = h
        .client
        .get(format!("{}/EntityDefinitions", h.emulator.service_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401, "the bearer token is required");
}

#[tokio::test]
async fn finops_serves_csdl() {
    let h = Harness::finops().await;
    let response = h
        .request(Method::GET, "$metadata")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/xml"))
    );
    let xml = response.text().await.expect("body");
    for part in [
        "<edmx:Edmx Version=\"4.0\"",
        "<Schema Namespace=\"Microsoft.Dynamics.DataEntities\"",
        "<PropertyRef Name=\"dataAreaId\"/>",
        "<Property Name=\"CustomerAccount\" Type=\"Edm.String\" Nullable=\"false\" MaxLength=\"20\"/>",
        "Type=\"Microsoft.Dynamics.DataEntities.NoYes\"",
        "<EntitySet Name=\"CustomersV3\" EntityType=\"Microsoft.Dynamics.DataEntities.CustomersV3\"/>",
    ] {
        assert!(xml.contains(part), "no {part} in {xml}");
    }
    let anonymous = h
        .client
        .get(format!("{}/$metadata", h.emulator.service_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401, "the bearer token is required");
}

async fn read(kind: ServiceKind, emulator: &RunningEmulator) -> Vec<TableDef> {
    let system = match kind {
        ServiceKind::Dataverse => SystemKind::Dataverse,
        ServiceKind::Finops => SystemKind::Finops,
    };
    let credentials = Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    };
    MetadataReader::new(
        system,
        &emulator.service_url(),
        credentials,
        ConnectorOptions::default(),
    )
    .tables()
    .await
    .expect("the metadata reads")
}

/// The reader gives back every table, key, field and lookup target the
/// emulator was started with, custom tables included.
#[tokio::test]
async fn the_reader_reads_back_what_the_emulators_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut builtin = EmulatorCatalogue::builtin().expect("built-in tables");
    for (kind, custom, system) in [
        (
            ServiceKind::Dataverse,
            DATAVERSE_TABLES,
            map::SystemKind::Dataverse,
        ),
        (ServiceKind::Finops, FINOPS_TABLES, map::SystemKind::Finops),
    ] {
        let emulator = emulator(kind, dir.path(), Some(custom)).await;
        builtin.merge(
            system,
            dualwrite_emulators::Metadata::from_toml(custom).expect("custom tables"),
        );
        let tables = read(kind, &emulator).await;
        let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let expected: BTreeSet<&str> = builtin.table_names(system).into_iter().collect();
        assert_eq!(names, expected, "{kind:?}");
        for table in &tables {
            let map::TableLookup::Found(served) = builtin.table(system, &table.name) else {
                panic!("{} is not served", table.name);
            };
            assert_eq!(table.primary_key, served.primary_key, "{}", table.name);
            assert_eq!(table.company_field, served.company_field, "{}", table.name);
            assert_eq!(table.entity_name(), served.entity_name());
            for field in &served.fields {
                let read = table
                    .field(&field.name)
                    .unwrap_or_else(|| panic!("{}.{} is not read", table.name, field.name));
                let expected = match (kind, field.field_type) {
                    (ServiceKind::Dataverse, FieldType::Date) => FieldType::Datetime,
                    (ServiceKind::Finops, FieldType::Lookup) => FieldType::String,
                    (_, other) => other,
                };
                assert_eq!(read.field_type, expected, "{}.{}", table.name, field.name);
                assert_eq!(read.target, field.target, "{}.{}", table.name, field.name);
                if kind == ServiceKind::Finops {
                    assert_eq!(read.max_length, field.max_length);
                    assert_eq!(read.enum_type, field.enum_type);
                }
            }
            if kind == ServiceKind::Dataverse {
                let keys = |t: &TableDef| -> Vec<Vec<String>> {
                    t.alternate_keys.iter().map(|k| k.fields.clone()).collect()
                };
                assert_eq!(keys(table), keys(served), "{}", table.name);
            }
        }
        emulator.shutdown().await.expect("shutdown");
    }
}

/// A mistake in a custom table's field is caught with `--live`; offline the
/// built-in catalogue does not know the tables, and without a catalogue
/// the mistake passes.
#[tokio::test]
async fn live_validation_checks_custom_tables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let finops = emulator(ServiceKind::Finops, dir.path(), Some(FINOPS_TABLES)).await;
    let dataverse = emulator(ServiceKind::Dataverse, dir.path(), Some(DATAVERSE_TABLES)).await;
    let good = format!("{}{PROJECTS}", systems(&finops, &dataverse));
    let typo = good.replace("Name = new_name", "Name = new_nmae");

    let live = validate(good.clone(), &["--live"], false).await;
    assert!(live.success && live.problems.is_empty(), "{}", live.stdout);
    let live = validate(typo.clone(), &["--live"], false).await;
    assert!(!live.success, "{}", live.stdout);
    assert_eq!(live.codes(), ["DW003"], "{}", live.stdout);
    let (map, field, message) = &live.with_code("DW003")[0];
    assert_eq!((map.as_str(), field.as_str()), ("projects", "new_nmae"));
    assert!(message.contains("new_projects"), "{message}");
    assert!(
        live.stdout.contains("did you mean `new_name`?"),
        "{}",
        live.stdout
    );

    let builtin = validate(good.clone(), &[], false).await;
    assert!(!builtin.success);
    let tables: Vec<String> = builtin
        .with_code("DW002")
        .into_iter()
        .map(|(_, field, _)| field)
        .collect();
    assert_eq!(tables, ["left.table", "right.table"], "{}", builtin.stdout);
    let offline = validate(typo.clone(), &["--no-catalogue"], false).await;
    assert!(
        offline.success && offline.problems.is_empty(),
        "{}",
        offline.stdout
    );
    let live_only = validate(typo, &["--live", "--no-catalogue"], false).await;
    assert_eq!(live_only.codes(), ["DW003"], "{}", live_only.stdout);

    let text = validate(good, &["--live"], true).await;
    assert!(text.success, "{}", text.stdout);
    assert!(
        text.stdout.contains("tables read from `dataverse` (")
            && text.stdout.contains("`finops` ("),
        "{}",
        text.stdout
    );
}

/// A system that cannot be read is a warning naming it and the error, and
/// its tables are checked against the built-in catalogue.
#[tokio::test]
async fn an_unreadable_system_is_a_warning() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let dataverse = emulator(ServiceKind::Dataverse, dir.path(), None).await;
    let down = format!("http://{closed}");
    let config = format!(
        "{}{}{CURRENCIES}",
        system(
            "finops",
            "finops",
            &down,
            &format!("{down}/common/oauth2/v2.0/token")
        ),
        system(
            "dataverse",
            "dataverse",
            &dataverse.url(),
            &dataverse.token_url()
        ),
    );
    let run = validate(config.clone(), &["--live"], false).await;
    assert!(run.success, "a warning does not fail: {}", run.stdout);
    assert_eq!(run.codes(), ["DW021"], "{}", run.stdout);
    let (_, field, message) = &run.with_code("DW021")[0];
    assert_eq!(field, "systems.finops");
    assert!(
        message.contains("system `finops`") && message.contains(&closed.to_string()),
        "{message}"
    );
    assert_eq!(run.problems[0]["severity"], "warning");

    // A wrong table on the unread side is still caught, by the built-in tables.
    let wrong = config.replace("\"Currencies\"", "\"Currency\"");
    let run = validate(wrong, &["--live"], false).await;
    assert!(!run.success);
    assert_eq!(run.with_code("DW002")[0].1, "left.table", "{}", run.stdout);

    // Refused credentials and a system without `auth` are warnings too.
    let refused = format!(
        "[systems.finops]\nkind = \"finops\"\nurl = \"{down}\"\n{}{CURRENCIES}",
        system(
            "dataverse",
            "dataverse",
            &dataverse.url(),
            &dataverse.token_url()
        )
        .replace("client_id = \"dualwrite\"", "client_id = \"nobody\""),
    );
    let run = validate(refused, &["--live"], true).await;
    assert!(run.success, "{}", run.stdout);
    for part in [
        "warning[DW021 metadata-unreachable]",
        "system `finops`: could not read its metadata: it has no `auth`",
        "system `dataverse`: could not read its metadata: no token from",
        "0 errors, 2 warnings",
    ] {
        assert!(run.stdout.contains(part), "no {part} in {}", run.stdout);
    }

    // A service that answers, but not with metadata: the error names the URL.
    let finops = emulator(ServiceKind::Finops, dir.path(), None).await;
    let wrong_service = format!(
        "{}{}{CURRENCIES}",
        system("finops", "finops", &finops.url(), &finops.token_url()),
        system("dataverse", "dataverse", &finops.url(), &finops.token_url()),
    );
    let run = validate(wrong_service, &["--live"], false).await;
    assert!(run.success, "{}", run.stdout);
    let (_, field, message) = &run.with_code("DW021")[0];
    assert_eq!(field, "systems.dataverse");
    let url = format!("{}/api/data/v9.2/EntityDefinitions", finops.url());
    assert!(
        message.contains(&url) && message.contains("answered 404"),
        "{message}"
    );
}
