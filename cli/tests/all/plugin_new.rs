//! A plugin of one's own, outside this repository: `dualwrite plugin new`
//! makes the crate in a temporary folder, `plugin build` and `plugin test`
//! build it and run it through the host's runtime, and `plugin check`
//! accepts the component under the crate's name and version.
//!
//! The generated crates build into one target directory kept between runs
//! (`CARGO_TARGET_DIR`, under cargo's test temp dir), so the SDK's
//! dependencies and the wasm build's are compiled once, not per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The target directory every generated crate builds into.
fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-crates")
}

/// `dualwrite <args>` in `cwd`, the generated crates' builds in the
/// shared target directory.
fn dualwrite(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(args)
        .current_dir(cwd)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command succeeded, showing what it printed when not.
fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A temporary folder outside this workspace.
fn outside_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let workspace = std::fs::canonicalize(workspace).expect("workspace path");
    let temp = std::fs::canonicalize(dir.path()).expect("temp path");
    assert!(
        !temp.starts_with(&workspace),
        "{} is inside the workspace",
        temp.display()
    );
    dir
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// `plugin check` of `component` accepts it as `kind` under `id`.
fn assert_accepted(component: &Path, id: &str, kind: &str) {
    let out = dualwrite(Path::new("."), &["plugin", "check", &path_arg(component)]);
    assert_success(&out, "plugin check");
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("plugin   {id}\n")), "{stdout}");
    assert!(
        stdout.contains(&format!("accepted as a {kind}\n")),
        "{stdout}"
    );
}

fn edit(path: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(path).expect("read source");
    assert!(source.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, source.replacen(from, to, 1)).expect("write source");
}

