//! Alerts: rules that watch each map ([`rule`]: errors of a class in a
//! window, backlog, the oldest unsynced change, a plugin quarantined, a
//! system unreachable, a full queue), what they do when they fire (notify
//! the subscribed webhooks, pause the map in `failed` with the rule as the
//! reason, or both), and the webhooks' deliveries ([`webhook`]: signed
//! JSON; [`deliver`]: from the store's outbox, in order per webhook,
//! retried with backoff while a receiver is down, each attempt logged).
//!
//! The rules come from `[[alerts.rules]]` of the config and from the admin
//! API (`dualwrite alerts add`), which keeps them in the store; the engine
//! evaluates them every `[alerts] interval` (`sync::alerts`).
//!
//! ```toml
//! [alerts]
//! interval = "10s"     # how often the rules are evaluated
//! retry_min = "1s"     # the first wait before a delivery is tried again
//! retry_max = "5m"     # the longest
//! ```
//!
//! Boundary: rules are data; the only I/O here is a webhook's HTTP POST
//! and the store's outbox. What a condition reads of a map is the sync
//! engine's.

pub mod deliver;
pub mod rule;
pub mod webhook;

use std::time::Duration;

pub use rule::{Condition, Known, Rule, RuleProblem, RuleSource, RuleSpec};
pub use webhook::{AlertData, Notification, WebhookPlan};

/// `[alerts]` of a plan: checked rules and webhooks.
#[derive(Debug, Clone)]
pub struct AlertsPlan {
    /// How often the rules are evaluated.
    pub interval: Duration,
    /// The first wait before a failed delivery is tried again.
    pub retry_min: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// The webhooks notified.
    pub webhooks: Vec<WebhookPlan>,
    /// The config's rules.
    pub rules: Vec<Rule>,
}

impl Default for AlertsPlan {
    fn default() -> Self {
        AlertsPlan {
            interval: DEFAULT_INTERVAL,
            retry_min: DEFAULT_RETRY_MIN,
            retry_max: DEFAULT_RETRY_MAX,
            webhooks: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `[alerts] interval` unless set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// `[alerts] retry_min` unless set.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(1);
/// `[alerts] retry_max` unless set.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
