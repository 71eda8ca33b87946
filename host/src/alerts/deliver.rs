//! Delivering notifications: [`queue`] puts a notification of a rule in
//! the store's outbox, once per subscribed webhook, with the line that
//! says why in the same transaction; [`Deliveries`] runs one task per
//! webhook that posts its notifications in order ([`send`], signed), each
//! leaving the outbox in the transaction that logs its delivery
//! (`notified`). A failed attempt (no answer, or a status other than 2xx)
//! is logged (`undelivered`) and tried again after a backoff from
//! `[alerts] retry_min` up to `retry_max`, for as long as the receiver is
//! down; the notifications behind it wait, so a receiver sees them in the
//! order they fired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{AlertsPlan, Notification, WebhookPlan};
use crate::checkpoint::{Action, Activity, CheckpointError, Checkpoints, Outgoing};
use crate::connector::backoff;

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle deliverer sleeps before it looks at the outbox again
/// even without a wake.
const IDLE: Duration = Duration::from_secs(5);

/// The client a webhook is posted with: its CA trusted besides the system
/// roots, and no redirect followed (a signed body goes where it was sent,
/// nowhere else).
pub fn client(webhook: &WebhookPlan) -> Result<reqwest::Client, String> {
    crate::connector::client_builder(webhook.ca.as_ref())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|error| {
            format!(
                "the HTTP client of webhook `{}` cannot be made: {error}",
                webhook.name
            )
        })
}

