//! Reads the wall clock through WASI: the host links no WASI and must refuse
//! to load it, naming the import. (Built against the released contract
//! 0.1.0: the import is refused whatever the contract's version.)

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: ["../../../wit/v0.1.0", "wit"],
        world: "hostile:wasi/plugin",
        generate_all,
    });

    use dualwrite::plugin::types::{Batch, Context, Outcome, Transformed};
    use exports::dualwrite::plugin::transform::Guest;

    struct Clocked;

    impl Guest for Clocked {
        fn transform(_: Context, batch: Batch) -> Transformed {
            let now = wasi::clocks::wall_clock::now();
            let outcomes = batch
                .rows
                .iter()
                .map(|_| Outcome::Skip(format!("it is {} o'clock", now.seconds)))
                .collect();
            Transformed {
                fields: batch.fields,
                outcomes,
            }
        }
    }

    export!(Clocked);
}
