//! The engine's errors, typed by what they decide: [`SyncError`] stops the
//! engine at start or a map while it runs; [`FlowError`] is what a read or
//! a batch failed with, and says whether to retry it
//! ([`FlowError::is_retriable`]) or stop the map with its message.

use crate::checkpoint::CheckpointError;
use crate::connector::ConnectorError;

/// Errors that stop the engine at start, or one map while it runs
/// (row-level problems park rows instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The engine cannot start as configured.
    #[error("cannot start the sync engine: {detail}")]
    Setup {
        /// What is wrong and what to do.
        detail: String,
    },
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A map was asked for that the engine does not run.
    #[error("map `{map}` is not one of the maps this engine runs")]
    UnknownMap {
        /// The name asked for.
        map: String,
    },
}

/// Why a read of a source or a batch did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    /// A service call failed; whatever was read or taken stays where it was
    /// and is tried again with backoff.
    #[error(transparent)]
    Service(#[from] ConnectorError),
    /// Parts of a `$batch` were throttled or failed in the service (408,
    /// 429, 5xx): those rows stay queued and the batch is tried again (a
    /// row failed so `WRITE_ATTEMPTS` times in a row is parked instead).
    #[error(
        "{count} of {total} writes were not applied (first: {first}); they stay queued and are tried again"
    )]
    NotApplied {
        /// Rows not applied.
        count: usize,
        /// Rows sent.
        total: usize,
        /// The first of them, with the service's status and message.
        first: String,
    },
    /// The checkpoint store failed (a corrupt entry, a full disk): nothing
    /// can be recorded, so the map stops with this message.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl FlowError {
    /// Whether trying again may succeed: service faults and throttling are
    /// retried, a failing checkpoint store stops the map.
    pub(crate) fn is_retriable(&self) -> bool {
        match self {
            FlowError::Service(_) | FlowError::NotApplied { .. } => true,
            FlowError::Checkpoint(_) => false,
        }
    }
}
