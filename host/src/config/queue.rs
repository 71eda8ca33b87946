//! `[engine.queue]`: how much each map's durable queue may hold, per
//! direction, before capture waits. When a queue holds `max_changes`
//! changes, or its oldest change waiting is older than `max_age`, capture
//! queues no more and leaves its source cursor where it is (the source
//! keeps the changes, to be read when the queue drains), and the map says
//! why. A problem is `DW039 queue-limit`.
//!
//! ```toml
//! [engine.queue]
//! max_changes = 1000000
//! max_age = "7d"
//! ```

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::build::Report;
use crate::map::{Problem, ProblemCode};

/// `[engine.queue]`; every key has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Most changes one map's queue holds per direction (`1000000`),
    /// parked ones included: at it, capture waits.
    #[serde(default = "default_max_changes", deserialize_with = "max_changes")]
    pub max_changes: u64,
    /// How old the oldest change waiting in one map's queue may be (`7d`):
    /// past it, capture waits.
    #[serde(default = "default_max_age", deserialize_with = "max_age")]
    pub max_age: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_changes: default_max_changes(),
            max_age: default_max_age(),
        }
    }
}

fn default_max_changes() -> u64 {
    1_000_000
}

fn default_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 60 * 60)
}

/// `max_changes`: a whole number; anything else is refused naming the key
/// and what to write (the parser adds the line and column).
fn max_changes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::Integer(n) if n >= 0 => Ok(n.unsigned_abs()),
        other => Err(D::Error::custom(format!(
            "`[engine.queue] max_changes` is {other}: write a whole number of changes, at least 1, such as 1000000"
        ))),
    }
}

/// `max_age`: a duration as humantime reads it (`"7d"`, `"12h 30m"`).
fn max_age<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let refuse = |found: &dyn std::fmt::Display, why: &str| {
        D::Error::custom(format!(
            "`[engine.queue] max_age` is {found}{why}: write a duration in quotes, such as \"7d\" or \"12h\""
        ))
    };
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => humantime::parse_duration(&text).map_err(|error| {
            refuse(
                &format!("\"{text}\""),
                &format!(", not a duration ({error})"),
            )
        }),
        other => Err(refuse(&other, "")),
    }
}

/// Checks `[engine.queue]`: limits of zero would let no change be queued.
pub(super) fn check_queue(queue: &QueueConfig, report: &mut Report) {
    if queue.max_changes == 0 {
        report.push(
            Problem::new(
                ProblemCode::QueueLimit,
                "`[engine.queue] max_changes` is 0, so no change could ever be queued",
                "set `max_changes` to the most changes one map may queue per direction, at least 1 (the default is 1000000); a queue that holds that many makes capture wait, and the source keeps the changes",
            )
            .at_field("engine.queue.max_changes"),
        );
    }
    if queue.max_age.is_zero() {
        report.push(
            Problem::new(
                ProblemCode::QueueLimit,
                "`[engine.queue] max_age` is 0s, so every change would be too old the moment it is queued",
                "set `max_age` to how long a change may wait in a map's queue, a duration such as \"7d\" or \"12h\" (the default is 7d); past it, capture waits, and the source keeps the changes",
            )
            .at_field("engine.queue.max_age"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::{BuildOptions, Config};
    use crate::map::{EmulatorCatalogue, Plan, Problem, ProblemCode};

    const SYSTEMS: &str = r#"
[systems.finops]
kind = "finops"
url = "http://127.0.0.1:8081"
"#;

    fn build(engine: &str) -> Result<Plan, Vec<Problem>> {
        let text = format!("{SYSTEMS}\n{engine}");
        let config = Config::from_toml("maps.toml", &text).expect("the config parses");
        let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
        config.build(&BuildOptions {
            registry: Default::default(),
            file: "maps.toml".into(),
            base_dir: PathBuf::from("."),
            catalogue: &catalogue,
            env: &|_| None,
        })
    }

    #[test]
    fn the_limits_default_to_a_million_changes_and_seven_days() {
        let plan = build("").expect("valid");
        assert_eq!(plan.engine.queue.max_changes, 1_000_000);
        assert_eq!(
            plan.engine.queue.max_age,
            Duration::from_secs(7 * 24 * 3600)
        );
        let plan = build("[engine.queue]\nmax_changes = 5\nmax_age = \"90m\"\n").expect("valid");
        assert_eq!(plan.engine.queue.max_changes, 5);
        assert_eq!(plan.engine.queue.max_age, Duration::from_secs(90 * 60));
    }

    #[test]
    fn a_limit_of_zero_is_dw039_naming_the_key() {
        for (engine, field) in [
            (
                "[engine.queue]\nmax_changes = 0\n",
                "engine.queue.max_changes",
            ),
            ("[engine.queue]\nmax_age = \"0s\"\n", "engine.queue.max_age"),
        ] {
            let problems = build(engine).expect_err("refused");
            assert_eq!(problems.len(), 1, "{problems:?}");
            let problem = &problems[0];
            assert_eq!(problem.code, ProblemCode::QueueLimit);
            assert_eq!(problem.field.as_deref(), Some(field));
            assert_eq!(problem.file, "maps.toml");
            let key = field.rsplit('.').next().unwrap_or_default();
            assert!(
                problem.message.contains(&format!("`[engine.queue] {key}`")),
                "{}",
                problem.message
            );
            assert!(
                problem.help.contains(&format!("set `{key}`")),
                "{}",
                problem.help
            );
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_a_syntax_error_naming_the_key_at_its_line() {
        for (text, key) in [
            (
                "[engine.queue]\nmax_changes = \"lots\"\n",
                Some("max_changes"),
            ),
            ("[engine.queue]\nmax_changes = -1\n", Some("max_changes")),
            ("[engine.queue]\nmax_changes = 1.5\n", Some("max_changes")),
            ("[engine.queue]\nmax_age = \"a week\"\n", Some("max_age")),
            ("[engine.queue]\nmax_age = 7\n", Some("max_age")),
            ("[engine.queue]\nmax_size = 3\n", None),
        ] {
            let error = Config::from_toml("maps.toml", text).expect_err("refused");
            let shown = error.to_string();
            assert!(shown.contains("maps.toml:2"), "{shown}");
            if let Some(key) = key {
                assert!(
                    shown.contains(&format!("`[engine.queue] {key}`")),
                    "{shown}"
                );
                assert!(shown.contains("write "), "says what to write: {shown}");
            }
        }
    }
}
