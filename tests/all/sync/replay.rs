//! Catch-up after a pause: edits on both sides while the map is paused
//! (several to one row on each side, one row edited on both, other rows
//! made), then a resume. Every queued change is written in capture order,
//! the full sequence and not only each row's last value, as the target's
//! own commits show; the row edited on both sides is settled by the map's
//! policy, its loser logged with both versions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::Key;
use dualwrite::sync::MapCommand;
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, hook, in_usmf, settle, text};

const LTR: Direction = Direction::LeftToRight;
const RTL: Direction = Direction::RightToLeft;

/// `(account, name)` of every write a table's pre-commit hook saw, in
/// commit order.
type Commits = Arc<Mutex<Vec<(String, String)>>>;

/// A hook recording the account and name of each write; `number` and
/// `name` find them in the hook's change.
async fn recorder(number: fn(&Value) -> Option<&str>, name: &'static str) -> (String, Commits) {
    let commits: Commits = Arc::default();
    let record = commits.clone();
    let url = hook(move |change| {
        let record = record.clone();
        async move {
            let written = (
                number(&change).map(str::to_owned),
                change["row"][name].as_str().map(str::to_owned),
            );
            if let (Some(number), Some(name)) = written {
                record
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((number, name));
            }
            (axum::http::StatusCode::NO_CONTENT, "")
        }
    })
    .await;
    (url, commits)
}

/// The names written for `number`, in commit order.
fn names(commits: &Commits, number: &str) -> Vec<String> {
    commits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(n, _)| n == number)
        .map(|(_, name)| name.clone())
        .collect()
}

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

async fn fo_edit(sync: &Sync, number: &str, name: &str) {
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
        json!({"OrganizationName": name, "PartyType": "Organization"}),
    )
    .await;
}

async fn dv_edit(sync: &Sync, number: &str, name: &str) {
    sync.dv_upsert(
        "accounts",
        account(number),
        in_usmf(json!({"name": name, "customertypecode": 3})),
    )
    .await;
}

