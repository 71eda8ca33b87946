use dualwrite_plugin_sdk::prelude::*;

#[filter]
fn only(row: &mut Row) -> Outcome {
    let _ = row;
    Outcome::Keep
}

fn main() {}
