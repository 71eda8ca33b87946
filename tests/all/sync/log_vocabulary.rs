//! Every outcome and every error class reaches the activity log, each line
//! with the step that decided it and a message. One engine between both
//! emulators writes, deletes, echoes, filters, skips (a plugin's filter),
//! loses a conflict and parks (a plugin's failure, and writes Dataverse
//! refuses with 400, with 412 and, every time, with 503); an admin retries,
//! dismisses and discards; a row waits for its lookup, which is reported,
//! never logged. The log is then read back through `RunningEngine::log`.
//!
//! What the log must show is listed per [`Action`] and per [`ErrorClass`]
//! through [`every!`], whose `match` has no wildcard: a variant added to
//! either enum fails to compile here until this test says where the log
//! shows it.
//!
//! Dataverse refuses writes through a pre-commit hook on `accounts`, as a
//! synchronous plug-in would, with the HTTP status the plug-in sets.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use dualwrite::checkpoint::{Action, Activity, Direction, ErrorClass, LogFilter, Step};
use dualwrite::connector::Key;
use dualwrite::sync::{MapState, Queued, SyncEvent};
use dualwrite_tests::{COMPANY_FILTER, PHONE_NORMALIZE};
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, hook, text};

/// What the hook says when it refuses a name holding `Refused` (400).
const REFUSED: &str = "a business rule refuses this name";
/// … holding `Stale` (412).
const STALE: &str = "the version of the existing record does not match";
/// … holding `Unavailable` (503), every time.
const DOWN: &str = "the service behind the plug-in is unavailable";

/// The hook's rules: a name holding the marker is refused with the status
/// and the message.
type Rules = Arc<Mutex<Vec<(&'static str, StatusCode, &'static str)>>>;

/// Lists each variant of an enum with what the log must show of it. The
/// `match` has no wildcard: a variant the list lacks fails to compile, and
/// one listed twice is an unreachable pattern.
macro_rules! every {
    ($enum:ident { $($variant:ident => $expect:expr),+ $(,)? }) => {{
        fn listed(item: $enum) {
            match item {
                $($enum::$variant)|+ => {}
            }
        }
        let _ = listed;
        vec![$(($enum::$variant, $expect)),+]
    }};
}

/// What the log must hold of one action.
enum Expect {
    /// At least these lines.
    Lines(Vec<Line>),
    /// No line at all: the action is reported to subscribers only.
    NotLogged,
    /// An alert rule's line, of no flow: none here, where no rule is set;
    /// `sync::alerts` shows `fired` and `resolved`, the command line's
    /// `alerts` test `notified` and `undelivered`.
    OfAlerts,
}

/// A line the log must hold: of the customer `account`, decided at `step`,
/// of `class`, its message saying each of `says`.
struct Line {
    account: &'static str,
    step: Step,
    class: Option<ErrorClass>,
    says: &'static [&'static str],
}

fn line(
    account: &'static str,
    step: Step,
    class: Option<ErrorClass>,
    says: &'static [&'static str],
) -> Line {
    Line {
        account,
        step,
        class,
        says,
    }
}

/// What the scenario leaves in the log of each action.
fn actions() -> Vec<(Action, Expect)> {
    use ErrorClass::{Application, Concurrency, Conflict, System};
    let company_filter = plugin_step(COMPANY_FILTER);
    let phone_normalize = plugin_step(PHONE_NORMALIZE);
    every!(Action {
        Written => Expect::Lines(vec![
            line("W-1", Step::Write, None, &["accounts", "'W-1'"]),
            line("R-1", Step::Write, None, &["accounts", "'R-1'"]),
        ]),
        Deleted => Expect::Lines(vec![line("W-1", Step::Write, None, &["accounts", "'W-1'"])]),
        Echo => Expect::Lines(vec![line("W-1", Step::Echo, None, &["version"])]),
        Filtered => Expect::Lines(vec![line(
            "F-1",
            Step::Filter,
            None,
            &["PartyType eq 'Organization'"],
        )]),
        Skipped => Expect::Lines(vec![line(
            "S-1",
            company_filter,
            None,
            &["company demf is not one of usmf"],
        )]),
        ConflictLost => Expect::Lines(vec![line(
            "K-1",
            Step::Conflict,
            Some(Conflict),
            &["left-wins", "Right edit", "Left edit"],
        )]),
        Parked => Expect::Lines(vec![
            line("P-1", phone_normalize, Some(Application), &["call the desk"]),
            line("R-1", Step::Write, Some(Application), &["(400)", REFUSED]),
            line("C-1", Step::Write, Some(Concurrency), &["(412)", STALE]),
            line("U-1", Step::Write, Some(System), &["5 times in a row (503)", DOWN]),
        ]),
        Waiting => Expect::NotLogged,
        Discarded => Expect::Lines(vec![line("K-1", Step::Admin, None, &["--queued discard"])]),
        Retried => Expect::Lines(vec![line("R-1", Step::Admin, None, &["resubmitted", REFUSED])]),
        Dismissed => Expect::Lines(vec![line("P-1", Step::Admin, None, &["call the desk"])]),
        Fired => Expect::OfAlerts,
        Resolved => Expect::OfAlerts,
        Notified => Expect::OfAlerts,
        Undelivered => Expect::OfAlerts,
    })
}

