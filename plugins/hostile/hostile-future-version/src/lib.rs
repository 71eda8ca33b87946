//! Exports `dualwrite:plugin/transform@0.3.0`, a contract this host does not
//! know: the host must refuse it and say which version it was built for.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "wit",
        world: "dualwrite:plugin/transform-plugin@0.3.0",
    });

    struct Future;

    impl exports::dualwrite::plugin::transform::Guest for Future {
        fn transform(fields: Vec<String>) -> Vec<String> {
            fields
        }
    }

    export!(Future);
}
