//! Alert rules: what an admin writes ([`RuleSpec`], the same fields in the
//! config's `[[alerts.rules]]`, in the admin API's JSON and in the store)
//! and what the host evaluates ([`Rule`], checked: its condition typed,
//! its map and system known).
//!
//! ```toml
//! [[alerts.rules]]
//! name = "application-errors"
//! map = "customers"            # absent: every map
//! condition = "errors"
//! class = "application"        # absent: errors of any class
//! count = 10
//! within = "15m"
//! actions = ["notify", "pause"]
//! ```
//!
//! The conditions, each evaluated per map:
//! - `errors`: `count` errors (of `class`) within `within`, counted in the
//!   activity log since the map last started;
//! - `backlog`: more than `above` changes queued;
//! - `oldest-change`: an unsynced change older than `older_than`;
//! - `plugin-quarantined`: a plugin of the map (`plugin`, when named)
//!   quarantined;
//! - `unreachable`: a system (`system`, when named) the map writes to
//!   unreachable `for` longer than a duration;
//! - `queue-full`: a queue at its `[engine.queue] max_changes`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::checkpoint::ErrorClass;

/// The longest rule name: it is a path segment of the admin API.
pub const MAX_NAME: usize = 64;

/// A rule as written: every field but `name` and `condition` optional,
/// checked into a [`Rule`] by [`RuleSpec::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The one map it watches; absent: every map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// `errors`, `backlog`, `oldest-change`, `plugin-quarantined`,
    /// `unreachable` or `queue-full`.
    pub condition: String,
    /// `errors`: the class counted (`application`, `system`,
    /// `concurrency`, `conflict`); absent: every class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `errors`: how many errors fire the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `errors`: the window they are counted in, such as `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// `backlog`: the changes queued above which the rule fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<u64>,
    /// `oldest-change`: the age past which the rule fires, such as `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// `plugin-quarantined`: the plugin (its name, or `NAME@VERSION`);
    /// absent: any plugin of the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// `unreachable`: the system; absent: any system the map writes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// `unreachable`: how long it must be unreachable, such as `5m`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// `notify` (the subscribed webhooks), `pause` (the map goes to
    /// `failed`, the rule as its reason), or both; absent: `notify`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// What fires a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `count` errors (of `class`, else any) within `within`.
    Errors {
        /// The class counted; none: every class.
        class: Option<ErrorClass>,
        /// How many.
        count: u64,
        /// The window.
        within: Duration,
    },
    /// More than `above` changes queued (both directions together).
    Backlog {
        /// The threshold.
        above: u64,
    },
    /// A change waiting longer than `older_than`.
    OldestChange {
        /// The age.
        older_than: Duration,
    },
    /// A plugin of the map quarantined.
    PluginQuarantined {
        /// Only this plugin (`NAME` or `NAME@VERSION`).
        plugin: Option<String>,
    },
    /// A system the map writes to unreachable for longer than `for_`.
    Unreachable {
        /// Only this system.
        system: Option<String>,
        /// How long.
        for_: Duration,
    },
    /// A queue of the map at its `max_changes`.
    QueueFull,
}

impl Condition {
    /// The condition's name as written: `errors`, `backlog`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Errors { .. } => "errors",
            Condition::Backlog { .. } => "backlog",
            Condition::OldestChange { .. } => "oldest-change",
            Condition::PluginQuarantined { .. } => "plugin-quarantined",
            Condition::Unreachable { .. } => "unreachable",
            Condition::QueueFull => "queue-full",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Errors {
                class,
                count,
                within,
            } => {
                let class = class
                    .map(|c| format!("{} ", c.as_str()))
                    .unwrap_or_default();
                let noun = if *count == 1 { "error" } else { "errors" };
                write!(
                    f,
                    "{count} {class}{noun} within {}",
                    humantime::format_duration(*within)
                )
            }
            Condition::Backlog { above } => write!(f, "more than {above} changes queued"),
            Condition::OldestChange { older_than } => write!(
                f,
                "a change waiting longer than {}",
                humantime::format_duration(*older_than)
            ),
            Condition::PluginQuarantined { plugin: None } => f.write_str("a plugin quarantined"),
            Condition::PluginQuarantined { plugin: Some(p) } => {
                write!(f, "plugin `{p}` quarantined")
            }
            Condition::Unreachable { system, for_ } => {
                let who = match system {
                    Some(system) => format!("system `{system}`"),
                    None => "a system".to_owned(),
                };
                write!(
                    f,
                    "{who} unreachable for longer than {}",
                    humantime::format_duration(*for_)
                )
            }
            Condition::QueueFull => f.write_str("a queue full"),
        }
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSource {
    /// The config file: changed there.
    Config,
    /// Added through the admin API (`dualwrite alerts add`), kept in the
    /// host's store.
    Api,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The one map it watches; none: every map.
    pub map: Option<String>,
    /// What fires it.
    pub condition: Condition,
    /// Whether it notifies the subscribed webhooks.
    pub notify: bool,
    /// Whether it pauses the map (`failed`, the rule as the reason).
    pub pause: bool,
    /// Where it comes from.
    pub source: RuleSource,
    /// The rule as written.
    pub spec: RuleSpec,
}

