//! `dualwrite demo`, run as the real binary: the live sync demo for a short
//! `--for` (both emulators, the standard maps with the example plugins, the
//! engine between them), the plugin walkthrough, and a missing plugin.

use std::path::PathBuf;
use std::process::{Command, Output};

fn components() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugins")
}

/// `dualwrite demo --plugins <components> <args>…`, once the components
/// are built.
fn demo(args: &[&str]) -> Output {
    let plugins = components();
    assert!(
        plugins.join("phone-normalize.wasm").exists(),
        "{} holds no plugins; build them with `cargo xtask plugins`",
        plugins.display()
    );
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .arg("demo")
        .arg("--plugins")
        .arg(&plugins)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether one line of `output` holds every part, in order.
/// Whether a line holds `parts` in order; keys and names compare without
/// case (a company code reads `usmf` from finops, `USMF` from Dataverse).
fn has_line(output: &str, parts: &[&str]) -> bool {
    output.to_lowercase().lines().any(|line| {
        let mut rest = line;
        parts
            .iter()
            .all(|part| match rest.find(&part.to_lowercase()) {
                Some(at) => {
                    rest = &rest[at + part.len()..];
                    true
                }
                None => false,
            })
    })
}

#[test]
fn the_live_demo_shows_changes_arriving_both_ways() {
    let out = demo(&["--for", "30s"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the demo failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        text(&out.stderr)
    );
    let table = |map: &'static str| vec!["  ", map, "finops → Dataverse"];
    let lines: &[Vec<&str>] = &[
        // The header names what runs where, and the initial copy is counted.
        vec!["finops", "emulator at http://127.0.0.1:"],
        vec!["Dataverse", "emulator at http://127.0.0.1:"],
        vec!["customers", "finops → Dataverse: phone-normalize"],
        vec!["initial copy done in"],
        table("legal-entities"),
        table("customers"),
        // finops → Dataverse, shaped by two plugins.
        vec!["finops", "create customer US-901"],
        vec![
            "engine",
            "customers",
            "finops → Dataverse",
            "US-901|usmf",
            "written in accounts",
            "ms after the change",
        ],
        vec![
            "Dataverse",
            "account US-901 now: name \"Alpine Ski House\", telephone1 \"+14255550100\", creditlimit 12500.56",
        ],
        // The host's own write comes back and is dropped.
        vec![
            "engine",
            "customers",
            "Dataverse → finops",
            "US-901|usmf",
            "echo",
        ],
        // Dataverse → finops: update, create and delete.
        vec![
            "engine",
            "customers",
            "Dataverse → finops",
            "US-901|usmf",
            "written in CustomersV3",
        ],
        vec![
            "finops",
            "customer US-901 now: OrganizationName \"Alpine Ski House Ltd\"",
        ],
        vec![
            "engine",
            "customers",
            "Dataverse → finops",
            "CE-901|usmf",
            "written in CustomersV3",
        ],
        vec![
            "engine",
            "customers",
            "Dataverse → finops",
            "CE-901|usmf",
            "deleted in CustomersV3",
        ],
        vec!["finops", "no customer CE-901"],
        // finops → Dataverse: delete.
        vec![
            "engine",
            "customers",
            "finops → Dataverse",
            "US-901|usmf",
            "deleted in accounts",
        ],
        vec!["Dataverse", "no account US-901"],
        // The closing summary.
        vec!["Summary (time is up)"],
        vec!["scripted changes arrived on the other side, in"],
        vec!["nothing lost: every change arrived, every queue is empty, both sides agree"],
    ];
    for parts in lines {
        assert!(
            has_line(&stdout, parts),
            "no line with {parts:?} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("MISSING"), "{stdout}");
}

#[test]
fn the_plugin_walkthrough_stops_the_looping_plugin() {
    let out = demo(&["--plugins-only"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        has_line(&stdout, &["contained:", "hostile-loop", "deadline"]),
        "{stdout}"
    );
    assert!(
        has_line(
            &stdout,
            &["party-name-split", "still serves the next batch"]
        ),
        "{stdout}"
    );
}

#[test]
fn a_missing_plugin_is_named_with_the_command_that_builds_it() {
    let empty = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .arg("demo")
        .arg("--plugins")
        .arg(empty.path())
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("plugin `phone-normalize` is missing")
            && stderr.contains("phone-normalize.wasm")
            && stderr.contains("cargo xtask plugins"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "nothing starts");
}
