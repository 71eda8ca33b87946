//! The `$batch` codec: `multipart/mixed` bodies of `application/http`
//! messages, read and written the same way by the connectors (requests
//! out, responses in) and the emulators (requests in, responses out).
//!
//! - [`Batch`]: a boundary and its [`Item`]s, each a single [`Part`] or a
//!   change set of parts (one level: change sets do not nest). A part is a
//!   `Content-ID` and a message: a [`Request`] ([`BatchRequest`]) or a
//!   [`Response`] ([`BatchResponse`]).
//! - [`Batch::parse`] reads a body: the boundary from the `Content-Type`
//!   (through the `mime` crate), the delimiter lines of RFC 2046, each
//!   part's MIME headers, then its HTTP head with `httparse` (the request
//!   line or the status line, and the headers) and its body.
//!   [`Batch::to_bytes`] writes one, [`Batch::content_type`] its header.
//! - [`BatchError`]: what is malformed and where ([`PartPosition`]).
//!
//! The format is the one of "Execute batch operations using the Web API"
//! (<https://learn.microsoft.com/en-us/powerapps/developer/data-platform/webapi/execute-batch-operations-using-web-api>),
//! which summarises OData 4.0 §11.7: a part is `--boundary`, its MIME
//! headers (`Content-Type: application/http`,
//! `Content-Transfer-Encoding: binary`, `Content-ID`), a blank line, then
//! the HTTP message; a change set is a part of type `multipart/mixed` with
//! its own boundary; `--boundary--` ends each.
//!
//! Invariants:
//! - Parsing never panics: malformed input is a [`BatchError`] naming the
//!   part and what is wrong in it.
//! - `parse(to_bytes(b)) == b` for every batch whose bodies do not end in
//!   whitespace (see below).
//! - Reading is lenient where writers differ: bare LF line ends; a message
//!   without a body that ends right after its headers (the blank line
//!   before the next delimiter belongs to that delimiter); whitespace after
//!   a body, which is dropped. Writing is strict: CRLF everywhere, and a
//!   blank line after every head.
//!
//! `httparse` is a direct dependency; it is in the tree anyway, through
//! hyper under axum and reqwest. The codec knows no HTTP client or server
//! and no service: resolving `$1` references, running the requests and
//! matching responses to writes are its callers' business.

pub use super::error::{BatchError, PartPosition};

/// Most headers one part's MIME head or HTTP head may carry.
pub const MAX_HEADERS: usize = 64;

/// A `$batch` body: a boundary and its items, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<M> {
    /// The boundary of the outer `multipart/mixed` body.
    pub boundary: String,
    /// The single requests (or responses) and change sets.
    pub items: Vec<Item<M>>,
}

/// A batch of requests, as a client sends it.
pub type BatchRequest = Batch<Request>;

/// A batch of responses, as a service answers.
pub type BatchResponse = Batch<Response>;

/// One item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<M> {
    /// A request (or response) on its own.
    Single(Part<M>),
    /// A change set: requests that commit together, or their responses.
    ChangeSet {
        /// The change set's own boundary.
        boundary: String,
        /// Its parts, in order.
        parts: Vec<Part<M>>,
    },
}

/// One `application/http` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<M> {
    /// The part's `Content-ID`: `$N` names it in later requests, and a
    /// response carries the ID of its request.
    pub content_id: Option<String>,
    /// The HTTP message.
    pub message: M,
}

/// A request inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `PATCH`, `DELETE`, …
    pub method: String,
    /// The URL as written: absolute, below the service root, or `$N…`.
    pub target: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

/// A response inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase (`No Content`); may be empty.
    pub reason: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

/// The boundary of a `multipart/…` `Content-Type`.
pub fn boundary(content_type: &str) -> Result<String, BatchError> {
    let parsed: mime::Mime = content_type.parse().map_err(|_| BatchError::NotMultipart {
        content_type: content_type.to_string(),
    })?;
    if parsed.type_() != mime::MULTIPART {
        return Err(BatchError::NotMultipart {
            content_type: content_type.to_string(),
        });
    }
    parsed
        .get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| BatchError::NoBoundary {
            content_type: content_type.to_string(),
        })
}

impl<M: Message> Batch<M> {
    /// An empty batch with this boundary.
    pub fn new(boundary: impl Into<String>) -> Self {
        Self {
            boundary: boundary.into(),
            items: Vec::new(),
        }
    }

    /// The `Content-Type` header of this batch.
    pub fn content_type(&self) -> String {
        format!("multipart/mixed; boundary={}", self.boundary)
    }

    /// The messages in the batch, change sets counted by their parts.
    pub fn message_count(&self) -> usize {
        self.items
            .iter()
            .map(|item| match item {
                Item::Single(_) => 1,
                Item::ChangeSet { parts, .. } => parts.len(),
            })
            .sum()
    }

