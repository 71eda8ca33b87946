//! Returns one outcome fewer than the rows it was given: the host must
//! refuse the batch result.

#[cfg(target_arch = "wasm32")]
mod component {
    use dualwrite_plugin_sdk::bindings::transform_world::exports::dualwrite::plugin::transform::Guest;
    use dualwrite_plugin_sdk::bindings::types::{Batch, Context, Outcome, Transformed};

    struct ShortChanged;

    impl Guest for ShortChanged {
        fn reads(_: Context) -> Option<Vec<String>> {
            None
        }

        fn transform(_: Context, batch: Batch) -> Transformed {
            let rows = (batch.rows as usize).saturating_sub(1);
            Transformed {
                fields: batch.fields,
                text: String::new(),
                references: Vec::new(),
                outcomes: vec![Outcome::Unchanged; rows],
                changes: Vec::new(),
            }
        }
    }

    dualwrite_plugin_sdk::bindings::transform_world::__export_transform_world!(
        ShortChanged with_types_in dualwrite_plugin_sdk::bindings::transform_world
    );
}
