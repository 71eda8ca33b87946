//! The error queue as an admin works it: every parked key of the maps
//! named, each with its failed change; a retry (the key flows again,
//! through the map as it is now, its failed change first) and a dismiss
//! (the failed change dropped, the changes behind it flow), each with an
//! activity line.

use super::ops::{canon, flow, join, parse};
use super::{
    Action, Activity, CheckpointError, Checkpoints, Direction, Finish, Parked, QueuedChange, Step,
};

/// One parked key of the error queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedRow {
    /// The map.
    pub map: String,
    /// The direction whose change failed.
    pub direction: Direction,
    /// The row's key.
    pub key: String,
    /// Why, since when, how often.
    pub parked: Parked,
}

impl Checkpoints {
    /// The parked keys of `maps`, both directions, in the order they were
    /// queued.
    pub fn error_queue(&self, maps: &[&str]) -> Result<Vec<ParkedRow>, CheckpointError> {
        let mut rows = Vec::new();
        for map in maps {
            for direction in [Direction::LeftToRight, Direction::RightToLeft] {
                for (key, parked) in self.parked(map, direction)? {
                    rows.push(ParkedRow {
                        map: (*map).to_owned(),
                        direction,
                        key,
                        parked,
                    });
                }
            }
        }
        rows.sort_by_key(|row| row.parked.seq);
        Ok(rows)
    }

    /// The failed change of a parked key, as it waits in the queue (`None`
    /// when the queue no longer holds it: a park of a change whose later
    /// change replaced it).
    pub fn parked_change(
        &self,
        map: &str,
        direction: Direction,
        seq: u64,
    ) -> Result<Option<QueuedChange>, CheckpointError> {
        let entry = join(&[&flow(map, direction), &seq.to_be_bytes()]);
        match self.queue_tree().get(&entry)? {
            Some(bytes) => Ok(Some(parse(&entry, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Retries a parked key: its failed change and those behind it flow
    /// again, in order, through the map as it is now; an activity line
    /// (`retried`) says so. Flushed.
    pub fn retry(&self, map: &str, direction: Direction, key: &str) -> Result<(), CheckpointError> {
        let slot = join(&[&flow(map, direction), &canon(key)]);
        let parked = self.still_parked(&slot, map, direction, key)?;
        self.resubmit(map, direction, key)?;
        let line = Activity::new(
            map,
            direction,
            key,
            Action::Retried,
            format!(
                "resubmitted after {} attempt{}: {}",
                parked.attempts,
                if parked.attempts == 1 { "" } else { "s" },
                parked.reason
            ),
        )
        .step(Step::Admin);
        self.finish(
            map,
            direction,
            &Finish {
                activity: std::slice::from_ref(&line),
                ..Finish::default()
            },
        )
    }

    /// Dismisses a parked key: its failed change is dropped without a
    /// write (`dismissed`, with the reason it failed), and the changes
    /// behind it flow. Flushed.
    pub fn dismiss(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<(), CheckpointError> {
        self.discard_as(map, direction, key, Action::Dismissed)
    }
}
