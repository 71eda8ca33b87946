//! Every hostile plugin is contained with the specific error expected; the
//! host serves the next call normally and other plugins are unaffected.
//! `foreach_hostile_plugin!` makes a hostile plugin without a test here fail
//! to compile.

use crate::support::{context, rows};
use dualwrite::plugin::{
    Batch, Interface, Plugin, PluginError, PluginLimits, PluginTrap, Rows, Runtime, RuntimeConfig,
    TrapKind, Value, ValueRef, Verdict,
};
use dualwrite_tests::*;
use std::time::Duration;

macro_rules! assert_test_exists {
    ($name:ident, $path:ident) => {
        #[allow(unused_imports, reason = "the import only checks that the test exists")]
        use self::$name as _;
    };
}
foreach_hostile_plugin!(assert_test_exists);

/// The deadline of every hostile plugin's call: past what a plugin that
/// only writes too much needs to be stopped for that on a loaded machine,
/// so each is stopped for its own misdeed.
const DEADLINE: Duration = Duration::from_secs(1);

fn limits() -> PluginLimits {
    PluginLimits {
        timeout: DEADLINE,
        memory: 32 << 20,
        quarantine_after: 100,
        ..PluginLimits::default()
    }
}

fn batch() -> Batch {
    rows(r#"[{"name": "Contoso", "n": 1}, {"name": "Fabrikam", "n": 2}]"#)
}

/// Runs the hostile transform twice (the second time on a fresh instance,
/// with the same containment), then checks that a well-behaved plugin on the
/// same runtime still works. Returns the error.
fn contained(plugin: &Plugin) -> PluginError {
    let ctx = context("customers", &[]);
    let first = plugin
        .transform(&ctx, &batch())
        .expect_err("the hostile plugin is stopped");
    let second = plugin
        .transform(&ctx, &batch())
        .expect_err("and stopped again");
    assert_eq!(
        first.to_string(),
        second.to_string(),
        "a fresh instance, the same containment"
    );
    assert_eq!(plugin.health().failures_in_a_row, 2);
    bystander_works();
    first
}

fn bystander_works() {
    let split = load(PARTY_NAME_SPLIT, PluginLimits::default());
    let call = split
        .transform(
            &context("contacts", &[]),
            &rows(r#"[{"fullname": "Ada Lovelace"}]"#),
        )
        .expect("a well-behaved plugin is unaffected");
    assert_eq!(call.result.outcomes.len(), 1);
}

fn trap(error: PluginError) -> PluginTrap {
    match error {
        PluginError::Trap(trap) => trap,
        other => panic!("expected a trap, got: {other}"),
    }
}

#[test]
fn hostile_loop() {
    let plugin = load(HOSTILE_LOOP, limits());
    let started = std::time::Instant::now();
    let trap = trap(contained(&plugin));
    assert_eq!(trap.kind, TrapKind::Timeout(DEADLINE));
    assert_eq!(trap.plugin, "hostile-loop@0.1.0");
    assert_eq!(trap.map, "customers");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "both calls were cut off near their deadline"
    );
}

#[test]
fn hostile_alloc() {
    let trap = trap(contained(&load(HOSTILE_ALLOC, limits())));
    assert_eq!(trap.kind, TrapKind::OutOfMemory { limit: 32 << 20 });
}

#[test]
fn hostile_recurse() {
    let trap = trap(contained(&load(HOSTILE_RECURSE, limits())));
    assert_eq!(trap.kind, TrapKind::StackOverflow);
}

#[test]
fn hostile_panic() {
    let trap = trap(contained(&load(HOSTILE_PANIC, limits())));
    let TrapKind::Panic(Some(message)) = &trap.kind else {
        panic!("expected a panic with its message, got {:?}", trap.kind);
    };
    assert!(
        message.contains("hostile plugin gave up on Contoso"),
        "{message}"
    );
    assert!(
        message.contains("src/lib.rs"),
        "the panic's location is kept: {message}"
    );
}

#[test]
fn hostile_wrong_length() {
    let error = contained(&load(HOSTILE_WRONG_LENGTH, limits()));
    assert!(
        matches!(&error, PluginError::Contract { violation, .. } if violation == "it returned 1 outcomes for 2 rows"),
        "{error}"
    );
}

#[test]
fn hostile_huge_output() {
    // The output cap is what stops it: the deadline is far, so that a
    // loaded machine building 16 MiB slowly does not hit it first.
    let error = contained(&load(
        HOSTILE_HUGE_OUTPUT,
        PluginLimits {
            memory: 256 << 20,
            timeout: Duration::from_secs(30),
            ..limits()
        },
    ));
    assert!(
        matches!(&error, PluginError::Contract { violation, .. } if violation.contains("over the cap of 16384 KiB")),
        "{error}"
    );
}

#[test]
fn hostile_log_flood() {
    let plugin = load(
        HOSTILE_LOG_FLOOD,
        PluginLimits {
            timeout: Duration::from_secs(30),
            log_line_bytes: 100,
            ..limits()
        },
    );
    let call = plugin
        .filter(
            &context("customers", &[]),
            &rows(r#"[{"name": "Contoso"}]"#),
        )
        .expect("logging is not a failure; it is capped");
    assert_eq!(call.stats.logs.len(), 100, "the line cap");
    assert_eq!(
        call.stats.dropped_logs,
        100_000 - 100,
        "the rest are counted"
    );
    assert!(
        call.stats
            .logs
            .iter()
            .all(|line| line.message.len() <= 100 + '…'.len_utf8())
    );
    assert!(
        call.stats.logs[0].message.ends_with('…'),
        "a long line is cut"
    );
    bystander_works();
}

#[test]
fn hostile_wasi() {
    let error = Plugin::load(runtime(), HOSTILE_WASI, &component(HOSTILE_WASI), limits())
        .expect_err("a WASI import is refused at load");
    assert!(
        matches!(&error, PluginError::ForbiddenImport { import, .. } if import == "wasi:clocks/wall-clock@0.2.0"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("imports `wasi:clocks/wall-clock@0.2.0`")
    );
}

#[test]
fn hostile_future_version() {
    let error = Plugin::load(
        runtime(),
        HOSTILE_FUTURE_VERSION,
        &component(HOSTILE_FUTURE_VERSION),
        limits(),
    )
    .expect_err("another contract version is refused");
    assert!(
        matches!(&error, PluginError::WrongContract { found, supported: "0.2.0", .. } if found == "0.3.0"),
        "{error}"
    );
    assert!(
        error.to_string().contains(
            "was built against `dualwrite:plugin@0.3.0`, but this host speaks `dualwrite:plugin@0.2.0`"
        ),
        "{error}"
    );
}

#[test]
fn hostile_past_version() {
    // Not hostile: a plugin of the released contract 0.1.0 keeps loading and
    // working, and is sent every field.
    let plugin = load(HOSTILE_PAST_VERSION, limits());
    assert!(plugin.is_released_contract());
    assert!(plugin.has_filter() && plugin.has_transform());
    let ctx = context("customers", &[]);
    let batch = rows(r#"[{"name": "Contoso", "n": 1}, {"name": "", "n": 2}]"#);
    let verdicts = plugin.filter(&ctx, &batch).expect("filters").result;
    assert_eq!(verdicts, [Verdict::Keep, Verdict::Skip("no name".into())]);
    let result = plugin.transform(&ctx, &batch).expect("transforms").result;
    assert_eq!(result.fields, ["name", "n", "length"]);
    assert_eq!(
        result.row(&batch, 0),
        Some(vec![
            Some(Value::Text("CONTOSO".into())),
            Some(Value::Integer(1)),
            Some(Value::Integer(7)),
        ])
    );
    let reads = plugin
        .reads(Interface::Transform, &ctx)
        .expect("answers")
        .result;
    assert_eq!(reads, None, "0.1.0 declares no reads: every field is sent");

    // Through `Rows`, as a map's chain runs it: every field is sent, the
    // changes land in the rows.
    let mut flat = Rows::from_batch(&batch);
    let verdicts = plugin
        .transform_rows(&ctx, &mut flat, &[1, 0], None)
        .expect("transforms")
        .result;
    assert_eq!(verdicts, [Verdict::Keep, Verdict::Keep]);
    let length = flat.position("length").expect("the added field");
    assert_eq!(flat.get(0, length), Some(ValueRef::Integer(7)));
    assert!(flat.is_changed(0, 0) && !flat.is_changed(0, 1));
    assert_eq!(flat.get(1, 0), Some(ValueRef::Text("")), "unchanged");
}

#[test]
fn a_plugin_that_keeps_trapping_is_quarantined_until_released() {
    let plugin = load(
        HOSTILE_PANIC,
        PluginLimits {
            quarantine_after: 3,
            ..limits()
        },
    );
    let ctx = context("customers", &[]);
    for _ in 0..3 {
        assert!(matches!(
            plugin.transform(&ctx, &batch()),
            Err(PluginError::Trap(_))
        ));
    }
    assert!(plugin.health().quarantined);
    let error = plugin.transform(&ctx, &batch()).expect_err("quarantined");
    assert!(
        matches!(error, PluginError::Quarantined { failures: 3, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("hostile plugin gave up on Contoso"),
        "names the last failure: {error}"
    );
    plugin.release();
    assert!(!plugin.health().quarantined);
    assert!(
        matches!(plugin.transform(&ctx, &batch()), Err(PluginError::Trap(_))),
        "called again after release"
    );
    assert_eq!(plugin.health().failures_total, 4);
}

#[test]
fn a_call_after_a_trap_gets_a_fresh_instance() {
    let plugin = load(HOSTILE_PANIC, limits());
    let ctx = context("customers", &[]);
    let fine = rows(r#"[{"name": ""}]"#);
    plugin
        .transform(&ctx, &fine)
        .expect("an empty name does not panic");
    let second = plugin.transform(&ctx, &fine).expect("warm");
    assert!(!second.stats.fresh_instance);
    plugin.transform(&ctx, &batch()).expect_err("panics");
    let after = plugin.transform(&ctx, &fine).expect("served again");
    assert!(
        after.stats.fresh_instance,
        "the trapped instance was dropped"
    );
    assert_eq!(
        plugin.health().failures_in_a_row,
        0,
        "a clean call resets the count"
    );
}

/// A config whose `customers` map runs `hostile-loop` with `limits`.
fn plan_with_the_loop(limits: &str) -> dualwrite::map::Plan {
    let text = format!(
        r#"
[systems.finops]
kind = "finops"
url = "http://127.0.0.1:1"

[systems.dataverse]
kind = "dataverse"
url = "http://127.0.0.1:2"

[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company"]
fields = ["OrganizationName = name"]
plugins = [{{ path = {HOSTILE_LOOP:?}, direction = ">", kind = "transform", limits = {limits} }}]
"#
    );
    let config = dualwrite::config::Config::from_toml("maps.toml", &text).expect("parses");
    config
        .build(&dualwrite::config::BuildOptions {
            registry: Default::default(),
            file: "maps.toml".into(),
            base_dir: ".".into(),
            catalogue: &dualwrite::map::NoCatalogue,
            env: &|_| None,
        })
        .unwrap_or_else(|problems| panic!("the config builds: {problems:?}"))
}

#[test]
fn a_fuel_budget_in_a_map_stops_the_loop_by_fuel_or_is_refused_never_ignored() {
    let plan = plan_with_the_loop("{ fuel = 1000000, timeout = \"60s\" }");
    let step = &plan.map("customers").expect("the map").plugins[0];

    // A runtime that does not count fuel would let the loop run to its
    // 60 s deadline; it refuses the budget instead.
    let error = Plugin::load(runtime(), &step.shown(), &step.bytes, step.limits.clone())
        .expect_err("a fuel budget on a runtime without fuel is refused");
    assert!(
        matches!(
            &error,
            PluginError::FuelNotCounted {
                fuel: 1_000_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("`fuel = 1000000`")
            && error.to_string().contains("remove `fuel`"),
        "{error}"
    );

    // The runtime made for the plan's plugins counts fuel, and the budget
    // stops the loop long before its deadline.
    let config = RuntimeConfig {
        instance_slots: 4,
        ..RuntimeConfig::default()
    };
    let counting = Runtime::new(config.counting_fuel_for(plan.plugin_limits())).expect("runtime");
    assert!(counting.counts_fuel());
    let plugin = Plugin::load(&counting, &step.shown(), &step.bytes, step.limits.clone())
        .unwrap_or_else(|error| panic!("the plan's runtime loads it: {error}"));
    let started = std::time::Instant::now();
    let trap = trap(
        plugin
            .transform(&context("customers", &[]), &batch())
            .expect_err("the loop is stopped"),
    );
    assert_eq!(trap.kind, TrapKind::OutOfFuel);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped by fuel, not by the deadline: {:?}",
        started.elapsed()
    );

    // Without a budget, the plan's runtime does not pay for counting.
    let plan = plan_with_the_loop("{ timeout = \"1s\" }");
    assert!(
        !RuntimeConfig::default()
            .counting_fuel_for(plan.plugin_limits())
            .fuel
    );
}
