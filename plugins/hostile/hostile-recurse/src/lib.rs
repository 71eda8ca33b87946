//! Recurses until the stack overflows: the host's stack cap must stop it.
//!
//! The recursion keeps everything in wasm locals (no address is taken), so it
//! is the engine's stack, not the guest's shadow stack in linear memory, that
//! runs out; two calls per level keep the compiler from making it a loop.

use dualwrite_plugin_sdk::prelude::*;

fn deeper(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    deeper(depth + 1)
        .wrapping_add(deeper(depth + 2))
        .rotate_left(1)
}

#[transform]
fn recurse(row: &mut Row) -> Outcome {
    let start = row.opt_integer("n").ok().flatten().unwrap_or(0) as u64;
    row.set("depth", deeper(start) as i64);
    Outcome::Keep
}
