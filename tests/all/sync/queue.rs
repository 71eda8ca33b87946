//! A paused map's queue. Its limits (`[engine.queue]`): at `max_changes`,
//! or with its oldest change older than `max_age`, capture queues no more
//! and keeps its cursor, the map says why, and once the queue drains every
//! change the source kept arrives, each written once. Its backlog parked
//! or discarded as a whole: nothing of it is written (nor captured again)
//! until a parked key is resubmitted or a discarded row changes again.

use std::time::Duration;

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::Key;
use dualwrite::sync::MapCommand;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, settle, text};

const LTR: Direction = Direction::LeftToRight;
const RTL: Direction = Direction::RightToLeft;

fn customer(number: &str) -> [(&'static str, String); 2] {
    [
        ("dataAreaId", "usmf".to_owned()),
        ("CustomerAccount", number.to_owned()),
    ]
}

async fn fo_customer(sync: &Sync, number: &str, name: &str) {
    let key = customer(number);
    let key: Vec<(&str, &str)> = key.iter().map(|(f, v)| (*f, v.as_str())).collect();
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": name, "PartyType": "Organization"}),
    )
    .await;
}

async fn fo_name(sync: &Sync, number: &str) -> Option<String> {
    let key = customer(number);
    let key: Vec<(&str, &str)> = key.iter().map(|(f, v)| (*f, v.as_str())).collect();
    sync.fo_get("CustomersV3", &key)
        .await
        .map(|row| text(&row, "OrganizationName"))
}

async fn dv_name(sync: &Sync, number: &str) -> Option<String> {
    sync.dv_get("accounts", Key::single("accountnumber", number))
        .await
        .map(|row| text(&row, "name"))
}

/// Why capture waits in `direction` of the customers map, if it does.
fn held(sync: &Sync, direction: Direction) -> Option<String> {
    sync.engine()
        .queue_held("customers")
        .expect("the map runs")
        .into_iter()
        .find(|(d, _)| *d == direction)
        .map(|(_, why)| why)
}

