//! OData `$batch` over `multipart/mixed`: [`BatchMode`], the per-request
//! [`WriteOutcome`], the request body and the response parser, shared by
//! both connectors.

use reqwest::Method;
use serde_json::{Map, Value};

use super::error::{ConnectorError, ServiceError};
use super::transport::{Call, Transport};

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
    let boundary = format!("batch_{}", uuid::Uuid::new_v4());
    let mut call = Call::new(Method::POST, transport.url("$batch")).body(
        format!("multipart/mixed; boundary={boundary}"),
        body(&boundary, parts, mode),
    );
    if mode == BatchMode::ContinueOnError {
        call = call.header("Prefer", "odata.continue-on-error");
    }
    let reply = transport.send_ok(&call).await?;
    let content_type = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&reply.body);
    parse(content_type, &text, parts.len(), mode).map_err(|error| match error {
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

/// Builds the body; Content-ID `i + 1` names request `i`.
pub(crate) fn body(boundary: &str, parts: &[BatchPart], mode: BatchMode) -> String {
    let mut out = String::new();
    let change_set = format!("changeset_{boundary}");
    if mode == BatchMode::Atomic {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={change_set}\r\n\r\n"
        ));
    }
    let outer = match mode {
        BatchMode::Atomic => change_set.as_str(),
        BatchMode::ContinueOnError => boundary,
    };
    for (i, part) in parts.iter().enumerate() {
        out.push_str(&format!(
            "--{outer}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n{} {} HTTP/1.1\r\n",
            i + 1,
            part.method,
            part.url
        ));
        for (name, value) in &part.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        match &part.body {
            Some(body) => {
                let json = Value::Object(body.clone()).to_string();
                out.push_str(&format!(
                    "Content-Type: application/json; type=entry\r\n\r\n{json}\r\n"
                ));
            }
            None => out.push_str("\r\n"),
        }
    }
    if mode == BatchMode::Atomic {
        out.push_str(&format!("--{change_set}--\r\n"));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
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
    body: &str,
    count: usize,
    mode: BatchMode,
) -> Result<Vec<WriteOutcome>, ParseError> {
    let boundary = boundary_of(content_type).ok_or_else(|| {
        Malformed(format!(
            "the batch response has no multipart boundary: {content_type}"
        ))
    })?;
    let mut outcomes = vec![WriteOutcome::NotApplied; count];
    let mut responses = Vec::new();
    collect(body, &boundary, &mut responses).map_err(Malformed)?;
    let mut any_failed = false;
    for (content_id, status, error_body, entity_id) in responses {
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
                    service: ServiceError::from_body(error_body.as_bytes()),
                });
            }
            return Err(Malformed(
                "a batch response part carries no known Content-ID".into(),
            ));
        };
        outcomes[index] = if status < 400 {
            WriteOutcome::Applied { status, entity_id }
        } else {
            any_failed = true;
            WriteOutcome::Failed {
                status,
                service: ServiceError::from_body(error_body.as_bytes()),
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

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (name, value) = p.trim().split_once('=')?;
        name.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_string())
    })
}

/// Content-ID, status, body and `OData-EntityId` of one response.
type Response<'a> = (Option<String>, u16, &'a str, Option<String>);

/// Walks the parts under `boundary`, descending into change sets.
fn collect<'a>(body: &'a str, boundary: &str, out: &mut Vec<Response<'a>>) -> Result<(), String> {
    let delimiter = format!("--{boundary}");
    for chunk in body.split(delimiter.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.trim_start_matches("\r\n");
        let (head, rest) = chunk
            .split_once("\r\n\r\n")
            .ok_or("a batch response part has no blank line after its headers")?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let content_type = header("content-type").unwrap_or_default();
        if content_type.starts_with("multipart/mixed") {
            let inner =
                boundary_of(&content_type).ok_or("a change set response has no boundary")?;
            collect(rest, &inner, out)?;
            continue;
        }
        let (status_line, after) = rest.split_once("\r\n").unwrap_or((rest, ""));
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP status line: {status_line}"))?;
        // Headers, a blank line, the body; no headers leaves the blank line first.
        let (response_head, response_body) = match after.strip_prefix("\r\n") {
            Some(body) => ("", body),
            None => after.split_once("\r\n\r\n").unwrap_or((after, "")),
        };
        let entity_id = response_head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("odata-entityid")
                .then(|| v.trim().to_string())
        });
        out.push((
            header("content-id"),
            status,
            response_body.trim_end(),
            entity_id,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_change_set_names_the_failing_request() {
        let body = "--b\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x1\",\"message\":\"bad\"}}\r\n--b--\r\n";
        let outcomes =
            parse("multipart/mixed; boundary=b", body, 3, BatchMode::Atomic).expect("parsed");
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
            body,
            1,
            BatchMode::ContinueOnError,
        )
        .expect_err("refused");
        assert!(
            matches!(&error, Malformed(m) if m.contains("Content-ID")),
            "{error:?}"
        );
        let failed = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"code\":\"0x2\",\"message\":\"commit\"}}\r\n--b--\r\n";
        let error = parse("multipart/mixed; boundary=b", failed, 2, BatchMode::Atomic)
            .expect_err("unattributed");
        assert!(
            matches!(&error, Unattributed { status: 400, service } if service.code == "0x2"),
            "{error:?}"
        );
    }
}