impl Rule {
    /// Whether the rule watches `map`.
    pub fn watches(&self, map: &str) -> bool {
        self.map.as_deref().is_none_or(|m| m == map)
    }

    /// Its actions as written: `notify`, `pause`.
    pub fn actions(&self) -> Vec<&'static str> {
        let mut actions = Vec::new();
        if self.notify {
            actions.push("notify");
        }
        if self.pause {
            actions.push("pause");
        }
        actions
    }
}

/// One thing wrong with a rule: the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The field at fault (`condition`, `count`, …).
    pub field: &'static str,
    /// What is wrong, naming the rule.
    pub message: String,
    /// What to do.
    pub fix: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.message, self.field, self.fix)
    }
}

/// The maps and systems a rule may name.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// The maps of the config.
    pub maps: &'a [&'a str],
    /// The systems of the config.
    pub systems: &'a [&'a str],
}

const CONDITIONS: &str =
    "errors, backlog, oldest-change, plugin-quarantined, unreachable, queue-full";

/// Collects a rule's problems and the fields its condition reads.
struct Checker<'a> {
    spec: &'a RuleSpec,
    problems: Vec<RuleProblem>,
    /// The optional fields the condition reads; any other given is wrong.
    reads: Vec<&'static str>,
}

impl Checker<'_> {
    fn problem(&mut self, field: &'static str, message: String, fix: impl Into<String>) {
        self.problems.push(RuleProblem {
            field,
            message: format!("alert rule `{}`: {message}", self.spec.name),
            fix: fix.into(),
        });
    }

    /// A field the condition needs: `value`, or a problem.
    fn need<T: Clone>(
        &mut self,
        field: &'static str,
        value: &Option<T>,
        example: &str,
    ) -> Option<T> {
        self.reads.push(field);
        if value.is_none() {
            let condition = self.spec.condition.clone();
            self.problem(
                field,
                format!("condition `{condition}` needs `{field}`"),
                format!("set `{field} = {example}`"),
            );
        }
        value.clone()
    }

    /// A field the condition may read.
    fn may<T: Clone>(&mut self, field: &'static str, value: &Option<T>) -> Option<T> {
        self.reads.push(field);
        value.clone()
    }

    /// A duration above zero, as `humantime` reads it.
    fn duration(&mut self, field: &'static str, text: Option<String>) -> Option<Duration> {
        let text = text?;
        let parsed = humantime::parse_duration(&text)
            .ok()
            .filter(|d| !d.is_zero());
        if parsed.is_none() {
            self.problem(
                field,
                format!("`{field}` is \"{text}\", not a duration above zero"),
                format!("write one in quotes, such as `{field} = \"15m\"`"),
            );
        }
        parsed
    }

    fn condition(&mut self, known: Known<'_>) -> Option<Condition> {
        let spec = self.spec;
        match spec.condition.as_str() {
            "errors" => {
                let count = self.need("count", &spec.count, "10");
                if count == Some(0) {
                    self.problem("count", "`count` is 0".into(), "set `count` to 1 or more");
                }
                let within = self.need("within", &spec.within, "\"15m\"");
                let within = self.duration("within", within);
                let class = match self.may("class", &spec.class) {
                    None => None,
                    Some(text) => match serde_json::from_value::<ErrorClass>(text.clone().into()) {
                        Ok(class) => Some(class),
                        Err(_) => {
                            self.problem(
                                "class",
                                format!("`class` is `{text}`"),
                                "use `application`, `system`, `concurrency` or `conflict`, or leave it out to count every error",
                            );
                            return None;
                        }
                    },
                };
                Some(Condition::Errors {
                    class,
                    count: count.filter(|c| *c > 0)?,
                    within: within?,
                })
            }
            "backlog" => {
                let above = self.need("above", &spec.above, "10000")?;
                Some(Condition::Backlog { above })
            }
            "oldest-change" => {
                let older_than = self.need("older_than", &spec.older_than, "\"10m\"");
                let older_than = self.duration("older_than", older_than)?;
                Some(Condition::OldestChange { older_than })
            }
            "plugin-quarantined" => Some(Condition::PluginQuarantined {
                plugin: self.may("plugin", &spec.plugin),
            }),
            "unreachable" => {
                let system = self.may("system", &spec.system);
                if let Some(system) = &system
                    && !known.systems.contains(&system.as_str())
                {
                    self.problem(
                        "system",
                        format!("`system` is `{system}`, which is not a system of the config"),
                        format!(
                            "name one of: {}; or leave `system` out for any system",
                            known.systems.join(", ")
                        ),
                    );
                }
                let for_ = self.need("for", &spec.for_, "\"5m\"");
                let for_ = self.duration("for", for_)?;
                Some(Condition::Unreachable { system, for_ })
            }
            "queue-full" => Some(Condition::QueueFull),
            other => {
                self.problem(
                    "condition",
                    format!("`condition` is `{other}`"),
                    format!("use one of: {CONDITIONS}"),
                );
                // Its fields are not judged against a condition unknown.
                self.reads.extend(FIELDS.iter().map(|(field, _)| *field));
                None
            }
        }
    }
}

