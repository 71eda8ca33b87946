//! `dualwrite plugin run` and `dualwrite plugin check`, run as the real
//! binary on the components `cargo xtask plugins` builds.

use std::path::PathBuf;
use std::process::{Command, Output};

fn components() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugins")
}

fn component(name: &str) -> String {
    let path = components().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing; build the plugins with `cargo xtask plugins`",
        path.display()
    );
    path.display().to_string()
}

fn dualwrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// `dualwrite plugin run <plugin> --input <rows> <extra>…`
fn run_plugin(plugin: &str, rows: &tempfile::NamedTempFile, extra: &[&str]) -> Output {
    let input = rows.path().display().to_string();
    let mut args = vec!["plugin", "run"];
    let component = component(plugin);
    args.extend([component.as_str(), "--input", input.as_str()]);
    args.extend_from_slice(extra);
    dualwrite(&args)
}

fn rows_file(json: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), json).expect("write rows");
    file
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_outcomes_as_json_then_what_the_call_used() {
    let rows = rows_file(
        r#"[{"CREDITLIMIT": {"decimal": "10.26"}, "name": "a"}, {"CREDITLIMIT": "x", "name": "b"}]"#,
    );
    let out = run_plugin(
        "currency-precision",
        &rows,
        &["--set", "fields=CREDITLIMIT", "--set", "places=1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let outcomes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(outcomes[0]["outcome"], "keep");
    assert_eq!(outcomes[0]["values"]["CREDITLIMIT"]["decimal"], "10.3");
    assert_eq!(outcomes[0]["values"]["name"], "a");
    assert_eq!(outcomes[1]["outcome"], "fail");
    assert_eq!(
        outcomes[1]["message"],
        "field `CREDITLIMIT` holds text; expected decimal"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("time "), "{stderr}");
    assert!(stderr.contains("memory peak "), "{stderr}");
    assert!(
        stderr.contains("fuel ") && !stderr.contains("fuel not counted"),
        "{stderr}"
    );
}

#[test]
fn run_reports_a_hostile_plugin_contained() {
    let rows = rows_file(r#"[{"n": 1}]"#);
    let out = run_plugin("hostile-loop", &rows, &["--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("contained: plugin hostile-loop@0.1.0 ran past its deadline of 200ms"),
        "{stderr}"
    );

    let out = run_plugin("hostile-loop", &rows, &["--fuel", "1000000"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("used up its fuel"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_refuses_a_plugin_the_host_would_not_load() {
    let rows = rows_file("[]");
    let out = run_plugin("hostile-wasi", &rows, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("imports `wasi:clocks/wall-clock@0.2.0`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_names_the_row_and_field_of_bad_input() {
    let rows = rows_file(r#"[{"a": 1}, {"a": {"date": "2026-13-01"}}]"#);
    let out = run_plugin("value-map", &rows, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("row 1, field `a`: `2026-13-01` is not a date"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&rows.path().display().to_string()),
        "names the file: {stderr}"
    );
}

#[test]
fn check_reports_exports_imports_and_verdict() {
    let out = dualwrite(&["plugin", "check", &component("company-filter")]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("plugin   company-filter@0.1.0"), "{stdout}");
    assert!(
        stdout.contains("exports  dualwrite:plugin/filter@0.2.0"),
        "{stdout}"
    );
    assert!(stdout.contains("dualwrite:plugin/host@0.2.0"), "{stdout}");
    assert!(stdout.contains("accepted as a filter"), "{stdout}");

    let out = dualwrite(&["plugin", "check", &component("hostile-future-version")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("built against `dualwrite:plugin@0.3.0`"),
        "{}",
        text(&out.stdout)
    );

    let core = components().join("../wasm/wasm32-unknown-unknown/plugin/company_filter.wasm");
    let out = dualwrite(&["plugin", "check", &core.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("is a core WebAssembly module, not a component"),
        "{}",
        text(&out.stdout)
    );
}
