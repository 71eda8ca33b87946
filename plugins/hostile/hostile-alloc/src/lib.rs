//! Allocates without bound: the host's memory cap must stop it.

use dualwrite_plugin_sdk::prelude::*;

#[transform]
fn hoard(row: &mut Row) -> Outcome {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        if std::hint::black_box(hoard.len()) == usize::MAX {
            break;
        }
    }
    row.set("kept", hoard.len() as i64);
    Outcome::Keep
}
