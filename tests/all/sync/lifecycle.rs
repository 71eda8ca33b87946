//! One map of a running engine: paused and resumed by command while the
//! others flow, and failed on its own (with the reason) when its checkpoint
//! store cannot be read, while the others go on.

use std::time::Duration;

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use dualwrite::sync::{MapCommand, MapState};
use serde_json::json;

use super::{MAPS, Sync, eventually, text};

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_map_queues_then_resumes_in_order_while_the_others_flow() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    engine
        .command("customers", MapCommand::Pause)
        .await
        .expect("customers pauses");
    assert_eq!(engine.state("customers"), Some(MapState::Paused));

    for name in ["First", "Second", "Third"] {
        sync.fo_upsert(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "P-1")],
            json!({"OrganizationName": name, "PartyType": "Organization"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Another map is untouched by the pause: a new company syncs.
    sync.fo_upsert(
        "LegalEntities",
        &[("LegalEntityId", "demf")],
        json!({"Name": "Contoso Europe"}),
    )
    .await;
    sync.company_id("demf").await;
    eventually("the customer's changes queued", || async {
        engine.stats("customers", Direction::LeftToRight).captured > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sync.dv_get("accounts", account("P-1")).await.is_none(),
        "a paused map writes nothing"
    );
    assert_eq!(engine.stats("customers", Direction::LeftToRight).written, 0);

    engine
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("customers resumes");
    assert!(
        matches!(
            engine.state("customers"),
            Some(MapState::Resuming | MapState::Running)
        ),
        "{:?}",
        engine.state("customers")
    );
    eventually("the last name in Dataverse", || async {
        sync.dv_get("accounts", account("P-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Third")
    })
    .await;
    eventually("the catch-up to end", || async {
        engine.state("customers") == Some(MapState::Running)
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_whose_checkpoints_are_corrupt_fails_alone_with_the_reason() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    // A queue entry that is not a change, at the head of the customers'
    // left-to-right queue.
    {
        let db = sled::open(sync.dir.path().join("data")).expect("the store opens");
        let queue = db.open_tree("queue").expect("the queue tree");
        let mut key = b"customers\0>\0".to_vec();
        key.extend_from_slice(&1u64.to_be_bytes());
        queue.insert(key, &b"not a change"[..]).expect("written");
        db.flush().expect("flushed");
    }
    sync.start_engine_only().await;
    let engine = sync.engine();
    eventually("customers to fail", || async {
        matches!(engine.state("customers"), Some(MapState::Failed(_)))
    })
    .await;
    let Some(MapState::Failed(reason)) = engine.state("customers") else {
        unreachable!("checked above");
    };
    assert!(reason.contains("corrupt"), "{reason}");
    // The other maps go on.
    assert_eq!(engine.state("legal-entities"), Some(MapState::Running));
    sync.fo_upsert(
        "LegalEntities",
        &[("LegalEntityId", "demf")],
        json!({"Name": "Contoso Europe"}),
    )
    .await;
    sync.company_id("demf").await;
    sync.shutdown().await;
}
