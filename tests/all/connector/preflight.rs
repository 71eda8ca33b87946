//! Asking about the connector's identity: the service answers at all
//! (`probe`), who the token stands for (`who_am_i`), which privileges a
//! table defines and which the user holds, and a harmless finops read.

use std::time::Duration;

use dualwrite::connector::{
    ConnectorError, ConnectorOptions, MetadataReader, SystemKind, TrustedCa, probe,
};
use dualwrite_emulators::{
    Access, ClientCredentials, Depth, EmulatorConfig, SecurityRole, ServiceKind, TableAccess,
};

use super::support::{credentials, fast_options, finops, start};

fn reading_accounts_only(client: &str) -> EmulatorConfig {
    EmulatorConfig {
        clients: vec![ClientCredentials {
            client_id: client.into(),
            client_secret: "dualwrite-secret".into(),
            certificates: Vec::new(),
        }],
        roles: vec![SecurityRole {
            client_id: client.into(),
            privileges: vec![TableAccess {
                table: "accounts".into(),
                access: vec![Access::Read],
                depth: Depth::Local,
            }],
        }],
        ..EmulatorConfig::empty()
    }
}

#[tokio::test]
async fn probe_tells_an_answer_from_no_answer_and_an_unverified_certificate() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let status = probe(
        SystemKind::Dataverse,
        &format!("{}/", emulator.service_url()),
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("the emulator answers");
    assert_eq!(
        status, 401,
        "an unauthenticated request is refused, but answered"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let error = probe(
        SystemKind::Finops,
        &format!("http://{closed}/data/"),
        None,
        Duration::from_secs(5),
    )
    .await
    .expect_err("nothing listens");
    assert!(
        matches!(error, ConnectorError::Unavailable { attempts: 1, .. }),
        "{error}"
    );
    emulator.shutdown().await.expect("shutdown");

    let secure = start(
        ServiceKind::Finops,
        EmulatorConfig {
            tls: true,
            ..EmulatorConfig::empty()
        },
    )
    .await;
    let url = format!("{}/", secure.service_url());
    let error = probe(SystemKind::Finops, &url, None, Duration::from_secs(5))
        .await
        .expect_err("a private CA is not trusted by default");
    assert!(matches!(error, ConnectorError::Tls { .. }), "{error}");
    let ca = TrustedCa::from_pem(secure.ca_pem().unwrap_or_default().as_bytes()).expect("the CA");
    let status = probe(SystemKind::Finops, &url, Some(&ca), Duration::from_secs(5))
        .await
        .expect("verified with the CA");
    assert_eq!(status, 401);
    secure.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_identity_and_its_privileges_are_read() {
    let emulator = start(ServiceKind::Dataverse, reading_accounts_only("reader")).await;
    let mut wanted = credentials(&emulator);
    wanted.client_id = "reader".into();
    let connector = dualwrite::connector::DataverseConnector::new(
        &emulator.service_url(),
        wanted.clone(),
        fast_options(),
    );
    let me = connector.who_am_i().await.expect("WhoAmI");
    assert_eq!(me.user_id.len(), 36, "a GUID: {me:?}");
    let reader = MetadataReader::new(
        SystemKind::Dataverse,
        &emulator.service_url(),
        wanted,
        ConnectorOptions::default(),
    );
    let defined = reader.privileges("account").await.expect("Privileges");
    let kinds: Vec<&str> = defined.iter().map(|p| p.kind.as_str()).collect();
    assert!(
        kinds.contains(&"Read") && kinds.contains(&"AppendTo"),
        "{kinds:?}"
    );
    let names: Vec<String> = defined
        .iter()
        .filter(|p| p.kind == "Read" || p.kind == "Write")
        .map(|p| p.name.clone())
        .collect();
    let held = connector
        .user_privileges(&me.user_id, &names)
        .await
        .expect("the user's privileges");
    assert_eq!(held.len(), 1, "read only: {held:?}");
    assert_eq!(held[0].depth, "Local");
    assert!(held[0].name.starts_with("prvRead"), "{held:?}");
    let tables = reader.tables().await.expect("the tables");
    assert!(
        tables.iter().all(|t| t.change_tracking),
        "the emulator tracks every table"
    );

    let error = reader
        .privileges("nothing")
        .await
        .expect_err("no such table");
    assert_eq!(error.status(), Some(404), "{error}");
    let error = connector
        .user_privileges("not-a-guid", &names)
        .await
        .expect_err("not a user id");
    assert!(matches!(error, ConnectorError::Invalid { .. }), "{error}");
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_finops_read_of_one_row_is_refused_without_read_access() {
    let mut config = reading_accounts_only("dualwrite");
    config.roles[0].privileges[0].table = "Currencies".into();
    let emulator = start(ServiceKind::Finops, config).await;
    let connector = finops(&emulator, fast_options());
    let row = connector
        .read_one("Currencies", &["CurrencyCode".into()])
        .await
        .expect("read access");
    assert!(row.is_none(), "an empty service");
    let error = connector
        .read_one("CustomersV3", &[])
        .await
        .expect_err("no read access");
    assert_eq!(error.status(), Some(403), "{error}");
    emulator.shutdown().await.expect("shutdown");
}
