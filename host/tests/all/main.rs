//! Integration tests of the `dualwrite` crate: its command line, run as a
//! real process.

mod cli_plugin;
