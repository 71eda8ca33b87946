//! What a live map's refused save leaves: nothing. Dataverse rolls the
//! save back, so its change must not stay parked, and the version it
//! carried was never committed, so a later save may carry that version
//! again and must be queued.

use super::ops::{canon, flow, join, parse};
use super::{Action, CheckpointError, Checkpoints, Direction, Parked};

impl Checkpoints {
    /// The parked change `key` waits behind, if it is parked (and not
    /// resubmitted): one read, for a live save to refuse at once.
    pub fn parked_key(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<Option<Parked>, CheckpointError> {
        let slot = join(&[&flow(map, direction), &canon(key)]);
        match self.parked.get(&slot)? {
            Some(bytes) => {
                let parked: Parked = parse(&slot, &bytes)?;
                Ok((!parked.resubmitted).then_some(parked))
            }
            None => Ok(None),
        }
    }

    /// The live change `version` of `key` was parked and its save refused:
    /// the parked change is dropped (`discarded`, with the reason) and the
    /// version forgotten. Flushed.
    pub fn refuse_live(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
        version: &str,
    ) -> Result<(), CheckpointError> {
        self.discard_as(map, direction, key, Action::Discarded)?;
        self.forget_version(map, direction, key, version)
    }

    /// Forgets that `version` is the latest change captured for `key`, so
    /// that any version is queued next (the save that carried it was
    /// rolled back). Another latest version is left alone. Flushed.
    pub fn forget_version(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
        version: &str,
    ) -> Result<(), CheckpointError> {
        let slot = join(&[&flow(map, direction), &canon(key)]);
        let _ = self
            .latest
            .compare_and_swap(slot, Some(version.as_bytes()), None::<&[u8]>)?;
        self.db.flush()?;
        Ok(())
    }
}
