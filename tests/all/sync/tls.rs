//! The engine over HTTPS: both emulators serve TLS with their own CA, the
//! config names each as `ca_file`, and rows flow both ways.

use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_flow_both_ways_over_https_with_ca_file() {
    let sync = Sync::start_tls(MAPS, "").await;
    for url in [sync.finops.url(), sync.dataverse.url()] {
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    }
    let config = sync.config_text();
    assert_eq!(config.matches("ca_file = ").count(), 2, "{config}");
    for system in sync.plan().systems.values() {
        assert!(system.url.starts_with("https://"), "{}", system.url);
        assert!(system.ca.is_some(), "{} has its CA", system.name);
    }

    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "T-1")],
        json!({"OrganizationName": "Over TLS", "PartyType": "Organization"}),
    )
    .await;
    eventually("T-1 in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "T-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Over TLS")
    })
    .await;

    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "T-2"),
        in_usmf(json!({"name": "Back over TLS", "customertypecode": 3})),
    )
    .await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "T-2")];
    eventually("T-2 in finops", || async {
        sync.fo_get("CustomersV3", &key)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "Back over TLS")
    })
    .await;
    sync.shutdown().await;
}

/// Everything over HTTPS with push capture both ways: both emulators serve
/// TLS, the receiver serves its own certificate, the emulators post to it
/// trusting its CA, and neither side is polled within the test (1 h).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_flow_both_ways_over_https_by_push() {
    let files = tempfile::tempdir().expect("temporary directory");
    let (tls_lines, receiver) = super::receiver_certificate(files.path());
    let port = super::free_port();
    let engine = format!(
        "listen = \"127.0.0.1:{port}\"\npublic_url = \"https://127.0.0.1:{port}\"\npoll_interval = \"1h\"\ncatch_all_interval = \"1h\"\n{tls_lines}"
    );
    let sync = Sync::start_trusting(
        MAPS,
        &engine,
        true,
        "events_secret_env = \"DATAVERSE_EVENTS_SECRET\"",
        Some(&receiver.ca_pem),
    )
    .await;
    sync.company_id("usmf").await;
    let url = sync.engine().webhook_url("finops").expect("receiver");
    assert!(url.starts_with("https://"), "{url}");
    sync.push_finops_events();

    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "P-1")],
        json!({"OrganizationName": "Pushed over TLS", "PartyType": "Organization"}),
    )
    .await;
    eventually("P-1 in Dataverse by a data event over HTTPS", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "P-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Pushed over TLS")
    })
    .await;

    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "P-2"),
        in_usmf(json!({"name": "Webhook over TLS", "customertypecode": 3})),
    )
    .await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "P-2")];
    eventually("P-2 in finops by a webhook over HTTPS", || async {
        sync.fo_get("CustomersV3", &key)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "Webhook over TLS")
    })
    .await;
    sync.shutdown().await;
}
