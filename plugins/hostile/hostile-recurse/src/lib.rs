//! Recurses until the stack overflows: the host's stack cap must stop it.

use dualwrite_plugin_sdk::prelude::*;

#[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
fn deeper(depth: u64, trail: &mut [u64; 16]) -> u64 {
    let mut local = *trail;
    local[(depth % 16) as usize] = depth;
    std::hint::black_box(&mut local);
    deeper(depth + 1, &mut local).wrapping_add(local[0])
}

#[transform]
fn recurse(row: &mut Row) -> Outcome {
    let depth = deeper(0, &mut [0; 16]);
    row.set("depth", depth as i64);
    Outcome::Keep
}
