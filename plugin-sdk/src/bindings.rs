//! The generated bindings of `wit/plugin.wit` (`dualwrite:plugin@0.2.0`),
//! the only place the SDK invokes `wit_bindgen::generate!`.
//!
//! Two worlds are generated, one per export: a plugin crate that uses
//! `#[filter]` links the first, `#[transform]` the second, both links both.
//! They share one set of types (`types`) and one `host` import through
//! `with`, so a wire [`Value`](types::Value) is the same Rust type everywhere.
//! Plugin authors never see the wire types' text spans: [`Row`](crate::Row)
//! reads them and [`Value`](crate::Value) is the owned form.
//!
//! Each generation also embeds a `component-type` custom section describing
//! its world. The plugin build (`cargo xtask plugins`) replaces those with the
//! one world that matches what the module really exports, so a filter-only
//! plugin becomes a `filter-plugin` component, not a union of both worlds.

/// The `filter-plugin` world: the shared `types` and `host` modules and the
/// `filter` export.
pub mod filter_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "dualwrite:plugin/filter-plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "::dualwrite_plugin_sdk::bindings::filter_world",
        runtime_path: "::dualwrite_plugin_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Clone],
    });
}

/// The `transform-plugin` world: the `transform` export, on the types of
/// [`filter_world`].
pub mod transform_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "dualwrite:plugin/transform-plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "::dualwrite_plugin_sdk::bindings::transform_world",
        runtime_path: "::dualwrite_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "dualwrite:plugin/types@0.2.0": crate::bindings::types,
            "dualwrite:plugin/host@0.2.0": crate::bindings::host,
        },
    });
}

pub use filter_world::dualwrite::plugin::{host, types};
