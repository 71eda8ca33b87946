//! OData `$batch` for both connectors: [`BatchMode`], the per-request
//! [`WriteOutcome`], the writes made a [`BatchRequest`] and the
//! [`BatchResponse`] read into outcomes. The multipart framing is the
//! library's one codec, [`crate::odata::batch`].

use reqwest::Method;
use serde_json::{Map, Value};

use super::error::{ConnectorError, ServiceError};
use super::transport::{Call, Transport};
use crate::odata::batch::{BatchRequest, BatchResponse, Item, Part, Request};

/// Most requests one `$batch` may carry (both services).
pub const MAX_BATCH: usize = 1000;

/// How a batch treats a failing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// One change set: every write commits, or none does. A failure names
    /// the request at fault; every other one is [`WriteOutcome::NotApplied`].
    Atomic,
    /// Each write on its own with `Prefer: odata.continue-on-error`: every
    /// row gets its own outcome.
    ContinueOnError,
}

/// What became of one write of a batch, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The service applied it.
    Applied {
        /// Its status (204, 201, …).
        status: u16,
        /// The written row's URL when the service says it (Dataverse's
        /// `OData-EntityId`: `…/accounts(<guid>)`).
        entity_id: Option<String>,
    },
    /// The service refused it: fix the row and resubmit it.
    Failed {
        /// Its status.
        status: u16,
        /// The OData error.
        service: ServiceError,
    },
    /// Not applied: its change set rolled back, or the batch stopped
    /// before it. Send it again.
    NotApplied,
}

impl WriteOutcome {
    /// True for [`WriteOutcome::Applied`].
    pub fn is_applied(&self) -> bool {
        matches!(self, Self::Applied { .. })
    }
}

/// One request of a batch.
#[derive(Debug, Clone)]
pub(crate) struct BatchPart {
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Map<String, Value>>,
}

/// Sends `parts` as one `$batch` and answers an outcome per part.
pub(crate) async fn send(
    transport: &Transport,
    parts: &[BatchPart],
    mode: BatchMode,
) -> Result<Vec<WriteOutcome>, ConnectorError> {
    if parts.len() > MAX_BATCH {
        return Err(ConnectorError::Invalid {
            system: transport.system,
            detail: format!(
                "a $batch carries at most {MAX_BATCH} writes, got {}: split the writes into several batches",
                parts.len()
            ),
        });
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let batch = request(parts, mode);
    // A lost answer is not resent here: the engine reads back what landed
    // (its write intents) before it writes the batch again.
    let mut call = Call::new(Method::POST, transport.url("$batch"))
        .body(batch.content_type(), batch.to_bytes())
        .once_sent();
    if mode == BatchMode::ContinueOnError {
        call = call.header("Prefer", "odata.continue-on-error");
    }
    let reply = transport.send_ok(&call).await?;
    let content_type = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    parse(content_type, &reply.body, parts.len(), mode).map_err(|error| match error {
        Malformed(detail) => ConnectorError::Protocol {
            system: transport.system,
            url: call.url.clone(),
            detail,
        },
        Unattributed { status, service } => ConnectorError::Rejected {
            system: transport.system,
            method: format!(
                "{} (atomic change set of {} writes, none applied)",
                call.method,
                parts.len()
            ),
            url: call.url.clone(),
            table: None,
            key: None,
            status,
            service: Box::new(service),
        },
    })
}

/// The batch of `parts`; Content-ID `i + 1` names request `i`. Atomic
/// puts them in one change set.
pub(crate) fn request(parts: &[BatchPart], mode: BatchMode) -> BatchRequest {
    let id = uuid::Uuid::new_v4();
    let mut batch = BatchRequest::new(format!("batch_{id}"));
    let parts = parts.iter().enumerate().map(|(i, part)| {
        let mut request = Request::new(part.method.as_str(), part.url.as_str());
        for (name, value) in &part.headers {
            request.headers.push((name.to_string(), value.clone()));
        }
        if let Some(body) = &part.body {
            request
                .headers
                .push(("Content-Type".into(), "application/json; type=entry".into()));
            request.body = Value::Object(body.clone()).to_string().into_bytes();
        }
        Part {
            content_id: Some((i + 1).to_string()),
            message: request,
        }
    });
    match mode {
        BatchMode::Atomic => batch.items.push(Item::ChangeSet {
            boundary: format!("changeset_{id}"),
            parts: parts.collect(),
        }),
        BatchMode::ContinueOnError => batch.items.extend(parts.map(Item::Single)),
    }
    batch
}

/// Why a batch response could not be read into outcomes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not the multipart shape the protocol prescribes.
    Malformed(String),
    /// An atomic change set failed without naming the write at fault.
    Unattributed { status: u16, service: ServiceError },
}

use ParseError::{Malformed, Unattributed};

