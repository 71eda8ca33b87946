//! Panics on any batch: the host must report the panic's message.

use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn explode(row: &mut Row) -> Outcome {
    let name = row.opt_text("name").ok().flatten().unwrap_or("nothing");
    if !name.is_empty() {
        panic!("hostile plugin gave up on {name}");
    }
    Outcome::Keep
}
