//! The host's Dataverse webhook registration (`connector/steps.rs`) against
//! the emulator: the service endpoint and the steps found again by name,
//! the secret the endpoint then sends, the refusals and what they say.

use std::time::Duration;

use dualwrite::connector::{DataverseConnector, Key, Query, StepMode};
use dualwrite_emulators::{Access, EmulatorConfig, SecurityRole, ServiceKind, TableAccess};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::support::{dataverse, fast_options, row, serve, start};

async fn rows(connector: &DataverseConnector, set: &str) -> Vec<dualwrite::connector::Row> {
    connector
        .query_all(set, &Query::default())
        .await
        .unwrap_or_else(|e| panic!("{set}: {e}"))
}

fn names(rows: &[dualwrite::connector::Row]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_webhook_and_its_steps_are_found_again_by_name_and_removed_by_map() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let first = dv
        .ensure_webhook(
            "dualwrite dataverse",
            "http://127.0.0.1:9/events/dataverse",
            "x-dualwrite-secret",
            "one",
        )
        .await
        .expect("registered");
    let again = dv
        .ensure_webhook(
            "dualwrite dataverse",
            "http://127.0.0.1:10/events/dataverse",
            "x-dualwrite-secret",
            "two",
        )
        .await
        .expect("registered again");
    assert_eq!(first, again);
    let endpoints = rows(&dv, "serviceendpoints").await;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["url"], "http://127.0.0.1:10/events/dataverse");
    assert_eq!(endpoints[0]["authtype"], 5);

    let columns = vec!["name".to_owned(), "creditlimit".to_owned()];
    let steps = dv
        .ensure_steps(
            &first,
            "dualwrite customers",
            "accounts",
            &columns,
            &StepMode::Asynchronous,
        )
        .await
        .expect("steps");
    assert_eq!(steps.logical_name, "account");
    assert_eq!(steps.step_ids.len(), 3);
    let same = dv
        .ensure_steps(
            &first,
            "dualwrite customers",
            "accounts",
            &columns,
            &StepMode::Asynchronous,
        )
        .await
        .expect("steps again");
    assert_eq!(same, steps, "registering twice changes nothing");
    let contacts = dv
        .ensure_steps(
            &first,
            "dualwrite contacts",
            "contacts",
            &[],
            &StepMode::Asynchronous,
        )
        .await
        .expect("another map's steps");
    assert_eq!(contacts.logical_name, "contact");
    let registered = rows(&dv, "sdkmessageprocessingsteps").await;
    assert_eq!(
        names(&registered),
        [
            "dualwrite contacts Create",
            "dualwrite contacts Delete",
            "dualwrite contacts Update",
            "dualwrite customers Create",
            "dualwrite customers Delete",
            "dualwrite customers Update",
        ]
    );
    let update = registered
        .iter()
        .find(|r| r["name"] == "dualwrite customers Update")
        .expect("the update step");
    assert_eq!(update["filteringattributes"], "creditlimit,name");
    assert_eq!(update["stage"], 40);
    assert_eq!(update["mode"], 1);

    // Other columns: the update step is made again, the others stay.
    let changed = dv
        .ensure_steps(
            &first,
            "dualwrite customers",
            "accounts",
            &["name".to_owned()],
            &StepMode::Asynchronous,
        )
        .await
        .expect("steps with other columns");
    assert_eq!(changed.step_ids[0], steps.step_ids[0]);
    assert_ne!(changed.step_ids[1], steps.step_ids[1]);
    assert_eq!(changed.step_ids[2], steps.step_ids[2]);

    dv.remove_steps(&first, "dualwrite customers")
        .await
        .expect("removed");
    dv.remove_steps(&first, "dualwrite customers")
        .await
        .expect("removed twice is no error");
    assert_eq!(
        names(&rows(&dv, "sdkmessageprocessingsteps").await),
        [
            "dualwrite contacts Create",
            "dualwrite contacts Delete",
            "dualwrite contacts Update"
        ]
    );
    dv.remove_steps(&first, "dualwrite contacts")
        .await
        .expect("removed");
    dv.remove_webhook(&first).await.expect("endpoint removed");
    dv.remove_webhook(&first)
        .await
        .expect("gone already is no error");
    assert!(rows(&dv, "serviceendpoints").await.is_empty());
    emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn the_registered_webhook_sends_the_secret_the_connector_gave_it() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let (send, mut received) = mpsc::unbounded_channel::<(Option<String>, Value)>();
    let router = axum::Router::new().route(
        "/events/dataverse",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let send = send.clone();
                async move {
                    let secret = headers
                        .get("x-dualwrite-secret")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let _ = send.send((secret, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let base = serve(router).await;
    // Characters XML must escape survive the `authvalue` settings.
    let secret = r#"a<b>&"c'd"#;
    let endpoint = dv
        .ensure_webhook(
            "dualwrite dataverse",
            &format!("{base}/events/dataverse"),
            "x-dualwrite-secret",
            secret,
        )
        .await
        .expect("registered");
    dv.ensure_steps(
        &endpoint,
        "dualwrite customers",
        "accounts",
        &["name".to_owned()],
        &StepMode::Asynchronous,
    )
    .await
    .expect("steps");
    dv.upsert(
        "accounts",
        &Key::single("accountnumber", "S-1"),
        &row(json!({"name": "Hooked"})),
    )
    .await
    .expect("upsert");
    let (got, context) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("a context")
        .expect("the hook runs");
    assert_eq!(got.as_deref(), Some(secret));
    assert_eq!(context["MessageName"], "Create");
    assert_eq!(context["PrimaryEntityName"], "account");

    let id =
        uuid::Uuid::parse_str(context["PrimaryEntityId"].as_str().expect("an id")).expect("a guid");
    let read = dv
        .get_selected("accounts", id, &["name".to_owned()])
        .await
        .expect("read")
        .expect("the row");
    assert_eq!(read["name"], "Hooked");
    assert!(
        read.get("accountnumber").is_none(),
        "only the selected columns: {read:?}"
    );
    assert!(
        dv.get_selected("accounts", uuid::Uuid::new_v4(), &[])
            .await
            .expect("read")
            .is_none()
    );
    emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_refused_registration_names_the_table_and_the_privileges() {
    let role = |access: Vec<(&str, Vec<Access>)>| SecurityRole {
        client_id: "dualwrite".into(),
        privileges: access
            .into_iter()
            .map(|(table, access)| TableAccess {
                table: table.into(),
                access,
                depth: Default::default(),
            })
            .collect(),
    };
    let config = EmulatorConfig {
        roles: vec![role(vec![
            (
                "serviceendpoints",
                vec![Access::Create, Access::Read, Access::Write],
            ),
            ("sdkmessages", vec![Access::Read]),
            ("sdkmessagefilters", vec![Access::Read]),
        ])],
        ..EmulatorConfig::empty()
    };
    let emulator = start(ServiceKind::Dataverse, config).await;
    let dv = dataverse(&emulator, fast_options());
    let endpoint = dv
        .ensure_webhook(
            "dualwrite dataverse",
            "http://127.0.0.1:9/events/dataverse",
            "x-dualwrite-secret",
            "s",
        )
        .await
        .expect("the endpoint may be registered");
    let error = dv
        .ensure_steps(
            &endpoint,
            "dualwrite customers",
            "accounts",
            &[],
            &StepMode::Asynchronous,
        )
        .await
        .expect_err("steps are refused");
    assert_eq!(error.status(), Some(403));
    let text = error.to_string();
    assert!(text.contains("prvCreateSdkMessageProcessingStep"), "{text}");
    assert!(text.contains("accounts"), "{text}");
    let unknown = dv
        .ensure_steps(
            &endpoint,
            "dualwrite x",
            "nosuchtables",
            &[],
            &StepMode::Asynchronous,
        )
        .await
        .expect_err("no such table");
    assert!(unknown.to_string().contains("`nosuchtables`"), "{unknown}");
    emulator.shutdown().await.expect("stops");

    let emulator = start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            roles: vec![role(vec![("accounts", vec![Access::Read])])],
            ..EmulatorConfig::empty()
        },
    )
    .await;
    let dv = dataverse(&emulator, fast_options());
    let error = dv
        .ensure_webhook(
            "dualwrite dataverse",
            "http://127.0.0.1:9/events/dataverse",
            "x-dualwrite-secret",
            "s",
        )
        .await
        .expect_err("the endpoint is refused");
    let text = error.to_string();
    assert!(
        text.contains("prvCreateServiceEndpoint") && text.contains("dualwrite dataverse"),
        "{text}"
    );
    emulator.shutdown().await.expect("stops");
}
