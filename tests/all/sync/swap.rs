//! Hot swap on a running engine: plugin versions and map versions swapped
//! fifty times while both sides keep changing, every change arriving once
//! and processed by the versions in force when its batch started; a
//! rollback restoring the old behaviour; a swap that does not validate
//! changing nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dualwrite::checkpoint::{Action, Checkpoints, Direction};
use dualwrite::config::parse_maps;
use dualwrite::connector::Key;
use dualwrite::registry;
use dualwrite::sync::{Change, SwapError};
use dualwrite_tests::{VALUE_MAP, component};
use serde_json::json;

use super::{MAPS, Sync, in_usmf, settle, text};

const MAP: &str = "customer-groups";

/// The customer groups map with value-map `plugin` writing `token` into
/// every description it sends to Dataverse.
pub(crate) fn groups(plugin: &str, token: &str) -> String {
    format!(
        r#"[[maps]]
name = "customer-groups"
left = {{ system = "finops", table = "CustomerGroups" }}
right = {{ system = "dataverse", table = "msdyn_customergroups" }}
key = ["CustomerGroupId = msdyn_groupid", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["Description = msdyn_description"]
plugins = [{{ plugin = "{plugin}", direction = ">", settings = {{ field = "msdyn_description", values = "none:none", default = "{token}" }} }}]
"#
    )
}

/// The engine on a store whose registry holds value-map 1.0.0 and 1.1.0.
async fn swappable() -> Sync {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    let data = sync.dir.path().join("data");
    let store = Checkpoints::open(&data).expect("the store");
    let bytes = component(VALUE_MAP);
    for version in ["1.0.0", "1.1.0"] {
        registry::add(
            &store,
            &registry::compiled_dir(&data),
            "value-map.wasm",
            &dualwrite_tests::restamped(&bytes, None, version),
            None,
            None,
        )
        .expect("added to the registry");
    }
    sync.start_engine_swappable(store).await;
    sync
}

fn group_key(id: &str, usmf: &str) -> Key {
    Key::new()
        .text("msdyn_groupid", id)
        .guid("_msdyn_company_value", usmf.parse().expect("guid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_swaps_while_both_sides_change_lose_and_double_nothing() {
    let sync = Arc::new(swappable().await);
    let usmf = sync.company_id("usmf").await;
    let store = sync.engine().checkpoints().clone();
    let since = store
        .map_record(MAP)
        .expect("record")
        .expect("a record")
        .since;
    let other = store.map_record("customers").expect("record");
    // What each version of the map writes into a description sent to
    // Dataverse, and the plugins it runs.
    let mut versions: BTreeMap<u32, (Option<String>, Vec<String>)> = BTreeMap::new();
    versions.insert(1, (None, Vec::new()));

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (sync, stop, made, usmf) = (sync.clone(), stop.clone(), made.clone(), usmf.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                sync.fo_upsert(
                    "CustomerGroups",
                    &[
                        ("dataAreaId", "usmf"),
                        ("CustomerGroupId", &format!("F-{i:03}")),
                    ],
                    json!({"Description": "from finops"}),
                )
                .await;
                sync.dv_upsert(
                    "msdyn_customergroups",
                    group_key(&format!("D-{i:03}"), &usmf),
                    in_usmf(json!({"msdyn_description": "from dataverse"})),
                )
                .await;
                i += 1;
                made.store(i, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    let engine = sync.engine();
    let mut plugin = "value-map@1.0.0".to_owned();
    let mut token = String::new();
    for swap in 0..50 {
        let swapped = if swap % 2 == 0 {
            token = format!("s{swap}");
            let maps = parse_maps("swap.toml", &groups(&plugin, &token)).expect("parses");
            let mut report = engine.apply_maps(maps, false).await.expect("applied");
            assert_eq!(report.len(), 1, "{report:?}");
            report.remove(0)
        } else {
            plugin = match plugin.as_str() {
                "value-map@1.0.0" => "value-map@1.1.0".to_owned(),
                _ => "value-map@1.0.0".to_owned(),
            };
            engine.swap_plugin(MAP, &plugin).await.expect("swapped")
        };
        assert_eq!(swapped.change, Change::Changed, "swap {swap}: {swapped:?}");
        assert!(!swapped.diff.is_empty(), "swap {swap} says what changed");
        let version = swapped.to.expect("a version");
        assert_eq!(swapped.plugins, [plugin.clone()], "swap {swap}");
        assert!(
            versions
                .insert(version, (Some(token.clone()), vec![plugin.clone()]))
                .is_none(),
            "swap {swap} made a new version"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer");
    settle(&sync).await;
    let made = made.load(Ordering::Relaxed);
    assert!(made >= 20, "changes kept flowing: {made}");

    // Every change arrived, once.
    let written: BTreeMap<String, u64> = sync
        .dataverse
        .writes("msdyn_customergroups")
        .expect("writes")
        .into_iter()
        .filter_map(|w| {
            let id = w.row.as_ref()?.get("msdyn_groupid")?.as_str()?.to_owned();
            Some((id, w.writes))
        })
        .collect();
    let into_finops: BTreeMap<String, u64> = sync
        .finops
        .writes("CustomerGroups")
        .expect("writes")
        .into_iter()
        .filter_map(|w| {
            let id = w.row.as_ref()?.get("CustomerGroupId")?.as_str()?.to_owned();
            Some((id, w.writes))
        })
        .collect();
    for i in 0..made {
        for id in [format!("F-{i:03}"), format!("D-{i:03}")] {
            assert_eq!(written.get(&id), Some(&1), "{id} written once in Dataverse");
            assert_eq!(
                into_finops.get(&id),
                Some(&1),
                "{id} written once in finops"
            );
        }
    }

    // Each finops change went by the version in force when its batch
    // started: its line says which, and the row shows that version's token.
    let lines = sync.activity(MAP, Action::Written);
    for i in 0..made {
        let key = format!("F-{i:03}|usmf");
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l.key == key && l.direction == Some(Direction::LeftToRight))
            .collect();
        assert_eq!(mine.len(), 1, "one written line of {key}: {mine:?}");
        let version = mine[0].map_version.expect("the line says its version");
        let (expected, plugins) = &versions[&version];
        assert_eq!(&mine[0].plugins, plugins, "{key} at version {version}");
        let row = sync
            .dv_get(
                "msdyn_customergroups",
                group_key(&format!("F-{i:03}"), &usmf),
            )
            .await
            .expect("in Dataverse");
        let description = text(&row, "msdyn_description");
        assert_eq!(
            description,
            expected.clone().unwrap_or_else(|| "from finops".into()),
            "{key} written by version {version}"
        );
    }

    // The map never restarted, nor did the others move.
    let record = store.map_record(MAP).expect("record").expect("a record");
    assert_eq!(record.since, since, "the map kept running all along");
    assert_eq!(store.map_record("customers").expect("record"), other);
    assert_eq!(store.map_version("customers"), Some(1));
    assert_eq!(
        store.map_version(MAP),
        versions.keys().last().copied(),
        "the last swap is in force"
    );
    Arc::into_inner(sync)
        .expect("the writer let go")
        .shutdown()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_old_behaviour_and_a_bad_swap_changes_nothing() {
    let sync = swappable().await;
    let usmf = sync.company_id("usmf").await;
    let engine = sync.engine();
    let write = |id: &'static str| {
        let sync = &sync;
        async move {
            sync.fo_upsert(
                "CustomerGroups",
                &[("dataAreaId", "usmf"), ("CustomerGroupId", id)],
                json!({"Description": "from finops"}),
            )
            .await;
        }
    };
    let description = |id: &'static str| {
        let (sync, usmf) = (&sync, usmf.clone());
        async move {
            super::eventually(&format!("{id} in Dataverse"), || async {
                sync.dv_get("msdyn_customergroups", group_key(id, &usmf))
                    .await
                    .is_some()
            })
            .await;
            let row = sync
                .dv_get("msdyn_customergroups", group_key(id, &usmf))
                .await
                .expect("in Dataverse");
            text(&row, "msdyn_description")
        }
    };
    write("R-1").await;
    assert_eq!(description("R-1").await, "from finops");
    let maps = parse_maps("swap.toml", &groups("value-map@^1", "tagged")).expect("parses");
    let applied = engine.apply_maps(maps, false).await.expect("applied");
    assert_eq!(
        applied[0].plugins,
        ["value-map@1.1.0"],
        "^1 is the highest 1.x"
    );
    write("R-2").await;
    assert_eq!(description("R-2").await, "tagged");

    // A swap that does not validate: refused with its problem, nothing moved.
    let bad = parse_maps(
        "swap.toml",
        &groups("value-map@^1", "x").replace(
            "Description = msdyn_description",
            "Nothing = msdyn_description",
        ),
    )
    .expect("parses");
    let error = engine.apply_maps(bad, false).await.expect_err("refused");
    assert!(matches!(error, SwapError::Invalid(_)), "{error}");
    assert!(error.to_string().contains("nothing changed"), "{error}");
    let error = engine
        .swap_plugin(MAP, "value-map@9.0.0")
        .await
        .expect_err("no such version");
    assert!(error.to_string().contains("DW044"), "{error}");
    let version = engine.checkpoints().map_version(MAP);
    write("R-3").await;
    assert_eq!(
        description("R-3").await,
        "tagged",
        "the swap changed nothing"
    );
    assert_eq!(engine.checkpoints().map_version(MAP), version);

    // Back to the version before: no plugin, the description as written.
    let rolled = engine.rollback_map(MAP, None).await.expect("rolled back");
    assert_eq!(rolled.plugins, Vec::<String>::new());
    assert!(
        rolled
            .diff
            .iter()
            .any(|d| d.path == "plugins" && d.after.is_none()),
        "{rolled:?}"
    );
    write("R-4").await;
    assert_eq!(description("R-4").await, "from finops");
    let error = engine.rollback_map(MAP, Some(99)).await.expect_err("none");
    assert!(error.to_string().contains("map history"), "{error}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_shows_the_rows_a_new_version_would_change_and_changes_nothing() {
    let sync = swappable().await;
    let engine = sync.engine();
    let maps = parse_maps("swap.toml", &groups("value-map@1.0.0", "tagged")).expect("parses");
    engine.apply_maps(maps, false).await.expect("applied");
    for id in ["C-1", "C-2", "C-3"] {
        sync.fo_upsert(
            "CustomerGroups",
            &[("dataAreaId", "usmf"), ("CustomerGroupId", id)],
            json!({"Description": "from finops"}),
        )
        .await;
    }
    settle(&sync).await;
    let version = engine.checkpoints().map_version(MAP);

    // The same code as another version: the rows come out the same.
    let same = dualwrite_tests::restamped(&component(VALUE_MAP), None, "1.2.0");
    let canary = engine.canary(MAP, &same, None).expect("the canary runs");
    assert_eq!(
        (canary.old.as_str(), canary.new.as_str()),
        ("value-map@1.0.0", "value-map@1.2.0")
    );
    assert!(canary.rows >= 3, "the map's latest changes: {canary:?}");
    assert!(canary.differ.is_empty(), "{canary:?}");

    // Other code under the name: every finops row it would change shows.
    let other = dualwrite_tests::restamped(
        &component(dualwrite_tests::PHONE_NORMALIZE),
        Some("value-map"),
        "2.0.0",
    );
    let canary = engine.canary(MAP, &other, None).expect("the canary runs");
    let keys: Vec<&str> = canary.differ.iter().map(|row| row.key.as_str()).collect();
    for key in ["C-1|usmf", "C-2|usmf", "C-3|usmf"] {
        assert!(keys.contains(&key), "{key} differs: {canary:?}");
    }
    let row = &canary.differ[0];
    assert_eq!(row.old["kept"]["msdyn_description"], "tagged", "{row:?}");
    assert_eq!(
        row.new["kept"]["msdyn_description"], "from finops",
        "the other plugin leaves it as mapped: {row:?}"
    );

    // Sample rows, of the source side.
    let sample = vec![
        json!({"CustomerGroupId": "S-1", "dataAreaId": "usmf", "Description": "x"})
            .as_object()
            .cloned()
            .expect("an object"),
    ];
    let canary = engine
        .canary(MAP, &other, Some((Direction::LeftToRight, sample)))
        .expect("the canary runs");
    assert_eq!((canary.rows, canary.differ.len()), (1, 1), "{canary:?}");

    // A plugin the map does not run: refused.
    let error = engine
        .canary(MAP, &component(dualwrite_tests::COMPANY_FILTER), None)
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("runs no plugin `company-filter`"),
        "{error}"
    );
    assert_eq!(
        engine.checkpoints().map_version(MAP),
        version,
        "nothing changed"
    );
    sync.shutdown().await;
}
