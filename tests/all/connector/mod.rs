//! The connectors against the emulators over real HTTP: reads, paging,
//! change tracking, writes and `$batch`, tokens, throttling and faults.

mod absurd_values;
mod dataverse;
mod finops;
mod identity;
mod resilience;
mod support;
mod tls;
