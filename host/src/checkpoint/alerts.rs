//! What the alerts keep: the rules added through the admin API (tree
//! `alert_rules`, name → the rule as written, JSON) and the notifications
//! not delivered yet (tree `notifications`, `<webhook> NUL <seq>` → an
//! [`Outgoing`], so each webhook's are read in the order they were
//! queued). A notification leaves the store in the transaction that logs
//! its delivery; a failed attempt is logged with the attempts counted, so
//! a host that restarts goes on delivering what it had not.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::ops::{TxResult, join, json, parse, unwrap_tx};
use super::{Activity, CheckpointError, Checkpoints};
use crate::alerts::RuleSpec;

/// A notification on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The webhook.
    pub webhook: String,
    /// The message id (`webhook-id`), the same in every attempt.
    pub id: String,
    /// The JSON body.
    pub body: String,
    /// The rule.
    pub rule: String,
    /// The map it fired for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
}

/// Where a queued notification is.
pub type Slot = Vec<u8>;

impl Checkpoints {
    /// The rules added through the admin API, by name.
    pub fn alert_rules(&self) -> Result<Vec<RuleSpec>, CheckpointError> {
        self.alert_rules
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// Stores `rule` (replacing one of its name), flushed.
    pub fn put_alert_rule(&self, rule: &RuleSpec) -> Result<(), CheckpointError> {
        self.alert_rules.insert(rule.name.as_bytes(), json(rule)?)?;
        self.flush()
    }

    /// Removes the rule named `name`; whether there was one.
    pub fn remove_alert_rule(&self, name: &str) -> Result<bool, CheckpointError> {
        let removed = self.alert_rules.remove(name.as_bytes())?.is_some();
        self.flush()?;
        Ok(removed)
    }

    /// Appends `line` to the activity log, flushed.
    pub fn append_activity(&self, line: &Activity) -> Result<(), CheckpointError> {
        let value = self.line(line)?;
        self.activity
            .insert(&self.db.generate_id()?.to_be_bytes()[..], value)?;
        self.flush()
    }

    /// Queues `notifications` with `line` logged, in one transaction,
    /// flushed.
    pub fn queue_notifications(
        &self,
        notifications: &[Outgoing],
        line: &Activity,
    ) -> Result<(), CheckpointError> {
        let values = notifications
            .iter()
            .map(|outgoing| Ok((outgoing.webhook.clone(), json(outgoing)?)))
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        let line = self.line(line)?;
        (&self.notifications, &self.activity)
            .transaction(|(tree, log)| -> TxResult<()> {
                for (webhook, value) in &values {
                    let seq = tree.generate_id()?.to_be_bytes();
                    tree.insert(join(&[webhook.as_bytes(), &seq]), value.as_slice())?;
                }
                log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.flush()
    }

    /// The oldest notification waiting for `webhook`.
    pub fn next_notification(
        &self,
        webhook: &str,
    ) -> Result<Option<(Slot, Outgoing)>, CheckpointError> {
        let mut prefix = webhook.as_bytes().to_vec();
        prefix.push(0);
        match self.notifications.scan_prefix(&prefix).next() {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(Some((key.to_vec(), parse(&key, &value)?)))
            }
            None => Ok(None),
        }
    }

    /// How many notifications wait for `webhook`.
    pub fn notifications_waiting_for(&self, webhook: &str) -> Result<usize, CheckpointError> {
        let mut prefix = webhook.as_bytes().to_vec();
        prefix.push(0);
        Ok(self.notifications.scan_prefix(prefix).count())
    }

    /// How many notifications wait, for every webhook.
    pub fn notifications_waiting(&self) -> Result<usize, CheckpointError> {
        Ok(self.notifications.len())
    }

    /// The notification at `slot` was delivered: it leaves with `line`
    /// logged, in one transaction, flushed.
    pub fn notification_delivered(
        &self,
        slot: &[u8],
        line: &Activity,
    ) -> Result<(), CheckpointError> {
        let line = self.line(line)?;
        (&self.notifications, &self.activity)
            .transaction(|(tree, log)| -> TxResult<()> {
                tree.remove(slot)?;
                log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.flush()
    }

    /// An attempt to deliver the notification at `slot` failed: it stays,
    /// as `outgoing` (its attempts counted), with `line` logged.
    pub fn notification_failed(
        &self,
        slot: &[u8],
        outgoing: &Outgoing,
        line: &Activity,
    ) -> Result<(), CheckpointError> {
        let value = json(outgoing)?;
        let line = self.line(line)?;
        (&self.notifications, &self.activity)
            .transaction(|(tree, log)| -> TxResult<()> {
                if tree.get(slot)?.is_some() {
                    tree.insert(slot, value.as_slice())?;
                }
                log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.flush()
    }

    /// Drops the notifications of webhooks no longer configured; how many.
    pub fn drop_notifications_except(&self, webhooks: &[&str]) -> Result<usize, CheckpointError> {
        let tree = &self.notifications;
        let mut dropped = 0;
        for entry in tree.iter() {
            let (key, _) = entry?;
            let webhook = key.split(|b| *b == 0).next().unwrap_or_default();
            if !webhooks.iter().any(|w| w.as_bytes() == webhook) {
                tree.remove(&key)?;
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.flush()?;
        }
        Ok(dropped)
    }
}
