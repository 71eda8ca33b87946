//! `dualwrite alerts list|add|remove|test`: the alert rules of a running
//! host through its admin API or, when none answers, of a stopped host's
//! store (`-c FILE`: the config's rules and webhooks too; `add` checks
//! the rule against it). A rule added to a stopped host's store is in
//! force when the host starts; `test` on a stopped host sends from here,
//! with the config's webhooks and their secrets from the environment.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use dualwrite::alerts::RuleSpec;
use dualwrite::map::Plan;
use dualwrite::sync::alerts::{
    AlertError, AlertRuleStatus, TestDelivery, add_rule, remove_rule, rules_of, test_webhooks,
};

use crate::host::{Failure, HostArgs, Source, block_on, exit, source};

/// `dualwrite alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List the rules: name, where each comes from (config or API), map,
    /// condition, actions, and the maps each fires for now.
    List(HostOnly),
    /// Add a rule (kept in the host's store; evaluated from the next
    /// round). Its fields are those of `[[alerts.rules]]`.
    Add(Box<AddArgs>),
    /// Remove a rule added through `alerts add` (one of the config file
    /// is changed there).
    Remove(NameArgs),
    /// Send a test notification to every webhook (or `--webhook`), once,
    /// and print what each answered.
    Test(TestArgs),
}

/// Only where the host is.
#[derive(Debug, Args)]
pub struct HostOnly {
    #[command(flatten)]
    pub host: HostArgs,
}

