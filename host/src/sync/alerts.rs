//! Alert rules over a running engine: the rules in force (the config's and
//! those the admin API added, kept in the store), evaluated every
//! `[alerts] interval` against each map they watch whose tasks run. A rule
//! fires for a map when its condition begins to hold (a `fired` line, a
//! notification queued to the subscribed webhooks, the map paused in
//! `failed` when the rule says `pause`) and resolves when it no longer
//! holds (a `resolved` line and notification). While it holds nothing is
//! sent again. What fires stays in memory: a host that restarts evaluates
//! afresh.
//!
//! The same operations on a stopped host's store (`rules_of`, `add_rule`,
//! `remove_rule`) serve the CLI when no host answers; [`test_webhooks`]
//! sends a test notification from either.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use crate::alerts::deliver::{self, Deliveries};
use crate::alerts::{
    AlertData, AlertsPlan, Condition, Known, Notification, Rule, RuleSource, RuleSpec,
};
use crate::checkpoint::{Action, Activity, CheckpointError, Checkpoints, LogFilter, QueueHold};
use crate::map::Plan;

use super::runtime::MapRuntime;
use super::{RunningEngine, Shared};

/// Why an alert operation was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The rule does not check.
    #[error("{0}")]
    Invalid(String),
    /// No rule has the name.
    #[error("no alert rule is named `{0}`; `dualwrite alerts list` shows them")]
    UnknownRule(String),
    /// The rule comes from the config file.
    #[error("alert rule `{0}` comes from the config file; change it there")]
    FromConfig(String),
    /// A rule of the name exists.
    #[error("an alert rule is named `{0}` already; remove it first, or choose another name")]
    Exists(String),
    /// No webhook has the name.
    #[error("no alert webhook is named `{name}`; the webhooks are: {known}")]
    UnknownWebhook {
        /// The name asked for.
        name: String,
        /// The webhooks of the config.
        known: String,
    },
    /// The config names no webhook.
    #[error("the config has no alert webhook; add one to `[[alerts.webhooks]]`")]
    NoWebhooks,
    /// The store failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A map a rule fires for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Firing {
    /// The map.
    pub map: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// What was seen when it fired.
    pub observed: String,
}

/// A rule as the admin API and `dualwrite alerts list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertRuleStatus {
    /// The rule as written.
    pub rule: RuleSpec,
    /// `config` or `api`.
    pub source: RuleSource,
    /// Its condition as people read it; for a rule that no longer checks,
    /// why.
    pub condition: String,
    /// Whether it is in force (a stored rule naming a map the config lost
    /// is not).
    pub valid: bool,
    /// The maps it fires for now (a running host's only).
    pub firing: Vec<Firing>,
}

/// One webhook's answer to a test notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestDelivery {
    /// The webhook.
    pub webhook: String,
    /// Whether it took the notification (a 2xx answer).
    pub delivered: bool,
    /// Its HTTP status, when it answered 2xx.
    pub status: Option<u16>,
    /// Why it did not take it.
    pub error: Option<String>,
}

fn known(plan: &Plan) -> (Vec<&str>, Vec<&str>) {
    (
        plan.maps.iter().map(|m| m.name.as_str()).collect(),
        plan.systems.keys().map(String::as_str).collect(),
    )
}

