//! Synchronous webhook steps of the Dataverse emulator: a step with `mode`
//! 0 runs in the event pipeline of the write itself, so its endpoint is
//! called before the write commits and a refusal rolls the write back
//! ("Use webhooks to create external handlers for server events",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>,
//! and "Event framework",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/event-framework>).
//!
//! - [`expected`]: whether a prepared write has any synchronous step
//!   registered on its table and message; a write without one takes the
//!   plain path (`Store::transact_serial`, no dry run).
//! - [`run`]: the calls for the changes of a dry run
//!   (`Store::transact_checked` holds the writer lock meanwhile: reads go
//!   on, writes wait). Per change, in the order given (a `$batch` change
//!   set's parts in order), its steps by `stage` then `rank`; each gets
//!   the `RemoteExecutionContext` with `Mode` 0, its `Stage`,
//!   `IsInTransaction` true (false in PreValidation, stage 10, which the
//!   service runs before the transaction), `Depth` 1, `POST`ed with the
//!   headers and authentication of the asynchronous deliveries.
//!
//! Each call has the deadline of [`crate::EmulatorConfig`]'s
//! `synchronous_step_timeout_ms` (60 s, the service's limit for a
//! webhook). A `502`, `503` or `504` is tried once more at once; any other
//! non-2xx answer, a second `5xx` of those, no answer in time or no
//! connection fails the write with HTTP 400 and `0x80040265` (what a
//! plug-in's `InvalidPluginExecutionException` gives), whose message holds
//! the endpoint's message verbatim: the body's `error.message` or
//! `message` when it is JSON that has one, else the body, trimmed.
//! Synchronous contexts are neither stored nor queued: a step is called
//! during the write or never.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::super::SharedState;
use super::super::http::ApiError;
use super::ops::{PreparedWrite, WriteKind};
use super::read::storage;
use super::steps::{self, ENDPOINTS};
use super::webhooks::{self, Change};

/// The error code of a write a plug-in (here: a synchronous step) refused.
const ISV_ABORTED: &str = "0x80040265";

/// The answers tried once more, at once.
const RETRIED: [u16; 3] = [502, 503, 504];

/// The synchronous steps on `message` of `table`.
fn synchronous_steps(
    state: &SharedState,
    table: &dualwrite::schema::TableDef,
    message: &str,
) -> Vec<Map<String, Value>> {
    steps::steps_for(state, table, message)
        .into_iter()
        .filter(|step| !webhooks::asynchronous(step))
        .collect()
}

/// True when `write` may call a synchronous step: one is registered on
/// its table for a message it may turn out to be (an upsert is a `Create`
/// or an `Update`), or on an `Update` of a table whose rows a create
/// associates.
pub(crate) fn expected(state: &SharedState, write: &PreparedWrite<'_>) -> bool {
    let messages: &[&str] = match write.kind {
        WriteKind::Create { .. } => &["Create"],
        WriteKind::Upsert { .. } => &["Create", "Update"],
        WriteKind::Delete { .. } => &["Delete"],
    };
    let own = messages
        .iter()
        .any(|message| !synchronous_steps(state, write.table, message).is_empty());
    own || write.associate.iter().any(|(nav, _)| {
        state
            .metadata
            .relationship(&write.table.name, nav)
            .and_then(|relationship| state.metadata.table(&relationship.referencing))
            .is_some_and(|table| !synchronous_steps(state, table, "Update").is_empty())
    })
}

