use dualwrite_plugin_sdk::prelude::*;

#[transform(fast)]
fn with_args(row: &mut Row) -> Outcome {
    let _ = row;
    Outcome::Keep
}

#[filter]
async fn later(row: &Row) -> Outcome {
    let _ = row;
    Outcome::Keep
}

#[filter]
fn three(row: &Row, ctx: &Context, extra: u32) -> Outcome {
    let _ = (row, ctx, extra);
    Outcome::Keep
}

fn main() {}
