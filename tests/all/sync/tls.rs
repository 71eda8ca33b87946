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
