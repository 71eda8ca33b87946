//! What an activity line says beyond its outcome: the step of the pipeline
//! that decided it ([`Step`]), the class of an error ([`ErrorClass`], the
//! classes dual-write's asynchronous mode reports), and the row as it was,
//! capped ([`capped_row`]).

use serde::{Deserialize, Serialize};

/// The step that decided a change's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Step {
    /// Reading the source (a row without a usable key, say).
    Capture,
    /// The host's own write reported back.
    Echo,
    /// Two sides' changes of one key settled by the map's policy.
    Conflict,
    /// The map's filter or companies.
    Filter,
    /// The map's field mappings.
    Mapping,
    /// A plugin: `NAME@VERSION`.
    Plugin(String),
    /// Resolving a lookup to the other side's row.
    Lookup,
    /// The write to the target.
    Write,
    /// An admin's operation (retry, dismiss, park, discard).
    Admin,
    /// An alert rule and its notifications.
    Alert,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Capture => f.write_str("capture"),
            Step::Echo => f.write_str("echo"),
            Step::Conflict => f.write_str("conflict"),
            Step::Filter => f.write_str("filter"),
            Step::Mapping => f.write_str("mapping"),
            Step::Plugin(id) => write!(f, "plugin {id}"),
            Step::Lookup => f.write_str("lookup"),
            Step::Write => f.write_str("write"),
            Step::Admin => f.write_str("admin"),
            Step::Alert => f.write_str("alert"),
        }
    }
}

impl From<Step> for String {
    fn from(step: Step) -> String {
        step.to_string()
    }
}

impl From<String> for Step {
    fn from(text: String) -> Step {
        match text.as_str() {
            "capture" => Step::Capture,
            "echo" => Step::Echo,
            "conflict" => Step::Conflict,
            "filter" => Step::Filter,
            "mapping" => Step::Mapping,
            "lookup" => Step::Lookup,
            "write" => Step::Write,
            "admin" => Step::Admin,
            "alert" => Step::Alert,
            _ => Step::Plugin(text.strip_prefix("plugin ").unwrap_or(&text).to_owned()),
        }
    }
}

/// The class of an error, as dual-write's asynchronous mode reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The data or a rule refuses the row: fix the row, the map or the
    /// rule, then retry.
    Application,
    /// The service or the connection failed: retried.
    System,
    /// A stale version (a precondition failed).
    Concurrency,
    /// Two sides changed the row.
    Conflict,
}

impl ErrorClass {
    /// `application`, `system`, `concurrency` or `conflict`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Application => "application",
            ErrorClass::System => "system",
            ErrorClass::Concurrency => "concurrency",
            ErrorClass::Conflict => "conflict",
        }
    }

    /// The class of a refusal with HTTP `status`: 412 is a stale version,
    /// 408, 429 and 5xx the service's own trouble, any other the data's.
    pub fn of_status(status: u16) -> ErrorClass {
        match status {
            412 => ErrorClass::Concurrency,
            408 | 429 | 500..=599 => ErrorClass::System,
            _ => ErrorClass::Application,
        }
    }
}

/// The most of a row an activity line keeps, in bytes of JSON.
pub const ROW_CAP: usize = 4096;

/// `row` as JSON, or, over [`ROW_CAP`] bytes, its first fields that fit
/// and `"…": "N more bytes"`.
pub fn capped_row(row: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let full = serde_json::Value::Object(row.clone());
    let size = full.to_string().len();
    if size <= ROW_CAP {
        return full;
    }
    let mut kept = serde_json::Map::new();
    let mut used = 2;
    for (field, value) in row {
        let cost = field.len() + value.to_string().len() + 4;
        if used + cost > ROW_CAP - 64 {
            break;
        }
        used += cost;
        kept.insert(field.clone(), value.clone());
    }
    kept.insert(
        "…".to_owned(),
        serde_json::Value::String(format!("{} more bytes", size.saturating_sub(used))),
    );
    serde_json::Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_back_as_written() {
        for step in [
            Step::Capture,
            Step::Echo,
            Step::Conflict,
            Step::Filter,
            Step::Mapping,
            Step::Plugin("phone-normalize@0.1.0".into()),
            Step::Lookup,
            Step::Write,
            Step::Admin,
            Step::Alert,
        ] {
            let text = serde_json::to_string(&step).expect("serializes");
            assert_eq!(serde_json::from_str::<Step>(&text).expect("parses"), step);
        }
        assert_eq!(
            Step::Plugin("p@1".into()).to_string(),
            "plugin p@1",
            "as the issue names it"
        );
    }

    #[test]
    fn a_large_row_is_capped() {
        let mut row = serde_json::Map::new();
        for n in 0..500 {
            row.insert(format!("field{n}"), serde_json::json!("x".repeat(20)));
        }
        let capped = capped_row(&row);
        assert!(
            capped.to_string().len() <= ROW_CAP,
            "{}",
            capped.to_string().len()
        );
        assert!(
            capped["…"]
                .as_str()
                .is_some_and(|s| s.ends_with("more bytes"))
        );
        let small = serde_json::Map::from_iter([("a".to_owned(), serde_json::json!(1))]);
        assert_eq!(capped_row(&small), serde_json::json!({"a": 1}));
    }

    #[test]
    fn statuses_have_their_class() {
        assert_eq!(ErrorClass::of_status(412), ErrorClass::Concurrency);
        assert_eq!(ErrorClass::of_status(429), ErrorClass::System);
        assert_eq!(ErrorClass::of_status(503), ErrorClass::System);
        assert_eq!(ErrorClass::of_status(400), ErrorClass::Application);
    }
}
