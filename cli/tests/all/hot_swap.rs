//! The registry and hot swap, end to end, on a real `dualwrite run`
//! process: `plugin add` a component, `map apply` a map that names it
//! from the registry, see its effect on the next rows, `map history`,
//! `plugin remove` refused while the map runs it, `map rollback` to the
//! old behaviour, a broken `map apply` changing nothing; the process never
//! restarts. `run --watch` applies the entries a change of the file
//! touches; an applied map runs again after a restart until the file's
//! entry of it changes.

use std::time::Duration;

use crate::admin_host::{Host, World, component, customers_with, dualwrite_at, wait_for};

/// `dualwrite ARGS` against `host`.
fn dualwrite(host: &Host, args: &[&str]) -> (i32, String, String) {
    dualwrite_at(Some(&host.url), args)
}

/// The customers map with value-map writing `name` as `token` on its way
/// to Dataverse.
fn tagged(token: &str) -> String {
    customers_with(&format!(
        r#"{{ plugin = "value-map@^0.1", direction = ">", settings = {{ field = "name", values = "none:none", default = "{token}" }} }}"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_and_maps_swap_on_a_running_host_and_roll_back() {
    let world = World::new(true, "").await;
    let mut host = Host::start(&world.file);
    world.customer("usmf", "H-1", "Before").await;
    world.arrives("H-1", "Before").await;

    let file = component("value-map");
    let (code, out, err) = dualwrite(&host, &["plugin", "add", &file.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(out.contains(&format!("added value-map@{version}")), "{out}");
    // A component past axum's default 2 MB body limit reaches the
    // registry (which refuses other bytes under the same version).
    let padded = world.dir.path().join("padded.wasm");
    std::fs::write(
        &padded,
        with_custom_section(&std::fs::read(&file).expect("read"), 3 << 20),
    )
    .expect("written");
    let (code, _, err) = dualwrite(&host, &["plugin", "add", &padded.display().to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("give the new build a new version"), "{err}");
    let (code, out, err) = dualwrite(&host, &["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("value-map") && out.contains(version), "{out}");

    // A map that does not validate: refused with its problem, nothing moved.
    let broken = world.dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        tagged("x").replace("value-map@^0.1", "no-such-plugin@1.0.0"),
    )
    .expect("written");
    let (code, _, err) = dualwrite(&host, &["map", "apply", &broken.display().to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("DW044") && err.contains("nothing changed"),
        "{err}"
    );

    let apply = world.dir.path().join("tagged.toml");
    std::fs::write(&apply, tagged("Tagged")).expect("written");
    let (code, out, err) = dualwrite(
        &host,
        &["map", "apply", &apply.display().to_string(), "--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customers: would be changed"), "{out}");
    assert!(out.contains("+ plugins"), "the diff names the field: {out}");
    let (code, out, err) = dualwrite(&host, &["map", "apply", &apply.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customers: changed (v1 -> v2)"), "{out}");
    assert!(
        out.contains(&format!("plugins: value-map@{version}")),
        "{out}"
    );
    world.customer("usmf", "H-2", "Plain").await;
    world.arrives("H-2", "Tagged").await;
    let (code, out, err) = dualwrite(
        &host,
        &[
            "plugin",
            "add",
            &file.display().to_string(),
            "--canary",
            "customers",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("canary on map `customers`") && out.contains("; 0 differ"),
        "{out}"
    );

    let (code, out, err) = dualwrite(&host, &["map", "history", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("v1") && out.contains("v2  ") && out.contains("(current)"),
        "{out}"
    );
    let removal = format!("value-map@{version}");
    let (code, _, err) = dualwrite(&host, &["plugin", "remove", &removal]);
    assert_ne!(code, 0);
    assert!(err.contains("used by map `customers`"), "{err}");

    let (code, out, err) = dualwrite(&host, &["map", "rollback", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customers: changed (v2 -> v3)"), "{out}");
    world.customer("usmf", "H-3", "Plain again").await;
    world.arrives("H-3", "Plain again").await;
    let (code, out, err) = dualwrite(&host, &["plugin", "remove", &removal]);
    assert_eq!(code, 0, "no map runs it any more: {out}{err}");

    assert!(host.running(), "the host never restarted");
    host.stop();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_config_file_is_applied_and_a_broken_one_changes_nothing() {
    let world = World::new(true, "").await;
    let mut host = Host::start_args(&world.file, &["--watch"], &[]);
    world.customer("usmf", "W-1", "Before").await;
    world.arrives("W-1", "Before").await;
    let file = component("value-map");
    let (code, out, err) = dualwrite(&host, &["plugin", "add", &file.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");

    let original = std::fs::read_to_string(&world.file).expect("the config");
    let plugin = "plugins = [{ plugin = \"value-map@^0.1\", direction = \">\", settings = { field = \"name\", values = \"none:none\", default = \"Watched\" } }]";
    let watched = original.replace(
        "fields = [\"OrganizationName = name\"]\n",
        &format!("fields = [\"OrganizationName = name\"]\n{plugin}\n"),
    );
    assert_ne!(watched, original);
    std::fs::write(&world.file, &watched).expect("the config changed");
    wait_for("the change applied", Duration::from_secs(30), async || {
        let (_, out, _) = dualwrite(&host, &["map", "history", "customers"]);
        out.contains("v2")
    })
    .await;
    world.customer("usmf", "W-2", "Plain").await;
    world.arrives("W-2", "Watched").await;

    // A broken file: logged, nothing changed.
    std::fs::write(
        &world.file,
        watched.replace("value-map@^0.1", "value-map@^9"),
    )
    .expect("broken");
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.customer("usmf", "W-3", "Plain").await;
    world.arrives("W-3", "Watched").await;
    let (_, out, _) = dualwrite(&host, &["map", "history", "customers"]);
    assert!(!out.contains("v3"), "nothing changed: {out}");

    // An admin's apply, then an edit of the file that leaves the customers
    // entry as it was: the admin's version keeps running.
    let apply = world.dir.path().join("apply.toml");
    std::fs::write(&apply, tagged("Admin")).expect("written");
    let (code, out, err) = dualwrite(&host, &["map", "apply", &apply.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    world.customer("usmf", "W-4", "Plain").await;
    world.arrives("W-4", "Admin").await;
    std::fs::write(&world.file, format!("{watched}\n# reviewed\n")).expect("edited");
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.customer("usmf", "W-5", "Plain").await;
    world.arrives("W-5", "Admin").await;
    assert!(host.running(), "the host never restarted");
    host.stop();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_map_runs_again_after_a_restart_until_its_config_entry_changes() {
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
    world.customer("usmf", "R-1", "Before").await;
    world.arrives("R-1", "Before").await;
    let file = component("value-map");
    let (code, out, err) = dualwrite(&host, &["plugin", "add", &file.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let apply = world.dir.path().join("apply.toml");
    std::fs::write(&apply, tagged("Applied")).expect("written");
    let (code, out, err) = dualwrite(&host, &["map", "apply", &apply.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    world.customer("usmf", "R-2", "Plain").await;
    world.arrives("R-2", "Applied").await;

    // Restarted with the file as it was: the applied version runs.
    host.stop();
    let host = Host::start(&world.file);
    world.customer("usmf", "R-3", "Plain").await;
    world.arrives("R-3", "Applied").await;
    let (code, out, err) = dualwrite(&host, &["map", "history", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("v2") && !out.contains("v3"),
        "the applied version runs again, no new one: {out}"
    );

    // The file's entry edited while the host is down: the file wins.
    host.stop();
    let config = std::fs::read_to_string(&world.file).expect("the config");
    let edited = config.replace(
        "table = \"CustomersV3\" }",
        "table = \"CustomersV3\", filter = \"\" }",
    );
    assert_ne!(edited, config);
    std::fs::write(&world.file, edited).expect("edited");
    let host = Host::start(&world.file);
    world.customer("usmf", "R-4", "Plain").await;
    world.arrives("R-4", "Plain").await;
    // And again after another restart: the record was dropped.
    host.stop();
    let host = Host::start(&world.file);
    world.customer("usmf", "R-5", "Plain").await;
    world.arrives("R-5", "Plain").await;
    host.stop();
    world.shutdown().await;
}

/// `component` with a custom section of `size` bytes appended (still a
/// valid component, other bytes).
fn with_custom_section(component: &[u8], size: usize) -> Vec<u8> {
    let name = b"padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.resize(payload.len() + size, 0);
    let mut out = component.to_vec();
    out.push(0);
    let mut length = payload.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}
