//! Logs a million lines for every row: the host must cap what reaches its
//! log and carry on.

use dualwrite_plugin_sdk::log;
use dualwrite_plugin_sdk::prelude::*;

#[filter]
fn chatter(_row: &Row) -> Outcome {
    let line = "x".repeat(4096);
    for _ in 0..1_000_000 {
        log::info(&line);
    }
    Outcome::Keep
}
