//! `[alerts]`: rules and webhooks read into the plan, and every problem
//! refused with `DW042 alert-rule` or `DW043 alert-webhook`, naming the
//! rule or webhook and the field.

use std::path::PathBuf;
use std::time::Duration;

use super::{BuildOptions, Config};
use crate::alerts::Condition;
use crate::map::{EmulatorCatalogue, Plan, Problem, ProblemCode};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn build(alerts: &str) -> Result<Plan, Vec<Problem>> {
    let text = format!(
        r#"
[systems.finops]
kind = "finops"
url = "http://127.0.0.1:8081"

[systems.dataverse]
kind = "dataverse"
url = "http://127.0.0.1:8082"

[[maps]]
name = "currencies"
left = {{ system = "finops", table = "Currencies" }}
right = {{ system = "dataverse", table = "transactioncurrencies" }}
key = ["CurrencyCode = isocurrencycode"]
fields = ["Name = currencyname"]
{alerts}
"#
    );
    let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
    let config = Config::from_toml("maps.toml", &text).expect("the config parses");
    config.build(&BuildOptions {
        registry: Default::default(),
        file: "maps.toml".into(),
        base_dir: PathBuf::from("."),
        catalogue: &catalogue,
        env: &|name| match name {
            "ALERT_SECRET" => Some(SECRET.to_owned()),
            "NOT_A_KEY" => Some("hunter2".to_owned()),
            _ => None,
        },
    })
}

fn problems(alerts: &str) -> Vec<(ProblemCode, String, String)> {
    match build(alerts) {
        Ok(_) => panic!("accepted:\n{alerts}"),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.code, p.field.clone().unwrap_or_default(), p.to_string()))
            .collect(),
    }
}

#[test]
fn rules_and_webhooks_are_read_into_the_plan() {
    let plan = build(
        r#"
[alerts]
interval = "2s"
retry_min = "100ms"

[[alerts.webhooks]]
name = "ops"
url = "http://127.0.0.1:9/hook"
secret_env = "ALERT_SECRET"
rules = ["application-errors"]

[[alerts.rules]]
name = "application-errors"
map = "currencies"
condition = "errors"
class = "application"
count = 10
within = "15m"
actions = ["notify", "pause"]

[[alerts.rules]]
name = "stuck"
condition = "oldest-change"
older_than = "10m"
"#,
    )
    .unwrap_or_else(|problems| panic!("{problems:#?}"));
    let alerts = &plan.alerts;
    assert_eq!(alerts.interval, Duration::from_secs(2));
    assert_eq!(alerts.retry_min, Duration::from_millis(100));
    assert_eq!(alerts.retry_max, Duration::from_secs(300), "the default");
    assert_eq!(alerts.webhooks.len(), 1);
    assert!(alerts.webhooks[0].subscribes("application-errors"));
    assert!(!alerts.webhooks[0].subscribes("stuck"));
    assert_eq!(alerts.rules.len(), 2);
    assert!(alerts.rules[0].pause && alerts.rules[0].notify);
    assert_eq!(
        alerts.rules[1].condition,
        Condition::OldestChange {
            older_than: Duration::from_secs(600)
        }
    );
    assert!(build("").expect("no alerts").alerts.rules.is_empty());
}

#[test]
fn a_bad_rule_is_named_with_its_field() {
    let found = problems(
        r#"
[[alerts.rules]]
name = "a"
map = "orders"
condition = "errors"
count = 3

[[alerts.rules]]
name = "a"
condition = "backlog"
above = 10
"#,
    );
    assert!(
        found
            .iter()
            .all(|(code, ..)| *code == ProblemCode::AlertRule),
        "{found:#?}"
    );
    let fields: Vec<&str> = found.iter().map(|(_, field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "alerts.rules[0].map",
            "alerts.rules[0].within",
            "alerts.rules[1].name"
        ],
        "{found:#?}"
    );
    assert!(
        found[0]
            .2
            .contains("`orders`, which is not a map of the config"),
        "{found:#?}"
    );
    assert!(
        found[2].2.contains("more than one alert rule is named `a`"),
        "{found:#?}"
    );
    let zero = problems("[alerts]\ninterval = \"0s\"");
    assert_eq!(zero[0].1, "alerts.interval", "{zero:#?}");
}

#[test]
fn a_bad_webhook_is_named_with_its_field() {
    let found = problems(
        r#"
[[alerts.webhooks]]
name = "plain"
url = "http://ops.contoso.com/hook"
secret_env = "UNSET"

[[alerts.webhooks]]
name = "weak"
url = "https://ops.contoso.com/hook"
secret_env = "NOT_A_KEY"
rules = ["nowhere"]
"#,
    );
    assert!(
        found
            .iter()
            .all(|(code, ..)| *code == ProblemCode::AlertWebhook),
        "{found:#?}"
    );
    let fields: Vec<&str> = found.iter().map(|(_, field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "alerts.webhooks[0].url",
            "alerts.webhooks[0].secret_env",
            "alerts.webhooks[1].secret_env",
            "alerts.webhooks[1].rules",
        ],
        "{found:#?}"
    );
    assert!(
        found[0]
            .2
            .contains("plain HTTP to a host that is not loopback"),
        "{found:#?}"
    );
    assert!(found[1].2.contains("`UNSET` is not set"), "{found:#?}");
    assert!(found[2].2.contains("whsec_"), "{found:#?}");
    assert!(
        !found[2].2.contains("hunter2"),
        "the secret is never printed: {found:#?}"
    );
    assert!(found[3].2.contains("`nowhere`"), "{found:#?}");
}
