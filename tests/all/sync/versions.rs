//! Map versions: each distinct definition of a map is numbered as the
//! engine starts; every line of the activity log says which definition
//! produced it, and the map's status which one runs.

use dualwrite::checkpoint::Action;
use serde_json::json;

use super::{MAPS, Sync, eventually};

async fn customer(sync: &Sync, number: &str) {
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
        json!({"OrganizationName": format!("Customer {number}"), "PartyType": "Organization"}),
    )
    .await;
}

async fn written_version(sync: &Sync, number: &str) -> Option<u32> {
    let key = format!("{number}|usmf");
    eventually(&format!("{number} written"), || async {
        !sync
            .activity("customers", Action::Written)
            .iter()
            .all(|line| line.key != key)
    })
    .await;
    sync.activity("customers", Action::Written)
        .into_iter()
        .find(|line| line.key == key)
        .and_then(|line| line.map_version)
}

fn version_in_status(sync: &Sync, map: &str) -> Option<u32> {
    sync.engine()
        .statuses()
        .expect("statuses")
        .into_iter()
        .find(|status| status.name == map)
        .and_then(|status| status.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_definition_is_the_next_version_in_the_log_and_the_status() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    customer(&sync, "V-1").await;
    assert_eq!(written_version(&sync, "V-1").await, Some(1));
    assert_eq!(version_in_status(&sync, "customers"), Some(1));

    // The same config again: the same versions.
    sync.stop_engine().await;
    sync.start_engine().await;
    assert_eq!(version_in_status(&sync, "customers"), Some(1));

    // customers loses a field: its next version; the others keep theirs.
    sync.stop_engine().await;
    sync.maps = MAPS.replace("  \"PrimaryContactPhone = telephone1\",\n", "");
    assert_ne!(sync.maps, MAPS);
    sync.start_engine().await;
    customer(&sync, "V-2").await;
    assert_eq!(written_version(&sync, "V-2").await, Some(2));
    assert_eq!(
        written_version(&sync, "V-1").await,
        Some(1),
        "the old line keeps its version"
    );
    assert_eq!(version_in_status(&sync, "customers"), Some(2));
    assert_eq!(version_in_status(&sync, "legal-entities"), Some(1));
    let history = sync
        .engine()
        .checkpoints()
        .map_versions("customers")
        .expect("the history");
    assert_eq!(history.len(), 2);
    assert!(
        history[0]
            .definition
            .to_string()
            .contains("PrimaryContactPhone")
    );
    assert!(
        !history[1]
            .definition
            .to_string()
            .contains("PrimaryContactPhone")
    );
    sync.shutdown().await;
}
