//! Helpers shared by the test modules.

use dualwrite::plugin::json::parse_rows;
use dualwrite::plugin::{Batch, Context, Direction};

/// A batch from the JSON row format.
pub fn rows(json: &str) -> Batch {
    parse_rows(json).expect("test rows are valid")
}

/// A left-to-right context for `map` with these settings.
pub fn context(map: &str, settings: &[(&str, &str)]) -> Context {
    Context {
        table_map: map.into(),
        direction: Direction::LeftToRight,
        company: None,
        settings: settings
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    }
}
