//! Loading: the compile cache, and the files the host refuses with an error
//! that says what they are and what to do.

use dualwrite::plugin::{Plugin, PluginError, PluginLimits, Runtime, RuntimeConfig};
use dualwrite_tests::*;

fn refuse(name: &str, bytes: &[u8]) -> PluginError {
    Plugin::load(runtime(), name, bytes, PluginLimits::default()).expect_err("refused")
}

#[test]
fn a_core_module_is_refused_with_what_to_do() {
    let error = refuse(PARTY_NAME_SPLIT_CORE, &component(PARTY_NAME_SPLIT_CORE));
    assert!(matches!(error, PluginError::CoreModule { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("is a core WebAssembly module, not a component")
    );
}

#[test]
fn a_truncated_component_is_refused() {
    let bytes = component(PARTY_NAME_SPLIT);
    let error = refuse("cut.wasm", &bytes[..bytes.len() / 2]);
    assert!(matches!(error, PluginError::Corrupt { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("cut.wasm is truncated or corrupt")
    );
}

#[test]
fn a_foreign_file_is_refused() {
    let error = refuse("notes.txt", b"just some text");
    assert!(
        error
            .to_string()
            .starts_with("notes.txt is not a WebAssembly component (it starts with 6a 75 73 74")
    );
}

#[test]
fn a_compiled_plugin_is_cached_on_disk_by_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let bytes = component(VALUE_MAP);
    let first = Plugin::load(&runtime, VALUE_MAP, &bytes, PluginLimits::default()).expect("loads");
    assert!(!first.was_cached());
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("cache dir").collect();
    assert_eq!(files.len(), 1, "one artifact");
    let second = Plugin::load(&runtime, VALUE_MAP, &bytes, PluginLimits::default()).expect("loads");
    assert!(second.was_cached());

    // A corrupt artifact is recompiled, not trusted. (It is replaced, not
    // written over: the loaded plugins above map the old file.)
    let artifact = files[0].as_ref().expect("entry").path();
    std::fs::remove_file(&artifact).expect("remove");
    std::fs::write(&artifact, b"garbage").expect("replace");
    let third = Plugin::load(&runtime, VALUE_MAP, &bytes, PluginLimits::default()).expect("loads");
    assert!(!third.was_cached());
    let batch = crate::support::rows(r#"[{"f": "a"}]"#);
    let ctx = crate::support::context("m", &[("field", "f"), ("values", "a:1")]);
    assert_eq!(
        third.transform(&ctx, &batch).expect("runs").result,
        first.transform(&ctx, &batch).expect("runs").result
    );
}