/// How many times each of `keys` was written in `direction`.
fn writes(sync: &Sync, direction: Direction, keys: &[String]) -> Vec<usize> {
    let lines = sync.activity("customers", Action::Written);
    keys.iter()
        .map(|key| {
            lines
                .iter()
                .filter(|line| line.direction == Some(direction) && line.key == *key)
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_holds_capture_and_every_change_arrives_once_it_drains() {
    let sync = Sync::start(MAPS, "queue = { max_changes = 3 }").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    engine
        .command("customers", MapCommand::Pause)
        .await
        .expect("customers pauses");
    let finops: Vec<String> = (1..=5).map(|i| format!("QF-{i}")).collect();
    let dataverse: Vec<String> = (1..=4).map(|i| format!("QD-{i}")).collect();
    for number in &finops {
        fo_customer(&sync, number, &format!("Finops {number}")).await;
    }
    for number in &dataverse {
        sync.dv_upsert(
            "accounts",
            Key::single("accountnumber", number),
            in_usmf(json!({"name": format!("Dataverse {number}"), "customertypecode": 3})),
        )
        .await;
    }
    eventually("both queues full and held", || async {
        held(&sync, LTR).is_some() && held(&sync, RTL).is_some()
    })
    .await;
    let why = held(&sync, LTR).unwrap_or_default();
    assert!(
        why.contains("3 changes are queued") && why.contains("`engine.queue.max_changes` (3)"),
        "{why}"
    );
    let store = engine.checkpoints();
    let cursor = store.cursor("customers", RTL).expect("reads");
    let captured = [
        engine.stats("customers", LTR).captured,
        engine.stats("customers", RTL).captured,
    ];
    // Capture goes on reading nothing: nothing more is queued and the
    // Dataverse delta link stays where it was.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.queued("customers", LTR), 3);
    assert_eq!(store.queued("customers", RTL), 3);
    assert_eq!(store.cursor("customers", RTL).expect("reads"), cursor);
    assert_eq!(
        [
            engine.stats("customers", LTR).captured,
            engine.stats("customers", RTL).captured,
        ],
        captured
    );
    for number in &finops {
        assert_eq!(
            dv_name(&sync, number).await,
            None,
            "paused: nothing written"
        );
    }

    engine
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("customers resumes");
    eventually("every change on the other side", || async {
        for number in &finops {
            if dv_name(&sync, number).await != Some(format!("Finops {number}")) {
                return false;
            }
        }
        for number in &dataverse {
            if fo_name(&sync, number).await != Some(format!("Dataverse {number}")) {
                return false;
            }
        }
        true
    })
    .await;
    settle(&sync).await;
    assert_eq!(held(&sync, LTR), None);
    assert_eq!(held(&sync, RTL), None);
    let finops_keys: Vec<String> = finops.iter().map(|n| format!("{n}|usmf")).collect();
    let dataverse_keys: Vec<String> = dataverse.iter().map(|n| format!("{n}|usmf")).collect();
    assert_eq!(
        writes(&sync, LTR, &finops_keys),
        [1; 5],
        "each written once"
    );
    assert_eq!(
        writes(&sync, RTL, &dataverse_keys),
        [1; 4],
        "each written once"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_older_than_max_age_holds_capture_until_it_drains() {
    let sync = Sync::start(MAPS, "queue = { max_age = \"2s\" }").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    engine
        .command("customers", MapCommand::Pause)
        .await
        .expect("customers pauses");
    fo_customer(&sync, "QA-1", "First").await;
    eventually("QA-1 queued", || async {
        engine.checkpoints().queued("customers", LTR) == 1
    })
    .await;
    eventually("the queue too old", || async { held(&sync, LTR).is_some() }).await;
    let why = held(&sync, LTR).unwrap_or_default();
    assert!(
        why.contains("key `QA-1|usmf`") && why.contains("`engine.queue.max_age` (2s)"),
        "{why}"
    );
    fo_customer(&sync, "QA-2", "Second").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        engine.checkpoints().queued("customers", LTR),
        1,
        "QA-2 stays in finops while the queue is too old"
    );

    engine
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("customers resumes");
    eventually("both in Dataverse", || async {
        dv_name(&sync, "QA-1").await.as_deref() == Some("First")
            && dv_name(&sync, "QA-2").await.as_deref() == Some("Second")
    })
    .await;
    assert_eq!(held(&sync, LTR), None);
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_or_discarded_backlog_writes_nothing_until_resubmitted() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    let store = engine.checkpoints();
    engine
        .command("customers", MapCommand::Pause)
        .await
        .expect("customers pauses");
    for name in ["PF-1 first", "PF-1 second"] {
        fo_customer(&sync, "PF-1", name).await;
        eventually("the edit queued", || async {
            store
                .pending("customers", LTR, "PF-1|usmf")
                .expect("pending")
                .last()
                .is_some_and(|q| text(&q.change.row, "OrganizationName") == name)
        })
        .await;
    }
    fo_customer(&sync, "PF-2", "PF-2 first").await;
    for (number, name) in [
        ("PD-1", "PD-1 first"),
        ("PD-1", "PD-1 second"),
        ("PD-2", "PD-2 first"),
    ] {
        sync.dv_upsert(
            "accounts",
            Key::single("accountnumber", number),
            in_usmf(json!({"name": name, "customertypecode": 3})),
        )
        .await;
        eventually("the edit queued", || async {
            store
                .pending("customers", RTL, &format!("{number}|usmf"))
                .expect("pending")
                .last()
                .is_some_and(|q| text(&q.change.row, "name") == name)
        })
        .await;
    }
    eventually("PF-2 queued", || async {
        store.queued("customers", LTR) == 3
    })
    .await;

    assert_eq!(
        store
            .discard_queued("customers", LTR, "discarded on resume")
            .expect("discards"),
        3
    );
    assert_eq!(
        store
            .park_queued("customers", RTL, "parked on resume")
            .expect("parks"),
        3
    );
    engine
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("customers resumes");
    // Several polls and reconciliation passes: the discarded rows compare
    // unchanged, the parked ones wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.queued("customers", LTR), 0, "nothing queued again");
    assert_eq!(store.queued("customers", RTL), 3, "parked, still queued");
    for number in ["PF-1", "PF-2"] {
        assert_eq!(dv_name(&sync, number).await, None, "{number} discarded");
    }
    for number in ["PD-1", "PD-2"] {
        assert_eq!(fo_name(&sync, number).await, None, "{number} parked");
    }
    let discarded = sync.activity("customers", Action::Discarded);
    assert_eq!(discarded.len(), 3, "{discarded:?}");
    assert!(
        discarded
            .iter()
            .all(|line| line.direction == Some(LTR)
                && line.detail.starts_with("discarded on resume"))
    );
    let parked = sync.activity("customers", Action::Parked);
    assert_eq!(parked.len(), 3, "{parked:?}");
    assert!(
        parked
            .iter()
            .all(|line| line.direction == Some(RTL) && line.detail.starts_with("parked on resume"))
    );

    // A discarded row's next edit syncs; a resubmitted key's changes are
    // written in order.
    fo_customer(&sync, "PF-2", "PF-2 again").await;
    store
        .resubmit("customers", RTL, "PD-1|usmf")
        .expect("resubmits");
    eventually("PF-2's next edit and PD-1 written", || async {
        dv_name(&sync, "PF-2").await.as_deref() == Some("PF-2 again")
            && fo_name(&sync, "PD-1").await.as_deref() == Some("PD-1 second")
    })
    .await;
    assert_eq!(writes(&sync, RTL, &["PD-1|usmf".to_owned()]), [2]);
    assert_eq!(fo_name(&sync, "PD-2").await, None, "PD-2 is still parked");
    sync.shutdown().await;
}