    /// Reads a body sent with `content_type`.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, BatchError> {
        let boundary = boundary(content_type)?;
        let mut items = Vec::new();
        for (i, content) in split_parts(body, &boundary)?.into_iter().enumerate() {
            let position = PartPosition {
                item: i + 1,
                in_change_set: None,
            };
            let (head, rest) = mime_head(content, position)?;
            match head.change_set {
                Some(inner) => {
                    let mut parts = Vec::new();
                    for (j, content) in split_parts(rest, &inner)?.into_iter().enumerate() {
                        let position = PartPosition {
                            in_change_set: Some(j + 1),
                            ..position
                        };
                        let (head, rest) = mime_head(content, position)?;
                        if head.change_set.is_some() {
                            return Err(BatchError::NestedChangeSet { part: position });
                        }
                        parts.push(Part {
                            content_id: head.content_id,
                            message: M::parse(rest, position)?,
                        });
                    }
                    items.push(Item::ChangeSet {
                        boundary: inner,
                        parts,
                    });
                }
                None => items.push(Item::Single(Part {
                    content_id: head.content_id,
                    message: M::parse(rest, position)?,
                })),
            }
        }
        Ok(Self { boundary, items })
    }

    /// Writes the body: CRLF line ends, a blank line after every head.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for item in &self.items {
            match item {
                Item::Single(part) => write_part(&mut out, &self.boundary, part),
                Item::ChangeSet { boundary, parts } => {
                    push(
                        &mut out,
                        &[
                            "--",
                            &self.boundary,
                            "\r\nContent-Type: multipart/mixed; boundary=",
                            boundary,
                            "\r\n\r\n",
                        ],
                    );
                    for part in parts {
                        write_part(&mut out, boundary, part);
                    }
                    push(&mut out, &["--", boundary, "--\r\n"]);
                }
            }
        }
        push(&mut out, &["--", &self.boundary, "--\r\n"]);
        out
    }
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of header `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl Response {
    /// A response without headers or body.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of header `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP message a part can carry: [`Request`] or [`Response`].
pub trait Message: sealed::Codec {}

impl Message for Request {}
impl Message for Response {}

mod sealed {
    use super::{BatchError, PartPosition};

    /// How a message reads its head and writes itself.
    pub trait Codec: Sized {
        /// Reads a part's HTTP message: head, then body.
        fn parse(content: &[u8], part: PartPosition) -> Result<Self, BatchError>;
        /// Writes the start line, the headers and the blank line, then the body.
        fn write(&self, out: &mut Vec<u8>);
    }
}

impl sealed::Codec for Request {
    fn parse(content: &[u8], part: PartPosition) -> Result<Self, BatchError> {
        let content = with_head_end(content);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let status = parsed.parse(&content);
        let start_line = |detail: String| BatchError::RequestLine {
            part,
            line: first_line(&content),
            detail,
        };
        match status {
            Ok(httparse::Status::Complete(end)) => Ok(Self {
                method: parsed.method.unwrap_or_default().to_string(),
                target: parsed.path.unwrap_or_default().to_string(),
                headers: owned_headers(parsed.headers),
                body: trim_end(&content[end..]).to_vec(),
            }),
            Ok(httparse::Status::Partial) => Err(start_line("the head does not end".into())),
            Err(e) if is_start_line(e) => Err(start_line(e.to_string())),
            Err(e) => Err(header_error(part, e)),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        push(out, &[&self.method, " ", &self.target, " HTTP/1.1\r\n"]);
        write_rest(out, &self.headers, &self.body);
    }
}

impl sealed::Codec for Response {
    fn parse(content: &[u8], part: PartPosition) -> Result<Self, BatchError> {
        let content = with_head_end(content);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let status = parsed.parse(&content);
        let status_line = |detail: String| BatchError::StatusLine {
            part,
            line: first_line(&content),
            detail,
        };
        match status {
            Ok(httparse::Status::Complete(end)) => Ok(Self {
                status: parsed.code.unwrap_or_default(),
                reason: parsed.reason.unwrap_or_default().to_string(),
                headers: owned_headers(parsed.headers),
                body: trim_end(&content[end..]).to_vec(),
            }),
            Ok(httparse::Status::Partial) => Err(status_line("the head does not end".into())),
            Err(e) if is_start_line(e) => Err(status_line(e.to_string())),
            Err(e) => Err(header_error(part, e)),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let code = self.status.to_string();
        push(out, &["HTTP/1.1 ", &code, " ", &self.reason, "\r\n"]);
        write_rest(out, &self.headers, &self.body);
    }
}

/// What a part's MIME head says.
struct MimeHead {
    content_id: Option<String>,
    /// The inner boundary when the part is a change set.
    change_set: Option<String>,
}

/// Reads a part's MIME headers; answers them and the content after them.
fn mime_head(content: &[u8], part: PartPosition) -> Result<(MimeHead, &[u8]), BatchError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (end, headers) = match httparse::parse_headers(content, &mut headers) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => {
            return Err(BatchError::PartHeaders {
                part,
                detail: "they do not end with a blank line".into(),
            });
        }
        Err(e) => {
            return Err(BatchError::PartHeaders {
                part,
                detail: e.to_string(),
            });
        }
    };
    let headers = owned_headers(headers);
    let change_set = match find_header(&headers, "content-type") {
        Some(kind)
            if kind
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/") =>
        {
            Some(boundary(kind).map_err(|e| BatchError::PartHeaders {
                part,
                detail: e.to_string(),
            })?)
        }
        _ => None,
    };
    let head = MimeHead {
        content_id: find_header(&headers, "content-id").map(|id| id.trim().to_string()),
        change_set,
    };
    Ok((head, &content[end..]))
}