/// Whether a spec gives a field.
type Given = fn(&RuleSpec) -> bool;

/// The optional fields of a condition, and whether a spec gives each.
const FIELDS: [(&str, Given); 8] = [
    ("class", |s| s.class.is_some()),
    ("count", |s| s.count.is_some()),
    ("within", |s| s.within.is_some()),
    ("above", |s| s.above.is_some()),
    ("older_than", |s| s.older_than.is_some()),
    ("plugin", |s| s.plugin.is_some()),
    ("system", |s| s.system.is_some()),
    ("for", |s| s.for_.is_some()),
];

impl RuleSpec {
    /// Checks the rule: a known condition with the fields it needs and no
    /// other, a known map and system, known actions. Every problem.
    pub fn check(&self, known: Known<'_>, source: RuleSource) -> Result<Rule, Vec<RuleProblem>> {
        let mut checker = Checker {
            spec: self,
            problems: Vec::new(),
            reads: Vec::new(),
        };
        let name = &self.name;
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            checker.problem(
                "name",
                "the name is not one of up to 64 letters, digits, `-`, `_` and `.`".into(),
                "name the rule so, such as `application-errors`",
            );
        }
        if let Some(map) = &self.map
            && !known.maps.contains(&map.as_str())
        {
            checker.problem(
                "map",
                format!("`map` is `{map}`, which is not a map of the config"),
                format!(
                    "name one of: {}; or leave `map` out to watch every map",
                    known.maps.join(", ")
                ),
            );
        }
        let (mut notify, mut pause) = (self.actions.is_empty(), false);
        for action in &self.actions {
            match action.as_str() {
                "notify" => notify = true,
                "pause" => pause = true,
                other => checker.problem(
                    "actions",
                    format!("`actions` names `{other}`"),
                    "use `notify`, `pause` or both",
                ),
            }
        }
        let condition = checker.condition(known);
        for (field, given) in FIELDS {
            if given(self) && !checker.reads.contains(&field) {
                checker.problem(
                    field,
                    format!("`{field}` does not apply to condition `{}`", self.condition),
                    "leave it out, or name the condition it belongs to",
                );
            }
        }
        match condition {
            Some(condition) if checker.problems.is_empty() => Ok(Rule {
                name: self.name.clone(),
                map: self.map.clone(),
                condition,
                notify,
                pause,
                source,
                spec: self.clone(),
            }),
            _ => Err(checker.problems),
        }
    }
}

#[cfg(test)]
mod tests;