/// Posts `body` (message `id`) to `webhook`, signed with the time now;
/// the HTTP status of a 2xx answer, else why it failed.
pub async fn send(
    client: &reqwest::Client,
    webhook: &WebhookPlan,
    id: &str,
    body: &str,
) -> Result<u16, String> {
    let timestamp = chrono::Utc::now().timestamp();
    let headers = super::webhook::signature_headers(&webhook.secret, id, timestamp, body)?;
    let mut request = client
        .post(webhook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) => Err(format!("answered HTTP {}", response.status())),
        Err(error) if error.is_timeout() => Err(format!(
            "did not answer within {}",
            humantime::format_duration(ATTEMPT_TIMEOUT)
        )),
        Err(error) => Err(match crate::connector::tls_failure(&error) {
            Some(tls) => format!("refused TLS: {tls}"),
            None => format!("could not be reached: {}", root_cause(&error)),
        }),
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Queues `notification` of rule `rule` for `map` to every webhook of
/// `plan` that subscribes to the rule, with `line` logged in the same
/// transaction; the webhooks it went to.
pub fn queue(
    store: &Checkpoints,
    plan: &AlertsPlan,
    rule: &str,
    map: Option<&str>,
    notification: &Notification,
    line: &Activity,
) -> Result<Vec<String>, CheckpointError> {
    let body = serde_json::to_string(notification).unwrap_or_default();
    let outgoing: Vec<Outgoing> = plan
        .webhooks
        .iter()
        .filter(|webhook| webhook.subscribes(rule))
        .map(|webhook| Outgoing {
            webhook: webhook.name.clone(),
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            body: body.clone(),
            rule: rule.to_owned(),
            map: map.map(str::to_owned),
            attempts: 0,
        })
        .collect();
    store.queue_notifications(&outgoing, line)?;
    Ok(outgoing.into_iter().map(|o| o.webhook).collect())
}

/// The deliverers of a running host: one task per webhook.
#[derive(Debug, Default)]
pub struct Deliveries {
    wakes: HashMap<String, Arc<Notify>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Deliveries {
    /// Starts a deliverer per webhook of `plan` over `store`'s outbox;
    /// notifications of webhooks no longer configured are dropped first.
    pub fn spawn(store: &Checkpoints, plan: &AlertsPlan) -> Result<Deliveries, String> {
        let names: Vec<&str> = plan.webhooks.iter().map(|w| w.name.as_str()).collect();
        match store.drop_notifications_except(&names) {
            Ok(0) => {}
            Ok(dropped) => tracing::warn!(
                dropped,
                "Notifications for webhooks no longer in the config were dropped."
            ),
            Err(error) => tracing::warn!(%error, "The outbox of notifications could not be read."),
        }
        let mut deliveries = Deliveries::default();
        for webhook in &plan.webhooks {
            let wake = Arc::new(Notify::new());
            let deliverer = Deliverer {
                store: store.clone(),
                client: client(webhook)?,
                webhook: webhook.clone(),
                retry: (plan.retry_min, plan.retry_max),
                wake: wake.clone(),
            };
            deliveries.wakes.insert(webhook.name.clone(), wake);
            deliveries.tasks.push(tokio::spawn(deliverer.run()));
        }
        Ok(deliveries)
    }

    /// Tells the deliverers of `webhooks` that the outbox has more.
    pub fn wake(&self, webhooks: &[String]) {
        for webhook in webhooks {
            if let Some(wake) = self.wakes.get(webhook) {
                wake.notify_one();
            }
        }
    }

    /// Stops every deliverer (what is not delivered stays in the outbox);
    /// their tasks, which end once awaited.
    pub fn stop(&mut self) -> Vec<JoinHandle<()>> {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        tasks
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Deliverer {
    store: Checkpoints,
    client: reqwest::Client,
    webhook: WebhookPlan,
    retry: (Duration, Duration),
    wake: Arc<Notify>,
}

impl Deliverer {
    async fn run(self) {
        let name = self.webhook.name.clone();
        let mut waits = backoff(self.retry.0, self.retry.1);
        loop {
            let next = match self.store.next_notification(&name) {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(webhook = %name, %error, "The outbox of notifications could not be read; it is read again.");
                    tokio::time::sleep(self.retry.0).await;
                    continue;
                }
            };
            let Some((slot, mut outgoing)) = next else {
                let _ = tokio::time::timeout(IDLE, self.wake.notified()).await;
                continue;
            };
            let started = Instant::now();
            let result = send(&self.client, &self.webhook, &outgoing.id, &outgoing.body).await;
            outgoing.attempts = outgoing.attempts.saturating_add(1);
            let map = outgoing.map.clone().unwrap_or_default();
            let stored = match result {
                Ok(status) => {
                    waits = backoff(self.retry.0, self.retry.1);
                    let line = Activity::alert(
                        &map,
                        &outgoing.rule,
                        Action::Notified,
                        format!(
                            "webhook `{name}` took notification {} (HTTP {status}) in {} ms, attempt {}",
                            outgoing.id,
                            started.elapsed().as_millis(),
                            outgoing.attempts
                        ),
                    );
                    tracing::info!(webhook = %name, rule = %outgoing.rule, attempts = outgoing.attempts, "A notification was delivered.");
                    self.store.notification_delivered(&slot, &line)
                }
                Err(why) => {
                    let wait = waits.next().unwrap_or(self.retry.1);
                    let line = Activity::alert(
                        &map,
                        &outgoing.rule,
                        Action::Undelivered,
                        format!(
                            "webhook `{name}` {why}: notification {} not delivered at attempt {}; tried again in {}",
                            outgoing.id,
                            outgoing.attempts,
                            humantime::format_duration(Duration::from_millis(
                                wait.as_millis() as u64
                            ))
                        ),
                    );
                    tracing::warn!(webhook = %name, rule = %outgoing.rule, attempts = outgoing.attempts, reason = %why, "A notification was not delivered; it is tried again.");
                    let stored = self.store.notification_failed(&slot, &outgoing, &line);
                    tokio::time::sleep(wait).await;
                    stored
                }
            };
            if let Err(error) = stored {
                tracing::warn!(webhook = %name, %error, "A delivery could not be recorded; the notification may be sent again.");
                tokio::time::sleep(self.retry.0).await;
            }
        }
    }
}
