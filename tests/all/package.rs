//! Packages between two real hosts (emulators, engines, stores): a map
//! that runs a registry plugin, exported with its plugin and an alert
//! rule, imported into a fresh host whose config lacks the plugin step,
//! syncs a row the same way there; a package that was changed, made for
//! another contract major version, unsigned or signed by another key is
//! refused, naming what, and changes nothing.

use dualwrite::alerts::RuleSpec;
use dualwrite::checkpoint::Checkpoints;
use dualwrite::config::parse_maps;
use dualwrite::connector::Key;
use dualwrite::package::{self, ImportOptions, Imported, Package, PartKind, SigningKey};
use dualwrite::plugin::bindings::CONTRACT_VERSION;
use dualwrite::registry;
use dualwrite_tests::{VALUE_MAP, component};
use serde_json::json;

use crate::sync::{MAPS, Sync, eventually, text};

const MAP: &str = "customer-groups";
const PLUGIN_PART: &str = concat!("plugins/value-map@", env!("CARGO_PKG_VERSION"), ".wasm");

fn rule() -> RuleSpec {
    RuleSpec {
        name: "groups-backlog".into(),
        map: Some(MAP.into()),
        condition: "backlog".into(),
        above: Some(1000),
        ..RuleSpec::default()
    }
}

/// A host of the standard maps, able to take swaps, on a store of its own;
/// with `tested`, value-map in its registry, the customer groups map
/// running it and an alert rule added through the API.
async fn host(tested: bool) -> Sync {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    let data = sync.dir.path().join("data");
    let store = Checkpoints::open(&data).expect("the store");
    if tested {
        registry::add(
            &store,
            &registry::compiled_dir(&data),
            "value-map.wasm",
            &component(VALUE_MAP),
            None,
            None,
        )
        .expect("added to the registry");
    }
    sync.start_engine_swappable(store).await;
    if tested {
        let maps = parse_maps(
            "tested.toml",
            &crate::sync::swap::groups("value-map@^0.1", "Tested"),
        )
        .expect("parses");
        sync.engine()
            .apply_maps(maps, false)
            .await
            .expect("applied");
        sync.engine().add_alert_rule(&rule()).expect("rule added");
    }
    sync
}

/// What an import may change on `sync`'s host: the registry, the map's
/// version and definition, the alert rules.
fn state(sync: &Sync) -> (Vec<String>, Option<u32>, serde_json::Value, Vec<String>) {
    let engine = sync.engine();
    let store = engine.checkpoints();
    (
        registry::list(store)
            .expect("the registry")
            .iter()
            .map(|entry| entry.id())
            .collect(),
        store.map_version(MAP),
        engine.plan().map(MAP).expect("the map").definition.clone(),
        engine
            .alert_rules()
            .into_iter()
            .map(|s| s.rule.name)
            .collect(),
    )
}

async fn import(sync: &Sync, package: &Package, options: ImportOptions<'_>) -> Imported {
    package::import(sync.engine(), &package.to_bytes(), options)
        .await
        .unwrap_or_else(|error| panic!("imported: {error}"))
}

