//! The connectors against the emulators over real HTTP: reads, paging,
//! change tracking, writes and `$batch`, tokens (a secret or a certificate,
//! the token endpoint's redirects, expiry, 401s and timeouts), throttling
//! and faults.

mod absurd_values;
mod count;
mod dataverse;
mod finops;
mod identity;
mod preflight;
mod resilience;
mod steps;
mod support;
mod tls;
