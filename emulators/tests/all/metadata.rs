//! Custom tables from a metadata file, on both emulators.

use dualwrite_emulators::{EmulatorConfig, EmulatorError, ServiceKind};
use reqwest::Method;
use serde_json::json;

use crate::support::{Harness, empty_config, error_message};

const DATAVERSE_TABLES: &str = r#"
[[tables]]
name = "new_projects"
entity = "new_project"
primary_key = ["new_projectid"]
fields = [
  { name = "new_projectid", type = "guid" },
  { name = "new_code", type = "string", max_length = 8 },
  { name = "new_budget", type = "decimal" },
  { name = "new_start", type = "date" },
  { name = "new_accountid", type = "lookup", target = "accounts" },
]
alternate_keys = [{ name = "new_code_key", fields = ["new_code"] }]
"#;

const FINOPS_TABLES: &str = r#"
[[tables]]
name = "ProjectsV1"
primary_key = ["dataAreaId", "ProjectId"]
company_field = "dataAreaId"
fields = [
  { name = "dataAreaId", type = "string", max_length = 4 },
  { name = "ProjectId", type = "string", max_length = 20 },
  { name = "IsClosed", type = "enum", enum = "NoYes" },
]
"#;

fn with_metadata(dir: &tempfile::TempDir, text: &str) -> EmulatorConfig {
    let path = dir.path().join("tables.toml");
    std::fs::write(&path, text).expect("write metadata");
    EmulatorConfig {
        metadata_file: Some(path),
        ..empty_config()
    }
}

#[tokio::test]
async fn dataverse_custom_table_with_alternate_key_and_lookup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Harness::start(
        ServiceKind::Dataverse,
        with_metadata(&dir, DATAVERSE_TABLES),
    )
    .await;
    let response = h
        .request(Method::PATCH, "accounts(accountnumber='P-ACC')")
        .json(&json!({"name": "Owner"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = h
        .request(Method::PATCH, "new_projects(new_code='P-1')")
        .json(&json!({"new_budget": 1250.5, "new_start": "2025-01-01", "new_accountid@odata.bind": "/accounts(accountnumber='P-ACC')"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, body) = h.get_json("new_projects(new_code='P-1')").await;
    assert_eq!(status, 200);
    assert_eq!(body["new_budget"], 1250.5);
    assert!(body["_new_accountid_value"].is_string());
    let (_, body) = h
        .get_json("new_projects?$filter=new_start ge 2024-12-31")
        .await;
    assert_eq!(body["value"].as_array().expect("value").len(), 1);

    let response = h
        .request(Method::PATCH, "new_projects(new_code='P-2')")
        .json(&json!({"new_start": "tomorrow"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(error_message(&body, "0x80060888").contains("new_start"));
    let response = h
        .request(Method::PATCH, "new_projects(new_code='TOO-LONG-CODE')")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_custom_entity_with_company_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Harness::start(ServiceKind::Finops, with_metadata(&dir, FINOPS_TABLES)).await;
    let response = h
        .request(Method::POST, "ProjectsV1")
        .json(&json!({"ProjectId": "PR-1", "IsClosed": "No"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let response = h
        .request(Method::POST, "ProjectsV1")
        .json(&json!({"dataAreaId": "demf", "ProjectId": "PR-1"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        201,
        "the same id in another company is another row"
    );
    let (_, body) = h.get_json("ProjectsV1").await;
    assert_eq!(body["value"].as_array().expect("value").len(), 1);
    let (_, body) = h.get_json("ProjectsV1?cross-company=true").await;
    assert_eq!(body["value"].as_array().expect("value").len(), 2);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn invalid_metadata_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "[[tables]]\nname = \"x\"\nprimary_key = [\"id\"]\nfields = []\n",
            "key field 'id'",
        ),
        (
            "[[tables]]\nname = \"x\"\nprimary_key = [\"id\"]\nfields = [{ name = \"id\", type = \"float\" }]\n",
            "float",
        ),
        (
            "[[tables]]\nname = \"x\"\nprimary_key = []\nfields = []\n",
            "primary_key is empty",
        ),
    ];
    for (text, needle) in cases {
        let error = dualwrite_emulators::start(ServiceKind::Dataverse, with_metadata(&dir, text))
            .await
            .expect_err("invalid metadata");
        assert!(matches!(error, EmulatorError::Metadata(_)), "{error}");
        let message = format!("{error}");
        assert!(message.contains(needle), "{message}");
    }
}

/// `change_tracking = false`: `EntityDefinitions` says so, and the table
/// ignores `Prefer: odata.track-changes` (a plain read, no delta link).
#[tokio::test]
async fn a_table_without_change_tracking_says_so_and_gives_no_delta_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let untracked = DATAVERSE_TABLES.replace(
        "alternate_keys = [{ name = \"new_code_key\", fields = [\"new_code\"] }]",
        "alternate_keys = [{ name = \"new_code_key\", fields = [\"new_code\"] }]\nchange_tracking = false",
    );
    let h = Harness::start(ServiceKind::Dataverse, with_metadata(&dir, &untracked)).await;
    let tracked = |logical: &str| {
        format!("EntityDefinitions(LogicalName='{logical}')?$select=ChangeTrackingEnabled")
    };
    let (_, project) = h.get_json(&tracked("new_project")).await;
    assert_eq!(project["ChangeTrackingEnabled"], false, "{project}");
    let (_, account) = h.get_json(&tracked("account")).await;
    assert_eq!(account["ChangeTrackingEnabled"], true, "{account}");

    for (set, delta) in [("new_projects", false), ("accounts", true)] {
        let response = h
            .request(Method::GET, set)
            .header("Prefer", "odata.track-changes")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        let applied = response
            .headers()
            .get("preference-applied")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            body.get("@odata.deltaLink").is_some(),
            delta,
            "{set}: {body}"
        );
        assert_eq!(applied.contains("odata.track-changes"), delta, "{set}");
    }
    let (status, body) = h
        .get_json("new_projects?$deltatoken=1%2101%2F01%2F2026")
        .await;
    assert_eq!(status, 400, "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}

/// `public = false`: the OData service does not expose the data entity.
#[tokio::test]
async fn a_finops_entity_that_is_not_public_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hidden = FINOPS_TABLES.replace(
        "company_field = \"dataAreaId\"",
        "company_field = \"dataAreaId\"\npublic = false",
    );
    let h = Harness::start(ServiceKind::Finops, with_metadata(&dir, &hidden)).await;
    let metadata = h
        .request(Method::GET, "$metadata")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(!metadata.contains("ProjectsV1"), "{metadata}");
    assert!(metadata.contains("EntitySet Name=\"CustomersV3\""));
    let (status, body) = h.get_json("ProjectsV1").await;
    assert_eq!(status, 404, "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}