/// Checks a stored rule against `plan`.
fn check_stored(plan: &Plan, spec: &RuleSpec) -> Result<Rule, String> {
    let (maps, systems) = known(plan);
    spec.check(
        Known {
            maps: &maps,
            systems: &systems,
        },
        RuleSource::Api,
    )
    .map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn status(spec: &RuleSpec, source: RuleSource, checked: &Result<Rule, String>) -> AlertRuleStatus {
    AlertRuleStatus {
        rule: spec.clone(),
        source,
        condition: match checked {
            Ok(rule) => rule.condition.to_string(),
            Err(why) => why.clone(),
        },
        valid: checked.is_ok(),
        firing: Vec::new(),
    }
}

/// The config's rules, as the list shows them.
fn config_rules(plan: &Plan) -> Vec<AlertRuleStatus> {
    plan.alerts
        .rules
        .iter()
        .map(|rule| status(&rule.spec, RuleSource::Config, &Ok(rule.clone())))
        .collect()
}

/// The rules of `plan` and of `store`, as a stopped host has them.
pub fn rules_of(store: &Checkpoints, plan: &Plan) -> Result<Vec<AlertRuleStatus>, AlertError> {
    let mut rules = config_rules(plan);
    for spec in store.alert_rules()? {
        rules.push(status(&spec, RuleSource::Api, &check_stored(plan, &spec)));
    }
    Ok(rules)
}

/// Checks `spec` against `plan` and stores it: it is in force from the
/// host's next start (or now, through a running host).
pub fn add_rule(store: &Checkpoints, plan: &Plan, spec: &RuleSpec) -> Result<Rule, AlertError> {
    if plan.alerts.rules.iter().any(|r| r.name == spec.name)
        || store.alert_rules()?.iter().any(|r| r.name == spec.name)
    {
        return Err(AlertError::Exists(spec.name.clone()));
    }
    let rule = check_stored(plan, spec).map_err(AlertError::Invalid)?;
    store.put_alert_rule(spec)?;
    Ok(rule)
}

/// Removes the stored rule `name`.
pub fn remove_rule(store: &Checkpoints, plan: &Plan, name: &str) -> Result<(), AlertError> {
    if plan.alerts.rules.iter().any(|r| r.name == name) {
        return Err(AlertError::FromConfig(name.to_owned()));
    }
    match store.remove_alert_rule(name)? {
        true => Ok(()),
        false => Err(AlertError::UnknownRule(name.to_owned())),
    }
}

/// Sends a test notification to `webhook` (none: every webhook of
/// `plan`), once, not retried; each answer logged in `store`.
pub async fn test_webhooks(
    store: &Checkpoints,
    plan: &AlertsPlan,
    webhook: Option<&str>,
) -> Result<Vec<TestDelivery>, AlertError> {
    if plan.webhooks.is_empty() {
        return Err(AlertError::NoWebhooks);
    }
    let chosen: Vec<_> = plan
        .webhooks
        .iter()
        .filter(|w| webhook.is_none_or(|name| w.name == name))
        .collect();
    if let (Some(name), true) = (webhook, chosen.is_empty()) {
        return Err(AlertError::UnknownWebhook {
            name: name.to_owned(),
            known: plan
                .webhooks
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let notification = Notification {
        kind: "alert.test".into(),
        timestamp: crate::checkpoint::now(),
        data: AlertData {
            rule: "test".into(),
            map: None,
            condition: "a test notification (`dualwrite alerts test`)".into(),
            observed: "none".into(),
            status: "test".into(),
            actions: vec!["notify".into()],
        },
    };
    let body = serde_json::to_string(&notification).unwrap_or_default();
    let mut answers = Vec::new();
    for webhook in chosen {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let result = match deliver::client(webhook) {
            Ok(client) => deliver::send(&client, webhook, &id, &body).await,
            Err(why) => Err(why),
        };
        let (what, detail) = match &result {
            Ok(status) => (
                Action::Notified,
                format!(
                    "webhook `{}` took test notification {id} (HTTP {status})",
                    webhook.name
                ),
            ),
            Err(why) => (
                Action::Undelivered,
                format!(
                    "webhook `{}` {why}: test notification {id} not delivered (a test is not retried)",
                    webhook.name
                ),
            ),
        };
        store.append_activity(&Activity::alert("", "test", what, detail))?;
        answers.push(TestDelivery {
            webhook: webhook.name.clone(),
            delivered: result.is_ok(),
            status: result.as_ref().ok().copied(),
            error: result.err(),
        });
    }
    Ok(answers)
}

/// The alerts of a running engine.
#[derive(Debug)]
pub(crate) struct Alerts {
    /// The rules the API added, each checked against the plan.
    api: Mutex<Vec<(RuleSpec, Result<Rule, String>)>>,
    /// Per rule and map: since when it fires, and what was seen.
    firing: Mutex<BTreeMap<(String, String), Firing>>,
    /// The webhooks' deliverers.
    deliveries: Mutex<Deliveries>,
}

impl Alerts {
    /// The alerts of `plan`, the API's rules read from `store`, the
    /// deliverers started.
    pub fn start(store: &Checkpoints, plan: &Plan) -> Result<Alerts, String> {
        let mut api = Vec::new();
        for spec in store.alert_rules().map_err(|e| e.to_string())? {
            let checked = check_stored(plan, &spec);
            if let Err(why) = &checked {
                tracing::warn!(rule = %spec.name, reason = %why, "An alert rule added through the API no longer checks against the config; it is not in force.");
            }
            api.push((spec, checked));
        }
        Ok(Alerts {
            api: Mutex::new(api),
            firing: Mutex::default(),
            deliveries: Mutex::new(Deliveries::spawn(store, &plan.alerts)?),
        })
    }

    fn api(&self) -> std::sync::MutexGuard<'_, Vec<(RuleSpec, Result<Rule, String>)>> {
        self.api.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn firing(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Firing>> {
        self.firing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the deliverers; their tasks, to be awaited.
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop()
    }

    /// Each `(rule, map)` that fires now.
    pub fn firing_now(&self) -> Vec<(String, String)> {
        self.firing().keys().cloned().collect()
    }

    fn wake(&self, webhooks: &[String]) {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wake(webhooks);
    }
}

/// The rules in force: the config's, then the API's that check.
fn rules(shared: &Shared) -> Vec<Rule> {
    let mut rules = shared.plan().alerts.rules.clone();
    rules.extend(
        shared
            .alerts
            .api()
            .iter()
            .filter_map(|(_, checked)| checked.as_ref().ok().cloned()),
    );
    rules
}

/// Evaluates the rules every `[alerts] interval`, until aborted.
pub(super) fn spawn_evaluator(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(shared.plan().alerts.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            evaluate(&shared);
        }
    })
}

/// One evaluation of every rule against every map it watches whose tasks
/// run.
fn evaluate(shared: &Shared) {
    let rules = rules(shared);
    shared
        .alerts
        .firing()
        .retain(|(rule, _), _| rules.iter().any(|r| &r.name == rule));
    for rule in &rules {
        for plan in shared.plan().maps.iter().filter(|m| rule.watches(&m.name)) {
            let Some(runtime) = shared.map(&plan.name) else {
                continue;
            };
            if !runtime.state().lifecycle().is_active() {
                continue;
            }
            let slot = (rule.name.clone(), plan.name.clone());
            let firing = shared.alerts.firing().contains_key(&slot);
            let result = match observe(shared, &runtime, &rule.condition) {
                Ok(Some(observed)) if !firing => fire(shared, &runtime, rule, observed),
                Ok(None) if firing => resolve(shared, rule, &plan.name),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                tracing::warn!(rule = %rule.name, map = %plan.name, %error, "An alert rule could not be evaluated; it is evaluated again.");
            }
        }
    }
}

/// What `condition` sees of the map now, when it holds.
fn observe(
    shared: &Shared,
    runtime: &MapRuntime,
    condition: &Condition,
) -> Result<Option<String>, CheckpointError> {
    let store = &shared.store;
    let map = runtime.name();
    let now = Utc::now();
    Ok(match condition {
        Condition::Errors {
            class,
            count,
            within,
        } => {
            let window = chrono::Duration::from_std(*within).unwrap_or(chrono::Duration::MAX);
            let since = now
                .checked_sub_signed(window)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
                .max(runtime.started());
            let filter = LogFilter {
                map: Some(map.to_owned()),
                errors: true,
                class: *class,
                since: Some(since),
                ..LogFilter::default()
            };
            let limit = usize::try_from(*count).unwrap_or(usize::MAX);
            let lines = store.log(&filter, limit, false)?;
            (lines.len() >= limit).then(|| {
                let last = lines
                    .last()
                    .map(|l| l.line.detail.as_str())
                    .unwrap_or_default();
                format!(
                    // The count read stops at the rule's: there may be more.
                    "{} or more errors since {}, the last: {last}",
                    lines.len(),
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
        }
        Condition::Backlog { above } => {
            let queued: usize = runtime.directions().map(|d| store.queued(map, d)).sum();
            (queued as u64 > *above).then(|| format!("{queued} changes queued"))
        }
        Condition::OldestChange { older_than } => {
            let mut oldest: Option<(Duration, String)> = None;
            for direction in runtime.directions() {
                let Some(change) = store.oldest_queued(map, direction)? else {
                    continue;
                };
                let Some(captured) = change.captured else {
                    continue;
                };
                let age = now
                    .signed_duration_since(captured)
                    .to_std()
                    .unwrap_or_default();
                if oldest.as_ref().is_none_or(|(known, _)| age > *known) {
                    oldest = Some((age, format!("the change of `{}` ({direction})", change.key)));
                }
            }
            oldest
                .filter(|(age, _)| age > older_than)
                .map(|(age, what)| {
                    format!(
                        "{what} waits since {} ago",
                        humantime::format_duration(Duration::from_secs(age.as_secs()))
                    )
                })
        }
        Condition::PluginQuarantined { plugin } => {
            let quarantined: Vec<String> = runtime
                .chain
                .as_ref()
                .map(|chain| chain.quarantined())
                .unwrap_or_default()
                .into_iter()
                .filter(|(id, _)| {
                    plugin
                        .as_deref()
                        .is_none_or(|p| id == p || id.split('@').next() == Some(p))
                })
                .map(|(id, why)| format!("plugin {id} quarantined ({why})"))
                .collect();
            (!quarantined.is_empty()).then(|| quarantined.join("; "))
        }
        Condition::Unreachable { system, for_ } => runtime.outage().and_then(|outage| {
            if system.as_deref().is_some_and(|s| s != outage.system) {
                return None;
            }
            let since = DateTime::parse_from_rfc3339(&outage.since).ok()?;
            let down = now
                .signed_duration_since(since)
                .to_std()
                .unwrap_or_default();
            (down > *for_).then(|| {
                format!(
                    "system `{}` unreachable since {} ({})",
                    outage.system, outage.since, outage.error
                )
            })
        }),
        Condition::QueueFull => {
            let mut full = Vec::new();
            for direction in runtime.directions() {
                if let Some(QueueHold::Full {
                    queued,
                    max_changes,
                }) = store.queue_hold(map, direction)?
                {
                    full.push(format!(
                        "the {direction} queue holds {queued} changes, its max_changes {max_changes}"
                    ));
                }
            }
            (!full.is_empty()).then(|| full.join("; "))
        }
    })
}

fn notification(rule: &Rule, map: &str, kind: &str, observed: &str) -> Notification {
    Notification {
        kind: format!("alert.{kind}"),
        timestamp: crate::checkpoint::now(),
        data: AlertData {
            rule: rule.name.clone(),
            map: Some(map.to_owned()),
            condition: rule.condition.to_string(),
            observed: observed.to_owned(),
            status: kind.to_owned(),
            actions: rule.actions().into_iter().map(str::to_owned).collect(),
        },
    }
}

/// Logs `line` and, when the rule notifies, queues its notification.
fn record(
    shared: &Shared,
    rule: &Rule,
    map: &str,
    notification: &Notification,
    line: &Activity,
) -> Result<(), CheckpointError> {
    if !rule.notify {
        return shared.store.append_activity(line);
    }
    let sent = deliver::queue(
        &shared.store,
        &shared.plan().alerts,
        &rule.name,
        Some(map),
        notification,
        line,
    )?;
    shared.alerts.wake(&sent);
    Ok(())
}

fn fire(
    shared: &Shared,
    runtime: &MapRuntime,
    rule: &Rule,
    observed: String,
) -> Result<(), CheckpointError> {
    let map = runtime.name();
    let actions = rule.actions().join(", ");
    let line = Activity::alert(
        map,
        &rule.name,
        Action::Fired,
        format!("{}: {observed} (actions: {actions})", rule.condition),
    );
    tracing::warn!(rule = %rule.name, %map, condition = %rule.condition, %observed, "An alert rule fired.");
    record(
        shared,
        rule,
        map,
        &notification(rule, map, "firing", &observed),
        &line,
    )?;
    shared.alerts.firing().insert(
        (rule.name.clone(), map.to_owned()),
        Firing {
            map: map.to_owned(),
            since: crate::checkpoint::now(),
            observed: observed.clone(),
        },
    );
    if rule.pause {
        runtime.alarm(
            &rule.name,
            format!(
                "alert rule `{}` paused it: {} ({observed}); once fixed, start it again with `dualwrite map start {map}`",
                rule.name, rule.condition
            ),
        );
    }
    Ok(())
}

fn resolve(shared: &Shared, rule: &Rule, map: &str) -> Result<(), CheckpointError> {
    let line = Activity::alert(
        map,
        &rule.name,
        Action::Resolved,
        format!("{}: no longer holds", rule.condition),
    );
    tracing::info!(rule = %rule.name, %map, "An alert rule resolved.");
    record(
        shared,
        rule,
        map,
        &notification(rule, map, "resolved", "no longer holds"),
        &line,
    )?;
    shared
        .alerts
        .firing()
        .remove(&(rule.name.clone(), map.to_owned()));
    Ok(())
}

impl RunningEngine {
    /// Every rule, the config's then the API's, with the maps each fires
    /// for now.
    pub fn alert_rules(&self) -> Vec<AlertRuleStatus> {
        let alerts = &self.shared.alerts;
        let firing = alerts.firing().clone();
        let mut rules = config_rules(&self.shared.plan());
        rules.extend(
            alerts
                .api()
                .iter()
                .map(|(spec, checked)| status(spec, RuleSource::Api, checked)),
        );
        for rule in &mut rules {
            rule.firing = firing
                .iter()
                .filter(|((name, _), _)| *name == rule.rule.name)
                .map(|(_, firing)| firing.clone())
                .collect();
        }
        rules
    }

    /// Adds `spec`, checked against the plan and stored; in force from the
    /// next evaluation.
    pub fn add_alert_rule(&self, spec: &RuleSpec) -> Result<AlertRuleStatus, AlertError> {
        let rule = add_rule(&self.shared.store, &self.shared.plan(), spec)?;
        let added = status(spec, RuleSource::Api, &Ok(rule.clone()));
        self.shared.alerts.api().push((spec.clone(), Ok(rule)));
        tracing::info!(rule = %spec.name, "An alert rule was added.");
        Ok(added)
    }

    /// Puts in force `specs`, stored already (an import's), each replacing
    /// the API's rule of its name, checked against the plan as it is now.
    pub fn take_alert_rules(&self, specs: &[RuleSpec]) {
        let plan = self.shared.plan();
        let mut api = self.shared.alerts.api();
        for spec in specs {
            api.retain(|(held, _)| held.name != spec.name);
            api.push((spec.clone(), check_stored(&plan, spec)));
            tracing::info!(rule = %spec.name, "An alert rule was imported.");
        }
    }

    /// Removes the API's rule `name`.
    pub fn remove_alert_rule(&self, name: &str) -> Result<(), AlertError> {
        remove_rule(&self.shared.store, &self.shared.plan(), name)?;
        self.shared
            .alerts
            .api()
            .retain(|(spec, _)| spec.name != name);
        tracing::info!(rule = %name, "An alert rule was removed.");
        Ok(())
    }

    /// Sends a test notification to `webhook` (none: every webhook).
    pub async fn test_alert(&self, webhook: Option<&str>) -> Result<Vec<TestDelivery>, AlertError> {
        test_webhooks(&self.shared.store, &self.shared.plan().alerts, webhook).await
    }
}