/// Writes a customer group on finops and waits for its description in
/// Dataverse.
async fn synced_description(sync: &Sync, id: &str) -> String {
    let usmf = sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "usmf"), ("CustomerGroupId", id)],
        json!({"Description": "from finops"}),
    )
    .await;
    let key = Key::new()
        .text("msdyn_groupid", id)
        .guid("_msdyn_company_value", usmf.parse().expect("guid"));
    eventually(&format!("group {id} in Dataverse"), || async {
        sync.dv_get("msdyn_customergroups", key.clone())
            .await
            .is_some()
    })
    .await;
    let row = sync
        .dv_get("msdyn_customergroups", key)
        .await
        .expect("in Dataverse");
    text(&row, "msdyn_description")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_moves_a_tested_map_to_a_fresh_host_that_syncs_the_same() {
    let source = host(true).await;
    let version = env!("CARGO_PKG_VERSION");
    let exported = package::export(
        source.engine().checkpoints(),
        &source.engine().plan(),
        Some(&[MAP.to_owned()]),
    )
    .expect("exported");
    let parts: Vec<_> = exported
        .manifest
        .parts
        .iter()
        .map(|p| (p.kind, p.name.as_str(), p.version.as_deref()))
        .collect();
    assert_eq!(
        parts,
        [
            (PartKind::Map, MAP, Some("2")),
            (PartKind::Plugin, "value-map", Some(version)),
            (PartKind::AlertRules, "alert-rules", None),
        ]
    );
    assert_eq!(exported.manifest.contract, CONTRACT_VERSION);
    let contents = exported.contents().expect("its parts read");
    assert_eq!(
        contents.maps[0].definition["plugins"][0]["plugin"],
        format!("value-map@{version}"),
        "the requirement is pinned to the version that ran"
    );
    assert_eq!(contents.rules, [rule()]);

    let target = host(false).await;
    let before = state(&target);
    assert_eq!(before.0, Vec::<String>::new(), "a fresh registry");
    let dry = import(
        &target,
        &exported,
        ImportOptions {
            dry_run: true,
            key: None,
        },
    )
    .await;
    assert_eq!(dry.plugins.len(), 1, "{dry:?}");
    assert_eq!(dry.plugins[0].plugin, format!("value-map@{version}"));
    assert_eq!(dry.plugins[0].change, "new");
    assert_eq!(dry.maps.len(), 1, "{dry:?}");
    assert_eq!(dry.maps[0].change, dualwrite::sync::Change::Changed);
    assert_eq!(dry.maps[0].from, Some(1));
    assert!(
        dry.maps[0].diff.iter().any(|d| d.path == "plugins"),
        "the diff names the plugin step: {:?}",
        dry.maps[0].diff
    );
    assert_eq!(dry.alert_rules[0].rule, "groups-backlog");
    assert_eq!(dry.alert_rules[0].change, "new");
    assert_eq!(state(&target), before, "a dry run changes nothing");

    let done = import(&target, &exported, ImportOptions::default()).await;
    assert_eq!(done.maps[0].to, Some(2), "{done:?}");
    let after = state(&target);
    assert_eq!(after.0, [format!("value-map@{version}")]);
    assert_eq!(after.1, Some(2));
    assert_eq!(after.2, contents.maps[0].definition);
    assert_eq!(after.3, ["groups-backlog"]);

    // The same row, the same sync on both hosts.
    assert_eq!(synced_description(&source, "P-1").await, "Tested");
    assert_eq!(synced_description(&target, "P-1").await, "Tested");

    // Imported again: nothing to change.
    let again = import(&target, &exported, ImportOptions::default()).await;
    assert_eq!(again.plugins[0].change, "unchanged");
    assert_eq!(again.maps[0].change, dualwrite::sync::Change::Unchanged);
    assert_eq!(again.alert_rules[0].change, "unchanged");
    assert_eq!(state(&target), after);
    source.shutdown().await;
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_foreign_or_wrongly_signed_package_is_refused_and_changes_nothing() {
    let source = host(true).await;
    let exported = package::export(source.engine().checkpoints(), &source.engine().plan(), None)
        .expect("exported");
    source.shutdown().await;
    let target = host(false).await;
    let before = state(&target);
    let key = SigningKey::from_bytes(&[1; 32]);
    let wrong = SigningKey::from_bytes(&[2; 32]);
    let refused = async |package: &Package, key: Option<&SigningKey>| {
        let verifying = key.map(SigningKey::verifying_key);
        let options = ImportOptions {
            dry_run: false,
            key: verifying.as_ref(),
        };
        let error = package::import(target.engine(), &package.to_bytes(), options)
            .await
            .expect_err("refused")
            .to_string();
        assert_eq!(state(&target), before, "nothing changed: {error}");
        error
    };

    let mut flipped = exported.clone();
    let plugin = flipped.parts.get_mut(PLUGIN_PART).expect("the plugin part");
    let middle = plugin.len() / 2;
    plugin[middle] ^= 0x20;
    let error = refused(&flipped, None).await;
    assert!(
        error.contains(PLUGIN_PART) && error.contains("does not match the manifest"),
        "{error}"
    );

    let mut manifest = exported.clone();
    let map_part = format!("maps/{MAP}.json");
    let listed = manifest
        .manifest
        .parts
        .iter_mut()
        .find(|p| p.path == map_part)
        .expect("the map's part");
    listed.sha256 = package::sha256(b"another definition");
    let error = refused(&manifest, None).await;
    assert!(error.contains(&map_part), "{error}");

    let mut foreign = exported.clone();
    foreign.manifest.contract = "1.0.0".into();
    let error = refused(&foreign, None).await;
    assert!(
        error.contains("contract 1.0.0") && error.contains(&format!("contract {CONTRACT_VERSION}")),
        "{error}"
    );

    let error = refused(&exported, Some(&key)).await;
    assert!(error.contains("not signed"), "{error}");
    let mut signed = exported.clone();
    signed.sign(&key);
    let error = refused(&signed, Some(&wrong)).await;
    assert!(error.contains("signature does not verify"), "{error}");
    let mut resigned = signed.clone();
    resigned
        .manifest
        .parts
        .retain(|p| p.kind != PartKind::AlertRules);
    resigned.parts.remove(package::ALERT_RULES);
    let error = refused(&resigned, Some(&key)).await;
    assert!(error.contains("signature does not verify"), "{error}");

    // The right key: verified, and applied.
    let verifying = key.verifying_key();
    let options = ImportOptions {
        dry_run: false,
        key: Some(&verifying),
    };
    let done = import(&target, &signed, options).await;
    assert_eq!(
        done.verified_key,
        Some(package::fingerprint(&verifying)),
        "{done:?}"
    );
    assert_eq!(state(&target).1, Some(2));
    target.shutdown().await;
}
