//! Loops forever on any batch: the host's deadline must stop it.

use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn spin(row: &mut Row) -> Outcome {
    let mut n = row.opt_integer("n").ok().flatten().unwrap_or(1);
    loop {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
        if n == i64::MIN + 12345 {
            break;
        }
    }
    row.set("n", n);
    Outcome::Keep
}