/// Reads the responses of a batch of `count` requests into outcomes in
/// request order. Errors describe what was malformed.
pub(crate) fn parse(
    content_type: &str,
    body: &[u8],
    count: usize,
    mode: BatchMode,
) -> Result<Vec<WriteOutcome>, ParseError> {
    let batch = BatchResponse::parse(content_type, body)
        .map_err(|e| Malformed(format!("the batch response is malformed: {e}")))?;
    let responses = batch.items.into_iter().flat_map(|item| match item {
        Item::Single(part) => vec![part],
        Item::ChangeSet { parts, .. } => parts,
    });
    let mut outcomes = vec![WriteOutcome::NotApplied; count];
    let mut any_failed = false;
    for Part {
        content_id,
        message: response,
    } in responses
    {
        let status = response.status;
        let index = content_id
            .and_then(|id| id.parse::<usize>().ok())
            .and_then(|id| id.checked_sub(1))
            .filter(|i| *i < count);
        let Some(index) = index else {
            if mode == BatchMode::Atomic && status >= 400 {
                // The change set failed as a whole (at commit): nothing was
                // applied, and the service did not say which write failed.
                return Err(Unattributed {
                    status,
                    service: ServiceError::from_body(&response.body),
                });
            }
            return Err(Malformed(
                "a batch response part carries no known Content-ID".into(),
            ));
        };
        outcomes[index] = if status < 400 {
            WriteOutcome::Applied {
                status,
                entity_id: response.header("odata-entityid").map(str::to_string),
            }
        } else {
            any_failed = true;
            WriteOutcome::Failed {
                status,
                service: ServiceError::from_body(&response.body),
            }
        };
    }
    if mode == BatchMode::Atomic && any_failed {
        // The change set rolled back: what it reported applied was not.
        for outcome in &mut outcomes {
            if outcome.is_applied() {
                *outcome = WriteOutcome::NotApplied;
            }
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_become_one_change_set_or_single_parts_named_by_content_id() {
        let row: Map<String, Value> = serde_json::from_str(r#"{"name":"A"}"#).expect("row");
        let parts = [
            BatchPart {
                method: Method::PATCH,
                url: "https://org/api/data/v9.2/accounts(accountnumber='A-1')".into(),
                headers: vec![("If-Match", "*".into())],
                body: Some(row),
            },
            BatchPart {
                method: Method::DELETE,
                url: "https://org/api/data/v9.2/accounts(accountnumber='A-2')".into(),
                headers: Vec::new(),
                body: None,
            },
        ];
        let atomic = request(&parts, BatchMode::Atomic);
        let read = BatchRequest::parse(&atomic.content_type(), &atomic.to_bytes()).expect("parsed");
        assert_eq!(read, atomic);
        let [Item::ChangeSet { parts: sent, .. }] = read.items.as_slice() else {
            panic!("one change set: {read:?}");
        };
        assert_eq!(sent[0].content_id.as_deref(), Some("1"));
        assert_eq!(sent[0].message.method, "PATCH");
        assert_eq!(sent[0].message.header("if-match"), Some("*"));
        assert_eq!(
            sent[0].message.header("content-type"),
            Some("application/json; type=entry")
        );
        assert_eq!(sent[0].message.body, br#"{"name":"A"}"#);
        assert_eq!(sent[1].content_id.as_deref(), Some("2"));
        assert!(sent[1].message.body.is_empty());

        let each = request(&parts, BatchMode::ContinueOnError);
        assert_eq!(each.items.len(), 2);
        assert!(
            each.items
                .iter()
                .all(|item| matches!(item, Item::Single(_)))
        );
    }

    #[test]
    fn a_rolled_back_change_set_names_the_failing_request() {
        let body = "--b\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x1\",\"message\":\"bad\"}}\r\n--b--\r\n";
        let outcomes = parse(
            "multipart/mixed; boundary=b",
            body.as_bytes(),
            3,
            BatchMode::Atomic,
        )
        .expect("parsed");
        assert_eq!(outcomes[0], WriteOutcome::NotApplied);
        assert_eq!(
            outcomes[1],
            WriteOutcome::Failed {
                status: 400,
                service: ServiceError {
                    code: "0x1".into(),
                    message: "bad".into()
                }
            }
        );
        assert_eq!(outcomes[2], WriteOutcome::NotApplied);
    }

    #[test]
    fn parts_without_a_known_content_id_are_an_error() {
        let body =
            "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n--b--\r\n";
        let error = parse(
            "multipart/mixed; boundary=b",
            body.as_bytes(),
            1,
            BatchMode::ContinueOnError,
        )
        .expect_err("refused");
        assert!(
            matches!(&error, Malformed(m) if m.contains("Content-ID")),
            "{error:?}"
        );
        let failed = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"code\":\"0x2\",\"message\":\"commit\"}}\r\n--b--\r\n";
        let error = parse(
            "multipart/mixed; boundary=b",
            failed.as_bytes(),
            2,
            BatchMode::Atomic,
        )
        .expect_err("unattributed");
        assert!(
            matches!(&error, Unattributed { status: 400, service } if service.code == "0x2"),
            "{error:?}"
        );
    }
}
