//! Packages between two real `dualwrite run` processes: `export -o FILE
//! --key` from a host whose map runs a plugin file, `import --dry-run`
//! into a fresh host (nothing changes), `import` with a wrong key
//! refused, an unsigned package refused by the host's `package_key_file`,
//! then `import`: the fresh host's map runs the plugin from its
//! registry and writes a row as the first host does; a stopped host is
//! exported from its store. An import into a stopped host (`-c FILE`)
//! runs at its next start.

use std::path::Path;

use dualwrite::package::{self, SigningKey};

use crate::admin_host::{Host, World, component, customers_with, dualwrite_at as dualwrite};

/// Writes `key`'s private and public PEM files into `dir` as `NAME.pem`
/// and `NAME.pub`.
fn key_files(dir: &Path, name: &str, key: &SigningKey) -> (String, String) {
    let (private, public) = package::to_pem(key).expect("PEM");
    let (private_file, public_file) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub")),
    );
    std::fs::write(&private_file, private).expect("written");
    std::fs::write(&public_file, public).expect("written");
    (
        private_file.display().to_string(),
        public_file.display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_moves_a_map_and_its_plugin_file_to_a_fresh_host() {
    // The tested host: customers runs value-map from a file.
    let tested = World::new(true, "").await;
    let config = std::fs::read_to_string(&tested.file).expect("the config");
    let step = format!(
        "fields = [\"OrganizationName = name\"]\nplugins = [{{ path = {:?}, direction = \">\", settings = {{ field = \"name\", values = \"none:none\", default = \"Tagged\" }} }}]\n",
        component("value-map").display().to_string()
    );
    let at = config
        .rfind("fields = [\"OrganizationName = name\"]\n")
        .expect("the customers map's fields");
    let config = format!(
        "{}{step}{}",
        &config[..at],
        &config[at + "fields = [\"OrganizationName = name\"]\n".len()..]
    );
    std::fs::write(&tested.file, config).expect("written");
    let mut source = Host::start(&tested.file);
    tested.customer("usmf", "T-1", "Plain").await;
    tested.arrives("T-1", "Tagged").await;

    let dir = tested.dir.path();
    let (private, public) = key_files(dir, "release", &SigningKey::from_bytes(&[3; 32]));
    let (_, wrong) = key_files(dir, "other", &SigningKey::from_bytes(&[4; 32]));
    let file = dir.join("release.dwpkg").display().to_string();
    let (code, out, err) = dualwrite(
        Some(&source.url),
        &["export", "-o", &file, "--key", &private],
    );
    assert_eq!(code, 0, "{out}{err}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(out.contains("map customers v1"), "{out}");
    assert!(
        out.contains(&format!("plugin value-map@{version}")),
        "{out}"
    );
    assert!(out.contains("signed with key"), "{out}");

    // A fresh host, its customers map without the plugin step, that takes
    // only packages signed with the release key.
    let fresh = World::new(true, &format!("package_key_file = {public:?}")).await;
    let mut target = Host::start(&fresh.file);
    fresh.customer("usmf", "F-1", "Plain").await;
    fresh.arrives("F-1", "Plain").await;
    let url = Some(target.url.as_str());

    let (code, out, err) = dualwrite(url, &["import", &file, "--dry-run", "--key", &public]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature verified with key"), "{out}");
    assert!(
        out.contains(&format!("plugin value-map@{version}: would be new")),
        "{out}"
    );
    assert!(out.contains("customers: would be changed"), "{out}");
    assert!(out.contains("+ plugins"), "the diff names the field: {out}");
    assert!(out.contains("legal-entities: unchanged"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    let (code, out, err) = dualwrite(url, &["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("holds no plugin"),
        "a dry run adds none: {out}"
    );

    let (code, _, err) = dualwrite(url, &["import", &file, "--key", &wrong]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
    let unsigned = dir.join("unsigned.dwpkg").display().to_string();
    let (code, out, err) = dualwrite(Some(&source.url), &["export", "-o", &unsigned]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = dualwrite(url, &["import", &unsigned, "--dry-run"]);
    assert_eq!(code, 2, "the host's package_key_file refuses it: {err}");
    assert!(err.contains("not signed"), "{err}");

    let (code, out, err) = dualwrite(url, &["import", &file, "--key", &public]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("plugin value-map@{version}: new")),
        "{out}"
    );
    assert!(out.contains("customers: changed (v1 -> v2)"), "{out}");
    let (code, out, err) = dualwrite(url, &["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("value-map") && out.contains("customers"),
        "the imported map runs it from the registry: {out}"
    );

    // The same row, the same sync on both hosts.
    tested.customer("usmf", "S-1", "Plain").await;
    fresh.customer("usmf", "S-1", "Plain").await;
    tested.arrives("S-1", "Tagged").await;
    fresh.arrives("S-1", "Tagged").await;
    assert!(
        target.running() && source.running(),
        "neither host restarted"
    );

    // Stopped hosts: one exports from its store and config, one refuses an
    // import (its maps are its config file's).
    source.stop();
    let stored = dir.join("stored.dwpkg").display().to_string();
    let config = tested.file.display().to_string();
    let (code, out, err) = dualwrite(None, &["export", "-o", &stored, "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("plugin value-map@{version}")),
        "{out}"
    );
    assert!(out.contains("unsigned"), "{out}");
    target.stop();
    let data = fresh.dir.path().join("data").display().to_string();
    let (code, _, err) = dualwrite(None, &["import", &file, "--data", &data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give it with -c FILE"), "{err}");
    tested.shutdown().await;
    fresh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_a_stopped_host_runs_at_its_next_start() {
    // The package of a host whose customers map runs value-map from the
    // registry.
    let tested = World::new(true, "").await;
    let source = Host::start(&tested.file);
    let (code, out, err) = dualwrite(
        Some(&source.url),
        &[
            "plugin",
            "add",
            &component("value-map").display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let apply = tested.dir.path().join("apply.toml");
    std::fs::write(
        &apply,
        customers_with(
            r#"{ plugin = "value-map@^0.1", direction = ">", settings = { field = "name", values = "none:none", default = "Imported" } }"#,
        ),
    )
    .expect("written");
    let (code, out, err) = dualwrite(
        Some(&source.url),
        &["map", "apply", &apply.display().to_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let file = tested
        .dir
        .path()
        .join("release.dwpkg")
        .display()
        .to_string();
    let (code, out, err) = dualwrite(Some(&source.url), &["export", "-o", &file]);
    assert_eq!(code, 0, "{out}{err}");
    source.stop();

    // A host that ran once and is stopped.
    let cold = World::new(true, "").await;
    let host = Host::start(&cold.file);
    cold.customer("usmf", "C-1", "Plain").await;
    cold.arrives("C-1", "Plain").await;
    host.stop();
    let config = cold.file.display().to_string();
    let before = std::fs::read_to_string(&cold.file).expect("the config");

    let (code, out, err) = dualwrite(None, &["import", &file, "-c", &config, "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("customers: would be changed"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    let (code, out, err) = dualwrite(None, &["plugin", "list", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("holds no plugin"),
        "a dry run adds none: {out}"
    );

    let (code, out, err) = dualwrite(None, &["import", &file, "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("customers: changed (v1 -> v2)"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&cold.file).expect("the config"),
        before,
        "the config file is not written"
    );
    let (code, out, err) = dualwrite(None, &["plugin", "list", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("value-map"), "{out}");

    // Started, the host runs the imported map.
    let host = Host::start(&cold.file);
    cold.customer("usmf", "C-2", "Plain").await;
    cold.arrives("C-2", "Imported").await;
    host.stop();
    tested.shutdown().await;
    cold.shutdown().await;
}