/// Waits until `name` is the last change of `number` queued in
/// `direction` (each edit queued before the next is made, so none is
/// folded into a later read of its row).
async fn queued(sync: &Sync, direction: Direction, number: &str, name: &str) {
    let field = match direction {
        LTR => "OrganizationName",
        RTL => "name",
    };
    let key = format!("{number}|usmf");
    eventually(&format!("{name} queued"), || async {
        sync.engine()
            .checkpoints()
            .pending("customers", direction, &key)
            .expect("pending")
            .last()
            .is_some_and(|queued| text(&queued.change.row, field) == name)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_every_queued_change_in_order_and_settles_conflicts_by_policy() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    fo_edit(&sync, "RP-C", "C start").await;
    eventually("RP-C in Dataverse", || async {
        sync.dv_get("accounts", account("RP-C")).await.is_some()
    })
    .await;
    settle(&sync).await;
    let (dv_hook, dataverse) =
        recorder(|change| change["row"]["accountnumber"].as_str(), "name").await;
    let (fo_hook, finops) = recorder(
        |change| {
            change["key"]["CustomerAccount"]
                .as_str()
                .or(change["row"]["CustomerAccount"].as_str())
        },
        "OrganizationName",
    )
    .await;
    sync.dataverse.set_hook("accounts", Some(dv_hook));
    sync.finops.set_hook("CustomersV3", Some(fo_hook));
    let engine = sync.engine();
    engine
        .command("customers", MapCommand::Pause)
        .await
        .expect("customers pauses");
    let before = [
        engine.stats("customers", LTR),
        engine.stats("customers", RTL),
    ];

    for name in ["A v1", "A v2", "A v3"] {
        fo_edit(&sync, "RP-A", name).await;
        queued(&sync, LTR, "RP-A", name).await;
    }
    for name in ["B v1", "B v2", "B v3"] {
        dv_edit(&sync, "RP-B", name).await;
        queued(&sync, RTL, "RP-B", name).await;
    }
    // RP-C on both sides; Dataverse's edits are the later ones (whole
    // seconds later: last-writer-wins compares Dataverse's grain).
    for name in ["C left 1", "C left 2"] {
        fo_edit(&sync, "RP-C", name).await;
        queued(&sync, LTR, "RP-C", name).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for name in ["C right 1", "C right 2"] {
        dv_edit(&sync, "RP-C", name).await;
        queued(&sync, RTL, "RP-C", name).await;
    }
    fo_edit(&sync, "RP-O1", "O1").await;
    fo_edit(&sync, "RP-O2", "O2").await;
    dv_edit(&sync, "RP-O3", "O3").await;
    queued(&sync, LTR, "RP-O1", "O1").await;
    queued(&sync, LTR, "RP-O2", "O2").await;
    queued(&sync, RTL, "RP-O3", "O3").await;
    let now = [
        engine.stats("customers", LTR),
        engine.stats("customers", RTL),
    ];
    for (now, before) in now.iter().zip(&before) {
        assert_eq!(now.written, before.written, "paused: nothing written");
    }
    // From here on, every commit the hooks see is the host's.
    dataverse.lock().unwrap_or_else(|e| e.into_inner()).clear();
    finops.lock().unwrap_or_else(|e| e.into_inner()).clear();

    engine
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("customers resumes");
    let name_in_finops = |number: &'static str| {
        let sync = &sync;
        async move {
            sync.fo_get(
                "CustomersV3",
                &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
            )
            .await
            .map(|row| text(&row, "OrganizationName"))
        }
    };
    let name_in_dataverse = |number: &'static str| {
        let sync = &sync;
        async move {
            sync.dv_get("accounts", account(number))
                .await
                .map(|row| text(&row, "name"))
        }
    };
    eventually("every row's last value on the other side", || async {
        name_in_dataverse("RP-A").await.as_deref() == Some("A v3")
            && name_in_finops("RP-B").await.as_deref() == Some("B v3")
            && name_in_finops("RP-C").await.as_deref() == Some("C right 2")
            && name_in_dataverse("RP-C").await.as_deref() == Some("C right 2")
            && name_in_dataverse("RP-O1").await.as_deref() == Some("O1")
            && name_in_dataverse("RP-O2").await.as_deref() == Some("O2")
            && name_in_finops("RP-O3").await.as_deref() == Some("O3")
    })
    .await;
    settle(&sync).await;

    // The full sequence, in order, each change once.
    assert_eq!(names(&dataverse, "RP-A"), ["A v1", "A v2", "A v3"]);
    assert_eq!(names(&finops, "RP-B"), ["B v1", "B v2", "B v3"]);
    assert_eq!(names(&finops, "RP-C"), ["C right 1", "C right 2"]);
    assert_eq!(
        names(&dataverse, "RP-C"),
        Vec::<String>::new(),
        "the losing side's edits are not written"
    );
    assert_eq!(names(&dataverse, "RP-O1"), ["O1"]);
    assert_eq!(names(&dataverse, "RP-O2"), ["O2"]);
    assert_eq!(names(&finops, "RP-O3"), ["O3"]);
    assert_eq!(
        names(&finops, "RP-A"),
        Vec::<String>::new(),
        "no echo is written back"
    );
    assert_eq!(names(&dataverse, "RP-B"), Vec::<String>::new());

    // The activity log tells the same, per key.
    let written = |direction: Direction, key: &str| {
        sync.activity("customers", Action::Written)
            .into_iter()
            .filter(|line| line.direction == Some(direction) && line.key == key)
            .count()
    };
    assert_eq!(written(LTR, "RP-A|usmf"), 3);
    assert_eq!(written(RTL, "RP-B|usmf"), 3);
    assert_eq!(written(RTL, "RP-C|usmf"), 2);
    let lost: Vec<String> = sync
        .activity("customers", Action::ConflictLost)
        .into_iter()
        .filter(|line| line.key == "RP-C|usmf")
        .map(|line| {
            assert_eq!(line.direction, Some(LTR), "{}", line.detail);
            line.detail
        })
        .collect();
    assert_eq!(lost.len(), 2, "both left edits lost: {lost:?}");
    for (detail, edit) in lost.iter().zip(["C left 1", "C left 2"]) {
        assert!(
            detail.starts_with("last-writer-wins")
                && detail.contains(edit)
                && detail.contains("C right 2"),
            "{detail}"
        );
    }
    sync.shutdown().await;
}
