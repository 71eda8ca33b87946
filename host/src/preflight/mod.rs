//! The preflight: checks against the live systems of a config file, before
//! go-live.
//!
//! - [`SystemTarget`]: how to reach one system of a config (service URL,
//!   client credentials, quick retries), shared with `map validate --live`.
//!
//! Boundary: the preflight reads the config and talks to the services
//! through the connectors; it writes nothing to either service and never
//! opens the checkpoint store.

mod target;

pub use target::{SystemTarget, TargetError, describe, quick_options, service_url};
