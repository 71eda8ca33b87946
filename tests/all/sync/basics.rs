//! Create, update and delete in each direction; company and group lookups.

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, settle, text};

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_updates_and_deletes_flow_both_ways() {
    let sync = Sync::start(MAPS, "").await;
    let usmf = sync.company_id("usmf").await;

    // finops → Dataverse
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "C-1")],
        json!({"OrganizationName": "Contoso", "PartyType": "Organization", "CreditLimit": 1000.25}),
    )
    .await;
    eventually("C-1 in Dataverse", || async {
        sync.dv_get("accounts", account("C-1")).await.is_some()
    })
    .await;
    let row = sync
        .dv_get("accounts", account("C-1"))
        .await
        .unwrap_or_default();
    assert_eq!(text(&row, "name"), "Contoso");
    assert_eq!(text(&row, "creditlimit"), "1000.25");
    assert_eq!(text(&row, "customertypecode"), "3");
    assert_eq!(text(&row, "_msdyn_company_value"), usmf);

    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "C-1")],
        json!({"OrganizationName": "Contoso Ltd"}),
    )
    .await;
    eventually("the new name in Dataverse", || async {
        sync.dv_get("accounts", account("C-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Contoso Ltd")
    })
    .await;

    sync.fo_delete(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "C-1")],
    )
    .await;
    eventually("C-1 gone from Dataverse", || async {
        sync.dv_get("accounts", account("C-1")).await.is_none()
    })
    .await;

    // Dataverse → finops
    sync.dv_upsert(
        "accounts",
        account("D-1"),
        in_usmf(json!({"name": "Fabrikam", "customertypecode": 3, "creditlimit": 50})),
    )
    .await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "D-1")];
    eventually("D-1 in finops", || async {
        sync.fo_get("CustomersV3", &key).await.is_some()
    })
    .await;
    let row = sync.fo_get("CustomersV3", &key).await.unwrap_or_default();
    assert_eq!(text(&row, "OrganizationName"), "Fabrikam");
    assert_eq!(text(&row, "PartyType"), "Organization");
    assert_eq!(text(&row, "CreditLimit"), "50");

    sync.dv_upsert("accounts", account("D-1"), json!({"name": "Fabrikam Inc"}))
        .await;
    eventually("the new name in finops", || async {
        sync.fo_get("CustomersV3", &key)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "Fabrikam Inc")
    })
    .await;

    sync.dv_delete("accounts", account("D-1")).await;
    eventually("D-1 gone from finops", || async {
        sync.fo_get("CustomersV3", &key).await.is_none()
    })
    .await;

    settle(&sync).await;
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!(
        (ltr.written, ltr.deleted),
        (2, 1),
        "finops → Dataverse: {ltr:?}"
    );
    assert_eq!(
        (rtl.written, rtl.deleted),
        (2, 1),
        "Dataverse → finops: {rtl:?}"
    );
    sync.shutdown().await;
}
