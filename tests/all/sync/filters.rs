//! Filters on both sides, and rows leaving a filter: deleted on the other
//! side by default, left there with `on_filter_exit = "keep"`.

use dualwrite::checkpoint::Action;
use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, settle, text};

const C: &[(&str, &str)] = &[("dataAreaId", "usmf"), ("CustomerAccount", "F-1")];
const P: &[(&str, &str)] = &[("dataAreaId", "usmf"), ("CustomerAccount", "F-2")];

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_exclude_rows_and_a_row_leaving_the_filter_is_deleted() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        C,
        json!({"OrganizationName": "Org", "PartyType": "Organization"}),
    )
    .await;
    sync.fo_upsert(
        "CustomersV3",
        P,
        json!({"OrganizationName": "Someone", "PartyType": "Person"}),
    )
    .await;
    eventually("F-1 in Dataverse", || async {
        sync.dv_get("accounts", account("F-1")).await.is_some()
    })
    .await;
    settle(&sync).await;
    assert!(
        sync.dv_get("accounts", account("F-2")).await.is_none(),
        "a Person customer does not match the left filter"
    );

    // Leaving the filter on the left deletes the row on the right.
    sync.fo_upsert("CustomersV3", C, json!({"PartyType": "Person"}))
        .await;
    eventually("F-1 deleted from Dataverse", || async {
        sync.dv_get("accounts", account("F-1")).await.is_none()
    })
    .await;
    // Coming back into the filter creates it again.
    sync.fo_upsert("CustomersV3", C, json!({"PartyType": "Organization"}))
        .await;
    eventually("F-1 back in Dataverse", || async {
        sync.dv_get("accounts", account("F-1")).await.is_some()
    })
    .await;

    // The right filter: an account that is not a customer stays in Dataverse.
    sync.dv_upsert(
        "accounts",
        account("F-3"),
        in_usmf(json!({"name": "A supplier", "customertypecode": 1})),
    )
    .await;
    settle(&sync).await;
    assert!(
        sync.fo_get(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "F-3")]
        )
        .await
        .is_none(),
        "customertypecode 1 does not match the right filter"
    );
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!((ltr.written, ltr.deleted), (2, 1), "{ltr:?}");
    assert_eq!(
        sync.activity("customers", Action::Filtered).len(),
        2,
        "F-2 and F-3 are filtered"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_filter_exit_keep_the_other_side_keeps_the_row() {
    let maps = MAPS.replace(
        "depends_on = [\"legal-entities\", \"customer-groups\"]",
        "depends_on = [\"legal-entities\", \"customer-groups\"]\non_filter_exit = \"keep\"",
    );
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        C,
        json!({"OrganizationName": "Org", "PartyType": "Organization"}),
    )
    .await;
    eventually("F-1 in Dataverse", || async {
        sync.dv_get("accounts", account("F-1")).await.is_some()
    })
    .await;
    sync.fo_upsert(
        "CustomersV3",
        C,
        json!({"OrganizationName": "Renamed", "PartyType": "Person"}),
    )
    .await;
    eventually("the exit logged", || async {
        !sync.activity("customers", Action::Filtered).is_empty()
    })
    .await;
    settle(&sync).await;
    let row = sync.dv_get("accounts", account("F-1")).await.expect("kept");
    assert_eq!(
        text(&row, "name"),
        "Org",
        "a row out of the filter no longer syncs"
    );
    let exits = sync.activity("customers", Action::Filtered);
    assert!(
        exits[0].detail.contains("on_filter_exit = keep"),
        "{exits:?}"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_striping_syncs_only_the_listed_legal_entities() {
    let maps = MAPS.replace(
        "depends_on = [\"legal-entities\", \"customer-groups\"]",
        "depends_on = [\"legal-entities\", \"customer-groups\"]\ncompanies = [\"USMF\"]",
    );
    let sync = Sync::start(&maps, "").await;
    sync.fo_upsert(
        "LegalEntities",
        &[("LegalEntityId", "demf")],
        json!({"Name": "Contoso Germany"}),
    )
    .await;
    sync.company_id("usmf").await;
    sync.company_id("demf").await;
    for (company, number) in [("usmf", "S-1"), ("demf", "S-2")] {
        sync.fo_upsert(
            "CustomersV3",
            &[("dataAreaId", company), ("CustomerAccount", number)],
            json!({"OrganizationName": number, "PartyType": "Organization"}),
        )
        .await;
    }
    eventually("S-1 in Dataverse", || async {
        sync.dv_get("accounts", account("S-1")).await.is_some()
    })
    .await;
    settle(&sync).await;
    assert!(
        sync.dv_get("accounts", account("S-2")).await.is_none(),
        "demf is not striped"
    );
    // finops is read one striped company at a time: demf's row is never
    // read. A Dataverse account of demf (change tracking reads every
    // company) is filtered out, saying why.
    assert!(
        sync.engine()
            .checkpoints()
            .activity()
            .expect("activity log")
            .iter()
            .all(|a| !a.key.ends_with("|demf") || a.direction != Some(Direction::LeftToRight)),
        "no finops row of demf is captured"
    );
    super::initial::dataverse_accounts(&sync, &[("demf", "S-3".to_owned(), "S-3".to_owned())])
        .await;
    eventually("S-3 filtered out", || async {
        sync.activity("customers", Action::Filtered)
            .iter()
            .any(|a| a.key == "S-3|demf" && a.detail.contains("company `demf`"))
    })
    .await;
    assert!(
        sync.fo_get(
            "CustomersV3",
            &[("dataAreaId", "demf"), ("CustomerAccount", "S-3")]
        )
        .await
        .is_none(),
        "demf is not striped"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_without_a_key_is_logged_not_lost_silently() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    // An account with no company: its key (account number and company) is
    // incomplete.
    sync.dv_upsert(
        "accounts",
        account("NK-1"),
        json!({"name": "No company", "customertypecode": 3}),
    )
    .await;
    eventually("the row logged", || async {
        !sync.activity("customers", Action::Skipped).is_empty()
    })
    .await;
    let skipped = sync.activity("customers", Action::Skipped);
    assert!(
        skipped[0].detail.contains("a row of accounts (")
            && skipped[0]
                .detail
                .contains("key field `msdyn_company` is empty"),
        "{skipped:?}"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataverse_row_leaving_the_right_filter_is_deleted_in_finops() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.dv_upsert(
        "accounts",
        account("F-9"),
        in_usmf(json!({"name": "Customer for now", "customertypecode": 3})),
    )
    .await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "F-9")];
    eventually("F-9 in finops", || async {
        sync.fo_get("CustomersV3", &key).await.is_some()
    })
    .await;
    sync.dv_upsert("accounts", account("F-9"), json!({"customertypecode": 1}))
        .await;
    eventually("F-9 deleted from finops", || async {
        sync.fo_get("CustomersV3", &key).await.is_none()
    })
    .await;
    settle(&sync).await;
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!((rtl.written, rtl.deleted), (1, 1), "{rtl:?}");
    sync.shutdown().await;
}
