//! The webhooks alerts notify, and what they are sent: a JSON
//! [`Notification`] signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com/>, `spec/standard-webhooks.md`): an
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the
//! webhook's secret, sent as `webhook-signature: v1,{base64}` beside the
//! `webhook-id` and `webhook-timestamp` headers, so a receiver checks the
//! body and rejects a replay by its timestamp (the specification's
//! tolerance is five minutes) or its id. A retry keeps the id and signs
//! again with the time it is sent.
//!
//! ```toml
//! [[alerts.webhooks]]
//! name = "ops"
//! url = "https://ops.contoso.com/hooks/dualwrite"
//! secret_env = "DUALWRITE_ALERT_SECRET"   # whsec_ and a base64 key
//! rules = ["application-errors"]          # absent: every rule
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::connector::TrustedCa;
use crate::map::Secret;

/// A webhook of `[[alerts.webhooks]]`, checked at build.
#[derive(Debug, Clone)]
pub struct WebhookPlan {
    /// Its name.
    pub name: String,
    /// Where notifications are posted.
    pub url: reqwest::Url,
    /// The signing secret (`whsec_` and a base64 key), from `secret_env`.
    pub secret: Secret,
    /// The rules it is sent; none: every rule.
    pub rules: Option<Vec<String>>,
    /// A CA its certificate chains to, besides the system roots.
    pub ca: Option<TrustedCa>,
}

impl WebhookPlan {
    /// Whether the webhook is sent rule `rule`'s notifications.
    pub fn subscribes(&self, rule: &str) -> bool {
        self.rules
            .as_ref()
            .is_none_or(|rules| rules.iter().any(|r| r == rule))
    }
}

/// Reads a signing secret: `whsec_` (optional) and a base64 key, as the
/// Standard Webhooks specification writes them; the reason otherwise.
pub fn signer(secret: &str) -> Result<standardwebhooks::Webhook, String> {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    if key.len() < 16 {
        return Err("is shorter than a key of 12 bytes".into());
    }
    standardwebhooks::Webhook::new(secret)
        .map_err(|error| format!("is not `whsec_` and a base64 key ({error})"))
}

/// The signature headers of one delivery of `body` with id `id` at
/// `timestamp` (seconds since 1970).
pub fn signature_headers(
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<[(&'static str, String); 3], String> {
    let signature = signer(secret.expose())?
        .sign(id, timestamp, body.as_bytes())
        .map_err(|error| format!("the body cannot be signed: {error}"))?;
    Ok([
        (standardwebhooks::HEADER_WEBHOOK_ID, id.to_owned()),
        (
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        ),
        (standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature),
    ])
}

/// What a webhook is sent: the Standard Webhooks payload shape, `type`,
/// `timestamp` and `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// `alert.firing`, `alert.resolved` or `alert.test`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the alert fired or resolved (RFC 3339, UTC).
    pub timestamp: String,
    /// What it is about.
    pub data: AlertData,
}

/// The alert a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertData {
    /// The rule.
    pub rule: String,
    /// The map it fired for (none for a test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// The rule's condition, as people read it.
    pub condition: String,
    /// What was seen, such as `12 application errors within 15m`.
    pub observed: String,
    /// `firing`, `resolved` or `test`.
    pub status: String,
    /// The rule's actions (`notify`, `pause`).
    pub actions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sha2::Sha256;

    #[test]
    fn a_signature_is_the_specifications_hmac() {
        let key = b"0123456789abcdef0123";
        let secret = Secret::new(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ));
        let [id, at, signature] =
            signature_headers(&secret, "msg_1", 1_700_000_000, "{\"a\":1}").expect("signs");
        assert_eq!((id.0, at.1.as_str()), ("webhook-id", "1700000000"));
        // Computed independently: HMAC-SHA256 over id.timestamp.body.
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(b"msg_1.1700000000.{\"a\":1}");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(signature.1, format!("v1,{expected}"));
    }

    #[test]
    fn a_secret_that_is_no_key_is_refused() {
        assert!(signer("whsec_short").is_err());
        assert!(signer("whsec_not base64 at all!!!!").is_err());
        assert!(signer("whsec_MDEyMzQ1Njc4OWFiY2RlZg==").is_ok());
    }
}
