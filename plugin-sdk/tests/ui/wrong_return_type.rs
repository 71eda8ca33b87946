use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn shout(row: &mut Row) -> bool {
    let _ = row;
    true
}

fn main() {}
