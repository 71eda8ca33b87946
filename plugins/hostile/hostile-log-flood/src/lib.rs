//! Logs a hundred thousand lines for every row: the host must cap what reaches its
//! log and carry on.

use dualwrite_plugin_sdk::log;
use dualwrite_plugin_sdk::prelude::*;

#[filter]
fn chatter(_row: &Row) -> Outcome {
    let line = "x".repeat(1024);
    for _ in 0..100_000 {
        log::info(&line);
    }
    Outcome::Keep
}