/// Where the scenario leaves an error of each class: the action and the
/// customer of a line that carries it.
fn classes() -> Vec<(ErrorClass, (Action, &'static str))> {
    every!(ErrorClass {
        Application => (Action::Parked, "R-1"),
        System => (Action::Parked, "U-1"),
        Concurrency => (Action::Parked, "C-1"),
        Conflict => (Action::ConflictLost, "K-1"),
    })
}

/// [`MAPS`] with the customers' conflicts won by finops and, toward
/// Dataverse, a filter plugin keeping company `usmf` (read from the
/// company lookup of the row: its key value) and a transform plugin
/// normalising phone numbers (it fails a row it cannot read).
fn maps() -> String {
    let maps = MAPS
        .replace(
            "depends_on = [\"legal-entities\", \"customer-groups\"]",
            "depends_on = [\"legal-entities\", \"customer-groups\"]\nconflict = \"left-wins\"",
        )
        .replace(
            "  \"PartyType < default Organization\",\n]",
            &format!(
                "  \"PartyType < default Organization\",\n]\nplugins = [\n  \
                 {{ path = {COMPANY_FILTER:?}, direction = \">\", kind = \"filter\", \
                 settings = {{ companies = \"usmf\", field = \"msdyn_company\" }} }},\n  \
                 {{ path = {PHONE_NORMALIZE:?}, direction = \">\", \
                 settings = {{ fields = \"telephone1\", region = \"US\" }} }},\n]"
            ),
        );
    assert!(
        maps.contains("left-wins") && maps.contains("plugins"),
        "MAPS changed: {maps}"
    );
    maps
}

/// `plugin NAME@VERSION` of the component at `path`, as its metadata says.
fn plugin_step(path: &str) -> Step {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let inspection = dualwrite::plugin::inspect(path, &bytes).expect("the plugin inspects");
    Step::Plugin(inspection.id())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hook's answer to a pending write of `accounts`.
fn answer(rules: &Rules, change: &Value) -> (StatusCode, &'static str) {
    let name = change["row"]["name"].as_str().unwrap_or_default();
    lock(rules)
        .iter()
        .find(|(marker, ..)| name.contains(marker))
        .map_or((StatusCode::NO_CONTENT, ""), |(_, status, message)| {
            (*status, *message)
        })
}

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

async fn customer(sync: &Sync, company: &str, number: &str, row: Value) {
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", company), ("CustomerAccount", number)],
        row,
    )
    .await;
}

fn organization(name: &str) -> Value {
    json!({"OrganizationName": name, "PartyType": "Organization"})
}

/// Whether `key` is the key of customer `number` (`NUMBER|company`).
fn of(key: &str, number: &str) -> bool {
    key.split('|').next() == Some(number)
}

/// The whole log, oldest first.
fn log(sync: &Sync, filter: &LogFilter) -> Vec<Activity> {
    sync.engine()
        .log(filter, usize::MAX, false)
        .expect("the activity log")
        .into_iter()
        .map(|line| line.line)
        .collect()
}

/// Waits until the log holds a line of `what` for customer `number`.
async fn logged(sync: &Sync, what: Action, number: &str) {
    eventually(&format!("{what} of {number} in the log"), || async {
        log(sync, &LogFilter::default())
            .iter()
            .any(|line| line.what == what && of(&line.key, number))
    })
    .await;
}

/// The id of customer `number` in the error queue, once it is there.
async fn parked(sync: &Sync, number: &str) -> u64 {
    let find = || {
        sync.engine()
            .errors(Some("customers"))
            .expect("the error queue")
            .into_iter()
            .find(|row| of(&row.key, number))
            .map(|row| row.id)
    };
    eventually(&format!("{number} parked"), || async { find().is_some() }).await;
    find().expect("parked")
}

async fn in_dataverse(sync: &Sync, number: &str, name: &str) {
    eventually(&format!("{number} named {name} in Dataverse"), || async {
        sync.dv_get("accounts", account(number))
            .await
            .is_some_and(|row| text(&row, "name") == name)
    })
    .await;
}

async fn pause(sync: &Sync) {
    sync.engine()
        .pause_maps(&["customers".to_owned()], false)
        .await
        .expect("customers pauses");
    eventually("customers paused", || async {
        sync.engine().state("customers") == Some(MapState::Paused)
    })
    .await;
}

async fn resume(sync: &Sync, queued: Queued) {
    sync.engine()
        .resume_maps(&["customers".to_owned()], queued)
        .await
        .expect("customers resumes");
    eventually("customers running", || async {
        sync.engine().state("customers") == Some(MapState::Running)
    })
    .await;
}

/// Whether a change of customer `number` holding `field = value` is queued
/// in `direction`.
fn queued(sync: &Sync, direction: Direction, number: &str, field: &str, value: &str) -> bool {
    sync.engine()
        .checkpoints()
        .pending("customers", direction, &format!("{number}|usmf"))
        .expect("pending changes")
        .iter()
        .any(|queued| text(&queued.change.row, field) == value)
}

/// The first event of `what` the engine reports, within 30 s.
async fn first_event(
    events: &mut tokio::sync::broadcast::Receiver<SyncEvent>,
    what: Action,
) -> SyncEvent {
    let first = async {
        loop {
            match events.recv().await {
                Ok(event) if event.what == what => return event,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("the engine's events: {error}"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), first)
        .await
        .unwrap_or_else(|_| panic!("no {what} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_and_error_class_reaches_the_log_with_its_step_and_message() {
    let sync = Sync::start(&maps(), "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "LegalEntities",
        &[("LegalEntityId", "demf")],
        json!({"Name": "Contoso Germany"}),
    )
    .await;
    sync.company_id("demf").await;
    let rules: Rules = Arc::new(Mutex::new(vec![
        ("Refused", StatusCode::BAD_REQUEST, REFUSED),
        ("Stale", StatusCode::PRECONDITION_FAILED, STALE),
        ("Unavailable", StatusCode::SERVICE_UNAVAILABLE, DOWN),
    ]));
    let answering = rules.clone();
    let url = hook(move |change: Value| {
        let rules = answering.clone();
        async move { answer(&rules, &change) }
    })
    .await;
    sync.dataverse.set_hook("accounts", Some(url));
    let mut events = sync.engine().subscribe();

    // Written (and echoed back), filtered, skipped by a plugin, failed by
    // a plugin, refused as data (400) and as a stale version (412), and a
    // row waiting for the customer group its lookup names.
    customer(&sync, "usmf", "W-1", organization("Written one")).await;
    customer(&sync, "usmf", "K-1", organization("Contested")).await;
    customer(
        &sync,
        "usmf",
        "F-1",
        json!({"OrganizationName": "A person", "PartyType": "Person"}),
    )
    .await;
    customer(&sync, "demf", "S-1", organization("Elsewhere")).await;
    customer(
        &sync,
        "usmf",
        "P-1",
        json!({
            "OrganizationName": "Bad phone",
            "PartyType": "Organization",
            "PrimaryContactPhone": "call the desk",
        }),
    )
    .await;
    customer(&sync, "usmf", "R-1", organization("Refused one")).await;
    customer(&sync, "usmf", "C-1", organization("Stale one")).await;
    customer(
        &sync,
        "usmf",
        "L-1",
        json!({
            "OrganizationName": "Late group",
            "PartyType": "Organization",
            "CustomerGroupId": "LATE",
        }),
    )
    .await;
    in_dataverse(&sync, "W-1", "Written one").await;
    in_dataverse(&sync, "K-1", "Contested").await;
    let waited = first_event(&mut events, Action::Waiting).await;
    assert!(of(&waited.key, "L-1"), "{waited:?}");
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "usmf"), ("CustomerGroupId", "LATE")],
        json!({"Description": "Arrives late"}),
    )
    .await;
    in_dataverse(&sync, "L-1", "Late group").await;
    let refused = parked(&sync, "R-1").await;
    let bad_phone = parked(&sync, "P-1").await;
    parked(&sync, "C-1").await;
    for (what, number) in [
        (Action::Echo, "W-1"),
        (Action::Echo, "K-1"),
        (Action::Filtered, "F-1"),
        (Action::Skipped, "S-1"),
    ] {
        logged(&sync, what, number).await;
    }

    // An admin dismisses P-1, lifts the rule and retries R-1, which is
    // written; W-1 is deleted.
    sync.engine()
        .dismiss_error(bad_phone)
        .expect("P-1 dismissed");
    lock(&rules).retain(|(marker, ..)| *marker != "Refused");
    sync.engine().retry_error(refused).expect("R-1 retried");
    in_dataverse(&sync, "R-1", "Refused one").await;
    sync.fo_delete(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "W-1")],
    )
    .await;
    eventually("W-1 deleted in Dataverse", || async {
        sync.dv_get("accounts", account("W-1")).await.is_none()
    })
    .await;

    // K-1 edited on both sides while the map is paused: finops wins.
    pause(&sync).await;
    customer(
        &sync,
        "usmf",
        "K-1",
        json!({"OrganizationName": "Left edit"}),
    )
    .await;
    sync.dv_upsert("accounts", account("K-1"), json!({"name": "Right edit"}))
        .await;
    eventually("both edits of K-1 queued", || async {
        queued(
            &sync,
            Direction::LeftToRight,
            "K-1",
            "OrganizationName",
            "Left edit",
        ) && queued(&sync, Direction::RightToLeft, "K-1", "name", "Right edit")
    })
    .await;
    resume(&sync, Queued::Replay).await;
    in_dataverse(&sync, "K-1", "Left edit").await;
    logged(&sync, Action::ConflictLost, "K-1").await;

    // An edit made while paused, discarded on resume.
    pause(&sync).await;
    customer(
        &sync,
        "usmf",
        "K-1",
        json!({"OrganizationName": "Dropped edit"}),
    )
    .await;
    eventually("the edit of K-1 queued", || async {
        queued(
            &sync,
            Direction::LeftToRight,
            "K-1",
            "OrganizationName",
            "Dropped edit",
        )
    })
    .await;
    resume(&sync, Queued::Discard).await;
    logged(&sync, Action::Discarded, "K-1").await;

    // Dataverse fails U-1's write every time with 503 while it takes the
    // rest of its batches: the row is parked, and the map flows on.
    customer(&sync, "usmf", "U-1", organization("Unavailable one")).await;
    customer(&sync, "usmf", "U-2", organization("Available one")).await;
    in_dataverse(&sync, "U-2", "Available one").await;
    parked(&sync, "U-1").await;

    let lines = log(&sync, &LogFilter::default());
    for line in &lines {
        assert!(line.step.is_some(), "a line without its step: {line:?}");
        assert!(
            !line.detail.is_empty(),
            "a line without a message: {line:?}"
        );
    }
    for (what, expect) in actions() {
        let of_action: Vec<&Activity> = lines.iter().filter(|l| l.what == what).collect();
        match expect {
            Expect::NotLogged | Expect::OfAlerts => {
                assert!(of_action.is_empty(), "{what} logged: {of_action:#?}")
            }
            Expect::Lines(expected) => {
                for want in expected {
                    assert!(
                        of_action.iter().any(|l| of(&l.key, want.account)
                            && l.step.as_ref() == Some(&want.step)
                            && l.class == want.class
                            && want.says.iter().all(|says| l.detail.contains(says))),
                        "no {what} line of {} at step {} of class {:?} saying {:?} in \
                         {of_action:#?}",
                        want.account,
                        want.step,
                        want.class,
                        want.says
                    );
                }
            }
        }
    }

    // Every class, among the log's errors, on the line that should carry it.
    let errors = log(
        &sync,
        &LogFilter {
            errors: true,
            ..LogFilter::default()
        },
    );
    assert!(errors.iter().all(|l| l.class.is_some()), "{errors:#?}");
    for (class, (what, number)) in classes() {
        assert!(
            errors
                .iter()
                .any(|l| l.class == Some(class) && l.what == what && of(&l.key, number)),
            "no {} error: a {what} line of {number} in {errors:#?}",
            class.as_str()
        );
    }
    sync.shutdown().await;
}
