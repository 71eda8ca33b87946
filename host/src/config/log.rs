//! `[engine.log]`: how much of the activity log the checkpoint store
//! keeps. Lines older than `max_age`, then the oldest while the log holds
//! more than `max_size`, are pruned in the background. A problem is
//! `DW041 log-retention`.
//!
//! ```toml
//! [engine.log]
//! max_age = "30d"
//! max_size = "1GiB"
//! ```

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::build::Report;
use crate::checkpoint::Retention;
use crate::map::{Problem, ProblemCode};

/// `[engine.log]`; every key has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// How long a line is kept (`30d`).
    #[serde(default = "default_max_age", deserialize_with = "max_age")]
    pub max_age: Duration,
    /// How large the log may grow, in bytes of its lines (`"1GiB"`; units
    /// as `bytesize` reads them: `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, …).
    #[serde(default = "default_max_size", deserialize_with = "max_size")]
    pub max_size: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_age: default_max_age(),
            max_size: default_max_size(),
        }
    }
}

impl LogConfig {
    /// The store's retention.
    pub fn retention(&self) -> Retention {
        Retention {
            max_age: self.max_age,
            max_bytes: self.max_size,
        }
    }
}

fn default_max_age() -> Duration {
    Duration::from_secs(30 * 24 * 60 * 60)
}

fn default_max_size() -> u64 {
    1 << 30
}

fn max_age<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => humantime::parse_duration(&text).map_err(|error| {
            D::Error::custom(format!(
                "`[engine.log] max_age` is \"{text}\", not a duration ({error}): write one in quotes, such as \"30d\""
            ))
        }),
        other => Err(D::Error::custom(format!(
            "`[engine.log] max_age` is {other}: write a duration in quotes, such as \"30d\""
        ))),
    }
}

fn max_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => text
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
            .map_err(|error| {
                D::Error::custom(format!(
                    "`[engine.log] max_size` is \"{text}\", not a size ({error}): write one in quotes, such as \"1GiB\" or \"500MB\""
                ))
            }),
        toml::Value::Integer(n) if n >= 0 => Ok(n.unsigned_abs()),
        other => Err(D::Error::custom(format!(
            "`[engine.log] max_size` is {other}: write a size in quotes, such as \"1GiB\""
        ))),
    }
}

/// Checks `[engine.log]`: a retention of zero would keep no line.
pub(super) fn check_log(log: &LogConfig, report: &mut Report) {
    if log.max_age.is_zero() {
        report.push(
            Problem::new(
                ProblemCode::LogRetention,
                "`[engine.log] max_age` is 0s, so every line of the activity log would be pruned as it is written",
                "set `max_age` to how long the activity log keeps a line, such as \"30d\" (the default)",
            )
            .at_field("engine.log.max_age"),
        );
    }
    if log.max_size == 0 {
        report.push(
            Problem::new(
                ProblemCode::LogRetention,
                "`[engine.log] max_size` is 0, so the activity log could keep no line",
                "set `max_size` to how large the activity log may grow, such as \"1GiB\" (the default)",
            )
            .at_field("engine.log.max_size"),
        );
    }
}