/// Calls the synchronous steps of `changes` in turn, each context carrying
/// `correlation`; the first refusal is the write's error.
pub(crate) async fn run(
    state: &SharedState,
    changes: &[Change<'_>],
    correlation: &str,
) -> Result<(), ApiError> {
    let images = super::images::registered(state);
    for change in changes {
        let mut steps: Vec<Map<String, Value>> =
            synchronous_steps(state, change.table, change.message)
                .into_iter()
                .filter(|step| webhooks::fires(step, change))
                .collect();
        let order = |step: &Map<String, Value>| {
            let number = |name: &str| step.get(name).and_then(Value::as_i64).unwrap_or(0);
            let text = |name: &str| {
                step.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                number("stage"),
                number("rank"),
                text("name"),
                text("sdkmessageprocessingstepid"),
            )
        };
        steps.sort_by_cached_key(order);
        for step in &steps {
            let context = webhooks::context(state, change, step, &images, correlation);
            call(state, change, step, &context).await?;
        }
    }
    Ok(())
}

/// How one attempt at a call ended.
enum Answer {
    /// The endpoint answered: its status and body.
    Status(StatusCode, String),
    /// No answer within the deadline.
    Late,
    /// No connection, or the request failed.
    Failed(String),
}

/// Calls one step's endpoint with `context`.
async fn call(
    state: &SharedState,
    change: &Change<'_>,
    step: &Map<String, Value>,
    context: &Value,
) -> Result<(), ApiError> {
    let refuse = |message: String| ApiError::new(StatusCode::BAD_REQUEST, ISV_ABORTED, message);
    let text = |name: &str| {
        step.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let what = format!(
        "the synchronous step '{}' ({}) on the {} of {} {}",
        text("name"),
        text("sdkmessageprocessingstepid"),
        change.message,
        change.table.entity_name(),
        change.id
    );
    let endpoint_id = text("_eventhandler_value");
    let endpoint = state
        .store
        .get(ENDPOINTS, &steps::pk(&endpoint_id))
        .map_err(storage)?
        .ok_or_else(|| {
            refuse(format!(
                "{what} names the serviceendpoint {endpoint_id}, which does not exist, so nothing was committed: register the endpoint again or delete the step"
            ))
        })?;
    // The url as registered: the authentication it is sent with stays out
    // of the message.
    let url = endpoint
        .row
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let deadline = state.step_deadline;
    let mut retried = false;
    loop {
        let request = webhooks::post(state.webhooks.client(), &endpoint.row, context)
            .map_err(|error| {
                refuse(format!(
                    "{what} cannot call its endpoint {url}, so nothing was committed: {error}; fix the serviceendpoint's url or authvalue"
                ))
            })?;
        match attempt(request, deadline).await {
            Answer::Status(status, _) if status.is_success() => return Ok(()),
            Answer::Status(status, _) if !retried && RETRIED.contains(&status.as_u16()) => {
                tracing::warn!(url, %status, "A synchronous step's endpoint is unavailable; trying once more.");
                retried = true;
            }
            Answer::Status(status, body) => {
                let again = if retried { ", tried twice" } else { "" };
                return Err(refuse(format!(
                    "{what} refused the write: its endpoint {url} answered {status}{again}, so nothing was committed: {}",
                    endpoint_message(&body)
                )));
            }
            Answer::Late => {
                return Err(refuse(format!(
                    "{what} timed out: its endpoint {url} did not answer within {}, so nothing was committed; make the endpoint answer sooner or register the step as asynchronous (mode 1)",
                    seconds(deadline)
                )));
            }
            Answer::Failed(error) => {
                return Err(refuse(format!(
                    "{what} could not reach its endpoint {url}, so nothing was committed: {error}; start the endpoint or delete the step"
                )));
            }
        }
    }
}

/// One attempt: the request sent and its body read within `deadline`.
async fn attempt(request: reqwest::RequestBuilder, deadline: Duration) -> Answer {
    let exchange = async {
        let response = request.timeout(deadline).send().await?;
        let status = response.status();
        let body = response.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    match tokio::time::timeout(deadline, exchange).await {
        Err(_) => Answer::Late,
        Ok(Err(error)) if error.is_timeout() => Answer::Late,
        Ok(Err(error)) => Answer::Failed(error.to_string()),
        Ok(Ok((status, body))) => Answer::Status(status, body),
    }
}

/// The endpoint's message in an answer's body: `error.message` or
/// `message` of a JSON body, else the body itself, trimmed.
fn endpoint_message(body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    parsed
        .as_ref()
        .and_then(|json| {
            json.pointer("/error/message")
                .and_then(Value::as_str)
                .or_else(|| json.get("message").and_then(Value::as_str))
        })
        .unwrap_or(body)
        .trim()
        .to_owned()
}

/// A deadline for messages: `60 s`, `250 ms`.
fn seconds(deadline: Duration) -> String {
    if deadline.subsec_millis() == 0 {
        format!("{} s", deadline.as_secs())
    } else {
        format!("{} ms", deadline.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::{endpoint_message, seconds};
    use std::time::Duration;

    #[test]
    fn the_endpoint_message_is_taken_from_json_or_the_body() {
        assert_eq!(endpoint_message(r#"{"error":{"message":"nope"}}"#), "nope");
        assert_eq!(endpoint_message(r#"{"message":"no way"}"#), "no way");
        assert_eq!(
            endpoint_message(r#"{"error":{"message":7},"message":"shown"}"#),
            "shown"
        );
        assert_eq!(endpoint_message("  plain refusal \n"), "plain refusal");
        assert_eq!(endpoint_message(r#"{"other":1}"#), r#"{"other":1}"#);
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
    }
}
