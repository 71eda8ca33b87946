//! The connectors over HTTPS against an emulator serving TLS: with its CA
//! given as `ca_file` would give it, rows flow; without it, the call fails
//! at once naming the URL and the unverified certificate.

use dualwrite::connector::{ConnectorError, ConnectorOptions, Key, Query, TrustedCa};
use dualwrite_emulators::{EmulatorConfig, ServiceKind};
use serde_json::json;

use super::support::{dataverse, fast_options, finops, row, start};

fn tls() -> EmulatorConfig {
    EmulatorConfig {
        tls: true,
        ..EmulatorConfig::empty()
    }
}

#[tokio::test]
async fn https_with_the_emulator_ca_reads_and_writes() {
    let emulator = start(ServiceKind::Dataverse, tls()).await;
    assert!(
        emulator.url().starts_with("https://127.0.0.1:"),
        "{}",
        emulator.url()
    );
    let ca_file = emulator.ca_file().expect("a TLS emulator writes its CA");
    assert_eq!(
        std::fs::read_to_string(ca_file).expect("CA file"),
        emulator.ca_pem().expect("CA PEM")
    );
    let options = ConnectorOptions {
        ca: Some(TrustedCa::read(ca_file).expect("the emulator's CA parses")),
        ..fast_options()
    };
    let dv = dataverse(&emulator, options);
    dv.upsert(
        "accounts",
        &Key::single("accountnumber", "TLS-1"),
        &row(json!({"name": "Over TLS"})),
    )
    .await
    .expect("an upsert over https");
    let rows = dv
        .query_all("accounts", &Query::default())
        .await
        .expect("a query over https");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "Over TLS");
}

#[tokio::test]
async fn https_without_the_ca_fails_naming_the_url_and_the_certificate() {
    let emulator = start(ServiceKind::Finops, tls()).await;
    let fo = finops(&emulator, fast_options());
    let error = fo
        .query_all("CustomerGroups", &Query::default())
        .await
        .expect_err("an unknown CA does not verify");
    let ConnectorError::Tls { url, detail, .. } = &error else {
        panic!("not a TLS error: {error:?}");
    };
    // The token request is the first to go out.
    assert_eq!(url, &emulator.token_url());
    assert!(
        detail.contains("the certificate did not verify"),
        "{detail}"
    );
    let message = error.to_string();
    assert!(message.contains(&emulator.token_url()), "{message}");
    assert!(message.contains("ca_file"), "{message}");
    assert!(
        !error.is_transient() && error.refusal().is_none(),
        "{error:?}"
    );
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_with_the_reason() {
    for (pem, reason) in [
        (&b""[..], "no `-----BEGIN CERTIFICATE-----` block"),
        (
            &b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
                [..],
            "not valid",
        ),
    ] {
        let error = TrustedCa::from_pem(pem).expect_err("not a CA");
        assert!(error.contains(reason), "{error}");
    }
}
