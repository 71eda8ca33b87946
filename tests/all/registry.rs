//! The plugin registry over a real store: a component added by its
//! metadata's name and version after the host's checks, compiled into the
//! store's cache; versions immutable; references resolved by semver; a
//! version a map runs kept.

use dualwrite::checkpoint::{Checkpoints, Lifecycle, MapRecord};
use dualwrite::registry::{self, PluginRef, RegistryError};
use dualwrite_tests::*;

fn store() -> (tempfile::TempDir, Checkpoints) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(&dir.path().join("data")).expect("store");
    (dir, store)
}

fn reference(text: &str) -> PluginRef {
    text.parse().expect("a reference")
}

#[test]
fn a_plugin_is_added_by_its_name_and_version_and_compiled() {
    let (dir, store) = store();
    let compiled = registry::compiled_dir(&dir.path().join("data"));
    let bytes = component(PHONE_NORMALIZE);
    let added = registry::add(&store, &compiled, "phone.wasm", &bytes, None, None).expect("added");
    assert!(added.new);
    assert_eq!(added.entry.name, "phone-normalize");
    assert_eq!(added.entry.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(added.entry.kinds, ["transform"]);
    assert_eq!(added.entry.size, bytes.len() as u64);
    let cached = std::fs::read_dir(&compiled)
        .expect("the compile cache")
        .count();
    assert_eq!(cached, 1, "compiled once, into the store's cache");
    // The same bytes again: nothing new.
    let again = registry::add(&store, &compiled, "phone.wasm", &bytes, None, None).expect("again");
    assert!(!again.new);
    // Other bytes under the same version: refused.
    let other = restamped(&component(COMPANY_FILTER), None, env!("CARGO_PKG_VERSION"));
    let error = registry::add(
        &store,
        &compiled,
        "other.wasm",
        &other,
        Some("phone-normalize"),
        None,
    )
    .expect_err("a name its metadata contradicts");
    assert!(error.to_string().contains("drop --name"), "{error}");
    let restamped = restamped(&bytes, None, env!("CARGO_PKG_VERSION"));
    if restamped != bytes {
        let error = registry::add(&store, &compiled, "again.wasm", &restamped, None, None)
            .expect_err("immutable");
        assert!(matches!(error, RegistryError::Immutable { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("give the new build a new version")
        );
    }
    assert_eq!(registry::list(&store).expect("list").len(), 1);
}

#[test]
fn a_component_the_host_refuses_is_not_added() {
    let (dir, store) = store();
    let compiled = registry::compiled_dir(&dir.path().join("data"));
    let error = registry::add(
        &store,
        &compiled,
        "wasi.wasm",
        &component(HOSTILE_WASI),
        None,
        None,
    )
    .expect_err("refused");
    assert!(matches!(error, RegistryError::Refused { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("plugin `wasi.wasm` is refused")
    );
    let error =
        registry::add(&store, &compiled, "x.wasm", b"not wasm", None, None).expect_err("refused");
    assert!(matches!(error, RegistryError::Refused { .. }), "{error}");
    assert!(registry::list(&store).expect("list").is_empty());
}

#[test]
fn a_reference_resolves_to_the_highest_version_it_accepts() {
    let (dir, store) = store();
    let compiled = registry::compiled_dir(&dir.path().join("data"));
    let bytes = component(VALUE_MAP);
    for version in ["0.1.0", "0.2.0", "1.0.0", "1.4.2"] {
        registry::add(
            &store,
            &compiled,
            "value-map.wasm",
            &restamped(&bytes, None, version),
            None,
            None,
        )
        .expect("added");
    }
    let resolved = |text: &str| {
        registry::resolve(&store, &reference(text))
            .map(|(entry, _)| entry.version)
            .map_err(|error| error.to_string())
    };
    assert_eq!(resolved("value-map@^0.1").as_deref(), Ok("0.1.0"));
    assert_eq!(resolved("value-map@0.2.0").as_deref(), Ok("0.2.0"));
    assert_eq!(resolved("value-map@^1").as_deref(), Ok("1.4.2"));
    assert_eq!(resolved("value-map").as_deref(), Ok("1.4.2"));
    let missing = resolved("value-map@^2").expect_err("none");
    assert!(
        missing.contains("the registry holds 0.1.0, 0.2.0, 1.0.0, 1.4.2"),
        "{missing}"
    );
    let unknown = resolved("nothing@1.0.0").expect_err("none");
    assert!(unknown.contains("dualwrite plugin add"), "{unknown}");
    // The bytes resolved are the version's.
    let (entry, found) = registry::resolve(&store, &reference("value-map@1.0.0")).expect("found");
    assert_eq!(found, restamped(&bytes, None, "1.0.0"));
    assert_eq!(entry.id(), "value-map@1.0.0");
}

#[test]
fn a_version_a_map_runs_is_not_removed() {
    let (dir, store) = store();
    let compiled = registry::compiled_dir(&dir.path().join("data"));
    let bytes = component(VALUE_MAP);
    for version in ["1.0.0", "1.1.0"] {
        registry::add(
            &store,
            &compiled,
            "v.wasm",
            &restamped(&bytes, None, version),
            None,
            None,
        )
        .expect("added");
    }
    let mut record = MapRecord::new(Lifecycle::Running);
    record.plugins = vec!["value-map@1.0.0".into()];
    store.set_map_record("customers", &record).expect("record");
    let error = registry::remove(&store, "value-map", "1.0.0").expect_err("in use");
    assert!(matches!(error, RegistryError::InUse { .. }), "{error}");
    assert!(error.to_string().contains("map `customers`"), "{error}");
    let removed = registry::remove(&store, "value-map", "1.1.0").expect("removed");
    assert_eq!(removed.version, "1.1.0");
    let error = registry::remove(&store, "value-map", "1.1.0").expect_err("gone");
    assert!(
        error.to_string().contains("dualwrite plugin list"),
        "{error}"
    );
    let left: Vec<String> = registry::list(&store)
        .expect("list")
        .iter()
        .map(|e| e.id())
        .collect();
    assert_eq!(left, ["value-map@1.0.0"]);
    // The version left keeps its bytes.
    registry::resolve(&store, &reference("value-map@1.0.0")).expect("its bytes");
}
