//! `mode` and `live_fallback` of a `[[maps]]` entry: read into the plan,
//! async by default, and refused with `DW045 live-mode` naming the map and
//! the field when wrong or when Dataverse could not call the host.

use super::initial_sync_tests::{build, currencies_with as currencies};
use crate::map::{LiveFallback, ProblemCode, SyncMode};

const PUSHED: &str = "listen = \"127.0.0.1:7001\"\npublic_url = \"http://127.0.0.1:7001\"";
const SECRET: &str = "events_secret_env = \"DV_EVENTS\"";

const BOTH: &str = r#""Name = currencyname""#;

fn mode(line: &str) -> SyncMode {
    let plan = build(&currencies(BOTH, line, PUSHED, SECRET))
        .unwrap_or_else(|problems| panic!("{line}: {problems:#?}"));
    plan.map("currencies").expect("the map").mode
}

/// The one problem of a config, which must be DW045 at `field`.
fn refused(text: &str, field: &str) -> String {
    let problems = build(text).expect_err("the config is refused");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let problem = &problems[0];
    assert_eq!(problem.code, ProblemCode::LiveMode, "{problem:#?}");
    assert_eq!(problem.map.as_deref(), Some("currencies"));
    assert_eq!(problem.field.as_deref(), Some(field));
    format!("{} {}", problem.message, problem.help)
}

#[test]
fn mode_is_read_and_async_by_default() {
    assert_eq!(mode(""), SyncMode::Async);
    assert_eq!(mode(r#"mode = "async""#), SyncMode::Async);
    assert_eq!(
        mode(r#"mode = "live""#),
        SyncMode::Live {
            fallback: LiveFallback::Fail
        }
    );
    assert_eq!(
        mode("mode = \"live\"\nlive_fallback = \"queue\""),
        SyncMode::Live {
            fallback: LiveFallback::Queue
        }
    );
}

#[test]
fn a_wrong_mode_or_fallback_is_refused_naming_the_field() {
    let text = |line: &str| currencies(BOTH, line, PUSHED, SECRET);
    let message = refused(&text(r#"mode = "sync""#), "mode");
    assert!(message.contains("`mode = \"live\"`"), "{message}");
    let message = refused(
        &text("mode = \"live\"\nlive_fallback = \"drop\""),
        "live_fallback",
    );
    assert!(message.contains("\"queue\""), "{message}");
    let message = refused(&text(r#"live_fallback = "queue""#), "live_fallback");
    assert!(message.contains("live map only"), "{message}");
}

#[test]
fn a_live_map_needs_a_dataverse_side_flowing_into_finops_and_a_way_to_be_called() {
    let one_way = r#""Name > currencyname""#;
    let message = refused(
        &currencies(one_way, r#"mode = "live""#, PUSHED, SECRET),
        "mode",
    );
    assert!(
        message.contains("no synchronous outbound hook"),
        "{message}"
    );
    let message = refused(&currencies(BOTH, r#"mode = "live""#, "", SECRET), "mode");
    assert!(
        message.contains("`[engine] listen`") && message.contains("`[engine] public_url`"),
        "{message}"
    );
    let message = refused(&currencies(BOTH, r#"mode = "live""#, PUSHED, ""), "mode");
    assert!(
        message.contains("`events_secret_env` of `[systems.dataverse]`"),
        "{message}"
    );
}