#[test]
fn new_makes_a_crate_of_its_own_against_this_sdk() {
    let temp = outside_dir();
    let dir = temp.path().join("gate");
    let out = dualwrite(
        temp.path(),
        &[
            "plugin",
            "new",
            "gate",
            "--filter",
            "--path",
            &path_arg(&dir),
        ],
    );
    assert_success(&out, "plugin new");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "rows.json",
        "README.md",
        ".gitignore",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not made");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
    let sdk = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"))
        .expect("the SDK");
    for line in [
        "name = \"gate\"".to_owned(),
        "crate-type = [\"cdylib\", \"rlib\"]".to_owned(),
        format!("dualwrite-plugin-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
        "[workspace]".to_owned(),
        "[profile.plugin]".to_owned(),
        "panic = \"abort\"".to_owned(),
        "[patch.crates-io]".to_owned(),
        format!("dualwrite-plugin-sdk = {{ path = \"{}\" }}", sdk.display()),
    ] {
        assert!(
            manifest.lines().any(|l| l == line),
            "no `{line}`:\n{manifest}"
        );
    }
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("#[filter(reads = [\"dataAreaId\"])]"), "{lib}");
    assert!(lib.contains("#[cfg(test)]"), "{lib}");
    let rows = std::fs::read_to_string(dir.join("rows.json")).expect("rows.json");
    let rows: serde_json::Value = serde_json::from_str(&rows).expect("rows are JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(3));
}

#[test]
fn a_new_filter_builds_tests_and_is_accepted_outside_the_workspace() {
    let temp = outside_dir();
    let dir = temp.path().join("company-gate");
    let out = dualwrite(
        temp.path(),
        &[
            "plugin",
            "new",
            "company-gate",
            "--filter",
            "--path",
            &path_arg(&dir),
        ],
    );
    assert_success(&out, "plugin new");

    let out = dualwrite(temp.path(), &["plugin", "build", &path_arg(&dir)]);
    assert_success(&out, "plugin build");
    let component = shared_target().join("plugin/company-gate.wasm");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("plugin     company-gate@0.1.0\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("component  {}\n", component.display())),
        "{stdout}"
    );
    assert!(component.is_file(), "{} is missing", component.display());
    assert_accepted(&component, "company-gate@0.1.0", "filter");

    let out = dualwrite(temp.path(), &["plugin", "test", &path_arg(&dir)]);
    assert_success(&out, "plugin test");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("filter: 2 kept, 1 skipped, 0 failed"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    let json = &stdout[stdout.find('[').expect("the outcomes")..];
    let outcomes: serde_json::Value = serde_json::from_str(json).expect("outcomes are JSON");
    assert_eq!(outcomes[2]["outcome"], "skip");
    assert_eq!(outcomes[2]["reason"], "company demf is not synced");

    // A call that traps in the component (the native tests still pass)
    // fails the test run.
    let lib = dir.join("src/lib.rs");
    edit(
        &lib,
        "    let company = row.text(\"dataAreaId\")?;\n",
        "    let company = row.text(\"dataAreaId\")?;\n    \
         if cfg!(target_arch = \"wasm32\") && company == \"demf\" {\n        \
         panic!(\"no demf here\");\n    }\n",
    );
    let out = dualwrite(temp.path(), &["plugin", "test", &path_arg(&dir)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("contained: "), "{stderr}");
    assert!(stderr.contains("no demf here"), "{stderr}");

    // A native test that fails fails the run before anything is built.
    edit(
        &lib,
        "Some(\"company gbsi is not synced\")",
        "Some(\"company gbsi is synced\")",
    );
    let out = dualwrite(temp.path(), &["plugin", "test", &path_arg(&dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("native tests failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_new_transform_is_tested_from_its_own_folder() {
    let temp = outside_dir();
    // No --path: the crate is made in ./NAME, and `plugin test` defaults to
    // the current folder.
    let out = dualwrite(temp.path(), &["plugin", "new", "tidy-names"]);
    assert_success(&out, "plugin new");
    let dir = temp.path().join("tidy-names");
    let out = dualwrite(&dir, &["plugin", "test"]);
    assert_success(&out, "plugin test");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("transform: 3 kept (1 changed), 0 skipped, 0 failed"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("plugin     tidy-names@0.1.0\n"), "{stdout}");
    assert!(stdout.contains("\"name\": \"Contoso Ltd\""), "{stdout}");
    assert_accepted(
        &shared_target().join("plugin/tidy-names.wasm"),
        "tidy-names@0.1.0",
        "transform",
    );
}

#[test]
fn new_refuses_a_folder_that_is_not_empty_and_a_bad_name_writing_nothing() {
    let temp = outside_dir();
    let taken = temp.path().join("taken");
    std::fs::create_dir(&taken).expect("dir");
    std::fs::write(taken.join("notes.txt"), "mine").expect("file");
    let out = dualwrite(
        temp.path(),
        &["plugin", "new", "my-filter", "--path", &path_arg(&taken)],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{} exists and is not empty", taken.display())),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&taken)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "nothing was written");

    for name in ["1filter", "my filter", "my.filter", "fn", "std", "-x"] {
        let out = dualwrite(temp.path(), &["plugin", "new", "--", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("`{name}` is not a valid crate name")),
            "{name}: {stderr}"
        );
    }
    let out = dualwrite(
        temp.path(),
        &["plugin", "new", "fine", "--sdk-path", &path_arg(&taken)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--sdk-path"),
        "{}",
        text(&out.stderr)
    );
    let mut entries: Vec<_> = std::fs::read_dir(temp.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["taken"], "no crate folder was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_goes_from_its_own_folder_to_a_running_host_and_swaps() {
    use crate::admin_host::{Host, World, customers_with, dualwrite_at};
    let on_host = |host: &Host, args: &[&str]| {
        let (code, stdout, stderr) = dualwrite_at(Some(&host.url), args);
        assert_eq!(code, 0, "dualwrite {args:?}:\n{stdout}{stderr}");
        stdout
    };
    let temp = outside_dir();
    let dir = temp.path().join("name-tidy");
    assert_success(
        &dualwrite(
            temp.path(),
            &[
                "plugin",
                "new",
                "name-tidy",
                "--transform",
                "--path",
                &path_arg(&dir),
            ],
        ),
        "plugin new",
    );
    assert_success(&dualwrite(&dir, &["plugin", "build"]), "plugin build");
    assert_success(&dualwrite(&dir, &["plugin", "test"]), "plugin test");
    let component = shared_target().join("plugin/name-tidy.wasm");

    let world = World::new(true, "").await;
    let mut host = Host::start(&world.file);
    let out = on_host(&host, &["plugin", "add", &path_arg(&component)]);
    assert!(out.contains("added name-tidy@0.1.0"), "{out}");
    let maps = temp.path().join("maps.toml");
    std::fs::write(
        &maps,
        customers_with(r#"{ plugin = "name-tidy@0.1.0", direction = ">" }"#),
    )
    .expect("written");
    on_host(&host, &["map", "apply", &path_arg(&maps)]);
    world.customer("usmf", "N-1", "  Contoso   Ltd ").await;
    world.arrives("N-1", "Contoso Ltd").await;

    // A new version: it also upper-cases. Built, tested, added, swapped.
    edit(
        &dir.join("Cargo.toml"),
        "version = \"0.1.0\"",
        "version = \"0.2.0\"",
    );
    edit(
        &dir.join("src/lib.rs"),
        "text.split_whitespace().collect::<Vec<_>>().join(\" \")",
        "text.split_whitespace().collect::<Vec<_>>().join(\" \").to_uppercase()",
    );
    assert_success(&dualwrite(&dir, &["plugin", "build"]), "plugin build 0.2.0");
    on_host(&host, &["plugin", "add", &path_arg(&component)]);
    let out = on_host(&host, &["plugin", "swap", "customers", "name-tidy@0.2.0"]);
    assert!(out.contains("plugins: name-tidy@0.2.0"), "{out}");
    world.customer("usmf", "N-2", "  Fabrikam   Inc ").await;
    world.arrives("N-2", "FABRIKAM INC").await;
    assert!(host.running(), "the host never restarted");
    host.stop();
    world.shutdown().await;
}
