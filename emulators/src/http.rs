//! HTTP plumbing shared by both emulators: the API error type, the
//! service-independent response type, and query option parsing.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use dualwrite::odata::{Filter, ODataError};

/// A request as the service logic sees it (also one part of a `$batch`).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Path below the service root, percent-decoded (e.g. `accounts(…)`).
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// The OAuth2 client the bearer token was issued to.
    pub client: Option<String>,
}

/// A response before it is turned into HTTP (or into a `$batch` part).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Status code.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(HeaderName, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// A non-JSON body with its content type (`$batch` responses).
    pub raw: Option<(String, Bytes)>,
}

impl ApiResponse {
    /// A JSON response.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }

    /// An empty response.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A `text/plain` body, as `$count` segments answer.
    pub fn text(status: StatusCode, text: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            raw: Some(("text/plain".to_string(), Bytes::from(text))),
        }
    }
}

/// An OData error with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {code} {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Service error code.
    pub code: String,
    /// Message naming the field or row at fault.
    pub message: String,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The response form of this error.
    pub fn to_response(&self) -> ApiResponse {
        let body =
            serde_json::to_value(ODataError::new(&self.code, &self.message)).unwrap_or(Value::Null);
        ApiResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: Some(body),
            raw: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_response().into_response()
    }
}

const JSON_TYPE: &str = "application/json; odata.metadata=minimal";

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(self.status)
            .header("OData-Version", "4.0");
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                builder = builder.header(name, v);
            }
        }
        let body = match (&self.body, self.raw) {
            (_, Some((content_type, bytes))) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            (Some(v), None) => {
                builder = builder.header(header::CONTENT_TYPE, JSON_TYPE);
                Body::from(serde_json::to_vec(v).unwrap_or_default())
            }
            (None, None) => Body::empty(),
        };
        builder
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// The system query options of a request.
#[derive(Debug, Default)]
pub struct QueryOptions {
    /// `$select`
    pub select: Option<Vec<String>>,
    /// `$filter`
    pub filter: Option<Filter>,
    /// `$orderby`: field and descending flag.
    pub orderby: Vec<(String, bool)>,
    /// `$top`
    pub top: Option<usize>,
    /// `$skip`
    pub skip: Option<usize>,
    /// `$count=true`
    pub count: bool,
    /// `$skiptoken`
    pub skiptoken: Option<String>,
    /// `$deltatoken`
    pub deltatoken: Option<String>,
    /// finops `cross-company=true`
    pub cross_company: bool,
    /// `$expand`, as written; each service reads it against its tables.
    pub expand: Option<String>,
}

/// Parses the query string; `code` is the service's bad-request code.
pub fn parse_query(query: &str, code: &str) -> Result<QueryOptions, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, code, m);
    let mut out = QueryOptions::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let number = |what: &str| {
            value.trim().parse::<usize>().map_err(|_| {
                bad(format!(
                    "{what} must be a non-negative whole number, got '{value}'"
                ))
            })
        };
        match name.as_ref() {
            "$select" => {
                out.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "$filter" => {
                out.filter = Some(Filter::parse(&value).map_err(|e| {
                    bad(format!(
                        "Syntax error at position {} in '{}': {}",
                        e.position, value, e.message
                    ))
                })?);
            }
            "$orderby" => {
                for part in value.split(',') {
                    let mut words = part.split_whitespace();
                    let Some(field) = words.next() else { continue };
                    let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(bad(format!(
                                "$orderby direction '{other}' is not asc or desc"
                            )));
                        }
                    };
                    out.orderby.push((field.to_string(), desc));
                }
            }
            "$top" => out.top = Some(number("$top")?),
            "$skip" => out.skip = Some(number("$skip")?),
            "$count" => out.count = value.eq_ignore_ascii_case("true"),
            "$skiptoken" => out.skiptoken = Some(value.into_owned()),
            "$deltatoken" => out.deltatoken = Some(value.into_owned()),
            "cross-company" => out.cross_company = value.eq_ignore_ascii_case("true"),
            "$expand" => out.expand = Some(value.into_owned()),
            "$apply" | "$search" => {
                return Err(bad(format!(
                    "the query option {name} is not supported by the emulator"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Orders JSON values the way `$orderby` does: nulls first, numbers by
/// value, strings without case.
pub fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The value of a request header, if it is valid text.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads `Prefer: odata.maxpagesize=N` and whether `token` is preferred.
pub fn prefer(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(token))
}

/// Whether `Prefer: odata.include-annotations="…"` asks for `annotation`:
/// by its name, by `*`, or by a namespace wildcard (`Microsoft.Dynamics.CRM.*`).
/// The preference's value is a quoted, comma-separated list.
pub fn includes_annotation(headers: &HeaderMap, annotation: &str) -> bool {
    const NAME: &str = "odata.include-annotations=";
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let at = v.to_ascii_lowercase().find(NAME)?;
            let rest = v.get(at + NAME.len()..)?;
            Some(match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
                None => rest.split(',').next().unwrap_or_default().to_owned(),
            })
        })
        .flat_map(|list| {
            list.split(',')
                .map(|p| p.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .any(|wanted| {
            wanted == "*"
                || wanted.eq_ignore_ascii_case(annotation)
                || wanted.strip_suffix('*').is_some_and(|space| {
                    annotation
                        .to_ascii_lowercase()
                        .starts_with(&space.to_ascii_lowercase())
                })
        })
}

/// `Prefer: odata.maxpagesize=N`.
pub fn max_page_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .trim()
                .parse()
                .ok()
        })
}
