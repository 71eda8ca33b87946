//! Command-line shells over the library: each subcommand parses its
//! arguments and calls the same library API the admin surfaces use.

pub mod emulate;