/// `alerts add`: a rule as `[[alerts.rules]]` writes one.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The rule's name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// `errors`, `backlog`, `oldest-change`, `plugin-quarantined`,
    /// `unreachable` or `queue-full`.
    #[arg(long)]
    pub condition: String,
    /// The one map it watches (default: every map).
    #[arg(long)]
    pub map: Option<String>,
    /// `errors`: the class counted (`application`, `system`,
    /// `concurrency`, `conflict`; default: every class).
    #[arg(long)]
    pub class: Option<String>,
    /// `errors`: how many errors fire the rule.
    #[arg(long)]
    pub count: Option<u64>,
    /// `errors`: the window they are counted in, such as 15m.
    #[arg(long)]
    pub within: Option<String>,
    /// `backlog`: the changes queued above which it fires.
    #[arg(long)]
    pub above: Option<u64>,
    /// `oldest-change`: the age past which it fires, such as 10m.
    #[arg(long)]
    pub older_than: Option<String>,
    /// `plugin-quarantined`: only this plugin (NAME or NAME@VERSION).
    #[arg(long)]
    pub plugin: Option<String>,
    /// `unreachable`: only this system.
    #[arg(long)]
    pub system: Option<String>,
    /// `unreachable`: how long, such as 5m.
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// `notify`, `pause` (the map goes to `failed`), or both given twice
    /// (default: notify).
    #[arg(long = "action", value_name = "ACTION")]
    pub actions: Vec<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// One rule by name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The rule's name.
    pub name: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `alerts test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this webhook (default: every webhook).
    #[arg(long)]
    pub webhook: Option<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Runs `dualwrite alerts …`.
pub fn run(command: AlertsCommand) -> ExitCode {
    match command {
        AlertsCommand::List(args) => exit(list(&args.host)),
        AlertsCommand::Add(args) => exit(add(&args)),
        AlertsCommand::Remove(args) => exit(remove(&args)),
        AlertsCommand::Test(args) => exit(test(&args)),
    }
}

fn refused(error: AlertError) -> Failure {
    match error {
        AlertError::Checkpoint(error) => Failure::Other(error.into()),
        refusal => Failure::Refused(refusal.to_string()),
    }
}

/// The config a stopped host's operation needs, or a refusal saying so.
fn config<'a>(plan: &'a Option<Plan>, what: &str) -> Result<&'a Plan, Failure> {
    plan.as_ref().ok_or_else(|| {
        Failure::Refused(format!(
            "no host answers, and {what} on a stopped host's store needs its config: add -c FILE"
        ))
    })
}

fn read<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Failure> {
    Ok(
        serde_json::from_value(value)
            .context("the host's answer is not what this version reads")?,
    )
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("printing")?
    );
    Ok(())
}

fn list(host: &HostArgs) -> Result<(), Failure> {
    let source = source(host)?;
    let rules: Vec<AlertRuleStatus> = match &source {
        Source::Host(client) => read(block_on(client.get("/api/v1/alerts"))?["rules"].take())?,
        Source::Store(store, plan) => match plan.as_ref() {
            Some(plan) => rules_of(store, plan).map_err(refused)?,
            // Without the config: the store's rules, unchecked.
            None => store
                .alert_rules()
                .context("reading the store's alert rules")?
                .into_iter()
                .map(|rule| AlertRuleStatus {
                    condition: format!("{} (not checked: add -c FILE)", rule.condition),
                    rule,
                    source: dualwrite::alerts::RuleSource::Api,
                    valid: false,
                    firing: Vec::new(),
                })
                .collect(),
        },
    };
    if host.json {
        return print_json(&rules);
    }
    if rules.is_empty() {
        println!(
            "no alert rule: add one to [[alerts.rules]] of the config, or with `dualwrite alerts add`"
        );
        return Ok(());
    }
    let width = rules
        .iter()
        .map(|r| r.rule.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:6}  {:16}  {:13}  CONDITION",
        "NAME", "SOURCE", "MAP", "ACTIONS"
    );
    for status in &rules {
        let source = match status.source {
            dualwrite::alerts::RuleSource::Config => "config",
            dualwrite::alerts::RuleSource::Api => "api",
        };
        let actions = match status.rule.actions.is_empty() {
            true => "notify".to_owned(),
            false => status.rule.actions.join(","),
        };
        println!(
            "{:width$}  {source:6}  {:16}  {actions:13}  {}{}",
            status.rule.name,
            status.rule.map.as_deref().unwrap_or("(every map)"),
            status.condition,
            if status.valid { "" } else { "  [not in force]" },
        );
        for firing in &status.firing {
            println!(
                "{:width$}  firing for `{}` since {}: {}",
                "", firing.map, firing.since, firing.observed
            );
        }
    }
    Ok(())
}

fn spec(args: &AddArgs) -> RuleSpec {
    RuleSpec {
        name: args.name.clone(),
        map: args.map.clone(),
        condition: args.condition.clone(),
        class: args.class.clone(),
        count: args.count,
        within: args.within.clone(),
        above: args.above,
        older_than: args.older_than.clone(),
        plugin: args.plugin.clone(),
        system: args.system.clone(),
        for_: args.for_.clone(),
        actions: args.actions.clone(),
    }
}

fn add(args: &AddArgs) -> Result<(), Failure> {
    let spec = spec(args);
    let source = source(&args.host)?;
    let added: AlertRuleStatus = match &source {
        Source::Host(client) => read(block_on(client.post(
            "/api/v1/alerts",
            &serde_json::to_value(&spec).context("the rule as JSON")?,
        ))?)?,
        Source::Store(store, plan) => {
            let plan = config(plan, "adding a rule")?;
            let rule = add_rule(store, plan, &spec).map_err(refused)?;
            AlertRuleStatus {
                rule: spec.clone(),
                source: rule.source,
                condition: rule.condition.to_string(),
                valid: true,
                firing: Vec::new(),
            }
        }
    };
    if args.host.json {
        return print_json(&added);
    }
    println!("{}: added ({})", added.rule.name, added.condition);
    if matches!(source, Source::Store(..)) {
        println!("the host evaluates it when it starts");
    }
    Ok(())
}

fn remove(args: &NameArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    match &source {
        Source::Host(client) => {
            let path = format!(
                "/api/v1/alerts/{}",
                form_urlencoded::byte_serialize(args.name.as_bytes()).collect::<String>()
            );
            block_on(client.delete(&path))?;
        }
        Source::Store(store, plan) => {
            let plan = config(plan, "removing a rule")?;
            remove_rule(store, plan, &args.name).map_err(refused)?;
        }
    }
    if args.host.json {
        return print_json(&json!({ "removed": args.name }));
    }
    println!("{}: removed", args.name);
    Ok(())
}

fn test(args: &TestArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let deliveries: Vec<TestDelivery> =
        match &source {
            Source::Host(client) => read(
                block_on(client.post("/api/v1/alerts/test", &json!({ "webhook": args.webhook })))?
                    ["deliveries"]
                    .take(),
            )?,
            Source::Store(store, plan) => {
                let plan = config(plan, "a test")?;
                block_on(async {
                    test_webhooks(store, &plan.alerts, args.webhook.as_deref())
                        .await
                        .map_err(refused)
                })?
            }
        };
    if args.host.json {
        print_json(&deliveries)?;
    } else {
        for delivery in &deliveries {
            match (&delivery.status, &delivery.error) {
                (Some(status), _) => {
                    println!("{}: delivered (HTTP {status})", delivery.webhook);
                }
                (None, error) => println!(
                    "{}: not delivered: {}",
                    delivery.webhook,
                    error.as_deref().unwrap_or("no answer")
                ),
            }
        }
    }
    match deliveries.iter().all(|d| d.delivered) {
        true => Ok(()),
        false => Err(Failure::Other(anyhow::anyhow!(
            "a webhook did not take the test notification"
        ))),
    }
}