/// The contents of the parts of a multipart body under `boundary`: what
/// lies between each delimiter line and the line break before the next.
/// The preamble before the first delimiter and the epilogue after the
/// closing one are ignored.
fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, BatchError> {
    let dashes = format!("--{boundary}");
    let dashes = dashes.as_bytes();
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    while let Some(found) = find(&body[at..], dashes).map(|i| i + at) {
        at = found + dashes.len();
        if found > 0 && body[found - 1] != b'\n' {
            continue; // not at the start of a line
        }
        let closing = body[at..].starts_with(b"--");
        let after = if closing { at + 2 } else { at };
        let padding = body[after..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let line_end = match &body[after + padding..] {
            [b'\r', b'\n', ..] => Some(after + padding + 2),
            [b'\n', ..] => Some(after + padding + 1),
            [] => Some(body.len()),
            _ => None,
        };
        let next = match (line_end, closing) {
            (Some(next), _) => next,
            (None, true) => body.len(),
            // The boundary is a prefix of other text on this line.
            (None, false) => continue,
        };
        if let Some(start) = open {
            parts.push(strip_line_break(&body[start..found]));
        }
        if closing {
            return Ok(parts);
        }
        open = Some(next);
        at = next;
    }
    Err(match open {
        None => BatchError::NoDelimiter {
            boundary: boundary.to_string(),
        },
        Some(_) => BatchError::Truncated {
            boundary: boundary.to_string(),
        },
    })
}

/// The content without the line break that belongs to the next delimiter.
fn strip_line_break(content: &[u8]) -> &[u8] {
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    content.strip_suffix(b"\r").unwrap_or(content)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The content, with the blank line a bodiless message may lack.
fn with_head_end(content: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if find(content, b"\r\n\r\n").is_some() || find(content, b"\n\n").is_some() {
        return content.into();
    }
    let mut owned = content.to_vec();
    owned.extend_from_slice(if content.ends_with(b"\n") {
        b"\r\n"
    } else {
        b"\r\n\r\n"
    });
    owned.into()
}

/// Whether an `httparse` error is in the request or status line.
fn is_start_line(error: httparse::Error) -> bool {
    matches!(
        error,
        httparse::Error::Token | httparse::Error::Version | httparse::Error::Status
    )
}

fn header_error(part: PartPosition, error: httparse::Error) -> BatchError {
    let detail = match error {
        httparse::Error::TooManyHeaders => format!("more than {MAX_HEADERS} headers"),
        other => other.to_string(),
    };
    BatchError::Header { part, detail }
}

/// The first line, lossily decoded and shortened for a message.
fn first_line(content: &[u8]) -> String {
    let line = content.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    match line.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|h| !h.name.is_empty())
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect()
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

fn push(out: &mut Vec<u8>, pieces: &[&str]) {
    for piece in pieces {
        out.extend_from_slice(piece.as_bytes());
    }
}

fn write_part<M: Message>(out: &mut Vec<u8>, boundary: &str, part: &Part<M>) {
    push(
        out,
        &[
            "--",
            boundary,
            "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
        ],
    );
    if let Some(id) = &part.content_id {
        push(out, &["Content-ID: ", id, "\r\n"]);
    }
    out.extend_from_slice(b"\r\n");
    part.message.write(out);
}

/// Headers, the blank line, the body, and the line break before the next
/// delimiter.
fn write_rest(out: &mut Vec<u8>, headers: &[(String, String)], body: &[u8]) {
    for (name, value) in headers {
        push(out, &[name, ": ", value, "\r\n"]);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
