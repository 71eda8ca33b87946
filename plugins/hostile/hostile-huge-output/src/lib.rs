//! Returns about 24 MiB of text for any batch: the host must refuse an output
//! over its cap rather than take it in.

use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn swell(row: &mut Row) -> Outcome {
    for field in 0..24 {
        row.set(&format!("padding{field}"), "x".repeat(1 << 20));
    }
    Outcome::Keep
}
