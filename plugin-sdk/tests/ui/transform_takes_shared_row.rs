use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn shout(row: &Row) -> Outcome {
    let _ = row;
    Outcome::Keep
}

fn main() {}
