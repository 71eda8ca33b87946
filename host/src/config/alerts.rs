//! `[alerts]`: how often rules are evaluated and deliveries retried,
//! `[[alerts.webhooks]]` and `[[alerts.rules]]` (see [`crate::alerts`]),
//! checked into an [`AlertsPlan`]. A rule's problem is `DW042
//! alert-rule`, a webhook's `DW043 alert-webhook`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::build::{BuildOptions, Report, loopback};
use crate::alerts::{self, AlertsPlan, Known, RuleSource, RuleSpec, WebhookPlan};
use crate::connector::TrustedCa;
use crate::map::{Problem, ProblemCode, Secret};

/// `[alerts]`; every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often the rules are evaluated (`10s`).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// The first wait before a failed delivery is tried again (`1s`).
    #[serde(default = "default_retry_min", with = "humantime_serde")]
    pub retry_min: Duration,
    /// The longest wait between attempts (`5m`).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// `[[alerts.webhooks]]`.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// `[[alerts.rules]]`.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            interval: alerts::DEFAULT_INTERVAL,
            retry_min: alerts::DEFAULT_RETRY_MIN,
            retry_max: alerts::DEFAULT_RETRY_MAX,
            webhooks: Vec::new(),
            rules: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    alerts::DEFAULT_INTERVAL
}

fn default_retry_min() -> Duration {
    alerts::DEFAULT_RETRY_MIN
}

fn default_retry_max() -> Duration {
    alerts::DEFAULT_RETRY_MAX
}

/// `[[alerts.webhooks]]`: where notifications go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name.
    pub name: String,
    /// `https://…` (`http://` only to a loopback host).
    pub url: String,
    /// The environment variable holding the signing secret: `whsec_` and
    /// a base64 key of at least 12 bytes (24 to 64 recommended).
    pub secret_env: String,
    /// The rules it is sent; absent: every rule.
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    /// A CA certificate (PEM) its HTTPS certificate chains to, besides the
    /// system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Checks `[alerts]` into the plan's alerts; every problem to `report`.
pub(super) fn build_alerts(
    config: &AlertsConfig,
    known: Known<'_>,
    options: &BuildOptions<'_>,
    report: &mut Report,
) -> AlertsPlan {
    for (field, value) in [
        ("interval", config.interval),
        ("retry_min", config.retry_min),
        ("retry_max", config.retry_max),
    ] {
        if value.is_zero() {
            report.push(
                Problem::new(
                    ProblemCode::AlertRule,
                    format!("`[alerts] {field}` is 0s"),
                    "set it above zero, such as \"10s\" for `interval`, \"1s\" for `retry_min`, \"5m\" for `retry_max`",
                )
                .at_field(format!("alerts.{field}")),
            );
        }
    }
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (index, spec) in config.rules.iter().enumerate() {
        if !names.insert(spec.name.as_str()) {
            report.push(
                Problem::new(
                    ProblemCode::AlertRule,
                    format!("more than one alert rule is named `{}`", spec.name),
                    "give each rule its own name",
                )
                .at_field(format!("alerts.rules[{index}].name")),
            );
        }
        match spec.check(known, RuleSource::Config) {
            Ok(rule) => rules.push(rule),
            Err(problems) => {
                for problem in problems {
                    report.push(
                        Problem::new(ProblemCode::AlertRule, problem.message, problem.fix)
                            .at_field(format!("alerts.rules[{index}].{}", problem.field)),
                    );
                }
            }
        }
    }
    let mut webhooks = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, webhook) in config.webhooks.iter().enumerate() {
        let name = &webhook.name;
        let mut problem = |field: &str, message: String, fix: &str| {
            report.push(
                Problem::new(
                    ProblemCode::AlertWebhook,
                    format!("alert webhook `{name}`: {message}"),
                    fix,
                )
                .at_field(format!("alerts.webhooks[{index}].{field}")),
            );
        };
        if !seen.insert(name.as_str()) {
            problem(
                "name",
                "more than one webhook has this name".into(),
                "give each webhook its own name",
            );
        }
        let url = match reqwest::Url::parse(&webhook.url) {
            Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && loopback(&url)) => {
                Some(url)
            }
            Ok(url) if url.scheme() == "http" => {
                problem(
                    "url",
                    format!(
                        "`url` is `{}`, plain HTTP to a host that is not loopback",
                        webhook.url
                    ),
                    "use `https://`; plain `http://` is allowed only to 127.0.0.1, ::1 or localhost",
                );
                None
            }
            Ok(url) => {
                problem(
                    "url",
                    format!("`url` is `{}`, a `{}:` URL", webhook.url, url.scheme()),
                    "use an `https://` URL",
                );
                None
            }
            Err(error) => {
                problem(
                    "url",
                    format!("`url` is `{}`, not an absolute URL: {error}", webhook.url),
                    "use an `https://` URL, such as https://ops.contoso.com/hooks/dualwrite",
                );
                None
            }
        };
        let variable = &webhook.secret_env;
        let secret = match (options.env)(variable) {
            None => {
                problem(
                    "secret_env",
                    format!("the environment variable `{variable}` is not set"),
                    "set it to the webhook's signing secret (`whsec_` and a base64 key, such as `whsec_` followed by the output of `openssl rand -base64 32`) before the host starts",
                );
                None
            }
            Some(value) => match alerts::webhook::signer(&value) {
                Ok(_) => Some(Secret::new(value)),
                Err(why) => {
                    problem(
                        "secret_env",
                        format!("the secret in `{variable}` {why}"),
                        "set it to `whsec_` followed by a base64 key of 24 to 64 random bytes (`openssl rand -base64 32`)",
                    );
                    None
                }
            },
        };
        for rule in webhook.rules.iter().flatten() {
            if !config.rules.iter().any(|r| &r.name == rule) {
                problem(
                    "rules",
                    format!("`rules` names `{rule}`, which is not a rule of `[[alerts.rules]]`"),
                    "name rules of the config, or leave `rules` out to be sent every rule (rules added through the API included)",
                );
            }
        }
        let ca = webhook.ca_file.as_ref().and_then(|file| {
            let path = options.base_dir.join(file);
            TrustedCa::read(&path)
                .map_err(|why| {
                    problem(
                        "ca_file",
                        format!("the CA file {} {why}", path.display()),
                        "name a readable PEM file holding the CA certificate that signed the webhook's certificate",
                    )
                })
                .ok()
        });
        if let (Some(url), Some(secret)) = (url, secret) {
            webhooks.push(WebhookPlan {
                name: name.clone(),
                url,
                secret,
                rules: webhook.rules.clone(),
                ca,
            });
        }
    }
    AlertsPlan {
        interval: config.interval,
        retry_min: config.retry_min,
        retry_max: config.retry_max.max(config.retry_min),
        webhooks,
        rules,
    }
}
