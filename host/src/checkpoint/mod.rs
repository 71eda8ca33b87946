//! What the sync engine must remember, checkpointed in sled: per map and
//! direction, the capture cursor, the durable queue of captured changes and
//! the intents of the writes in flight;
//! per map, side and key, the echo fingerprint of what the host last wrote;
//! the parked keys (the error queue); and the activity log.
//!
//! [`Checkpoints`] is the one handle. Its operations are the steps of the
//! checkpoint protocol, each one sled transaction, flushed before it returns:
//!
//! 1. Capture reads a page of changes from the source (delta link, a data
//!    event's re-read, a reconciliation read).
//! 2. [`Checkpoints::capture`]: in one transaction, append the page's changes
//!    to the queue (a version not newer than the latest captured for its
//!    key is skipped, so a page read twice after a crash is queued once)
//!    and store the new cursor. Flush.
//!    Only then may the caller acknowledge the source. A queue at its
//!    [`QueueLimits`] takes only what fits, and then keeps the old cursor:
//!    the source keeps the rest.
//!    [`Checkpoints::capture_seen`] is the same step for a side read by
//!    comparison (finops): in the same transaction it stores the hash of
//!    each row queued, or forgets it for a delete queued, so the next read
//!    compares against what was queued and a crash cannot separate them.
//! 3. [`Checkpoints::next_batch`]: the writer takes a batch from the head of
//!    the queue: at most one change per key (a key's later changes wait for
//!    the next batch, so order per key holds), none of a parked key.
//!    Before it sends the batch, [`Checkpoints::intend`]: in one
//!    transaction, the intent of each write (its change's seq and the
//!    fingerprint of the target's mapped fields it will leave). Flush.
//! 4. After the target confirmed the write, [`Checkpoints::complete`]: in one
//!    transaction, remove those changes and their intents, store each
//!    written row's echo fingerprint, and append the activity entries.
//!    Flush. A crash between 3 and 4 leaves the changes queued with their
//!    intents: before writing such a change again, the writer reads the
//!    target's row by key, and a row whose fingerprint is the intent's
//!    already holds the write: it is finished as written without being
//!    sent again (`intent.rs`), so each row is written once.
//!
//! [`fingerprint`] computes the echo fingerprints step 4 stores (the intents
//! of step 3 are the same fingerprints), and the
//! row hashes of `seen.rs`.
//!
//! A change that fails is parked ([`Checkpoints::park`]): its key's later
//! changes wait behind it while every other key flows, until
//! [`Checkpoints::resubmit`] or [`Checkpoints::discard`].
//!
//! A flow's queue as a whole (`queue.rs`): its length, counted per flow
//! without reading it ([`Checkpoints::queued`]); its oldest change waiting
//! ([`Checkpoints::oldest_queued`]); and every change of it parked or
//! dropped at once ([`Checkpoints::park_queued`],
//! [`Checkpoints::discard_queued`]), what a resume does with a paused map's
//! backlog when it is not replayed.
//! A change carries its [`Phase`]: read by a map's initial copy or live.
//! `initial.rs` keeps where each side's copy is (the last page of a copy
//! is queued in the transaction that marks it read,
//! [`Checkpoints::capture_copied`]), the failed rows of a copy
//! ([`Checkpoints::initial_failures`]) and its reruns.
//!
//! Key layout, version 2 (tree `meta` records `layout = 2`; version 1
//! stored finops row versions as versions, which the host's stamps that
//! replace them cannot be compared with, so a version 1 store is refused); `<flow>` is
//! `<map>\0<direction>`:
//! - tree `queue`: `<flow>\0<seq u64 BE>` → [`QueuedChange`] as JSON, with
//!   the time it was queued (`captured`; absent in entries of older builds)
//!   (how many entries each flow holds is counted when the store opens and
//!   kept in memory: no tree)
//! - tree `cursor`: `<flow>` → the source cursor
//! - tree `parked`: `<flow>\0<key>` → [`Parked`] as JSON (kept, marked
//!   resubmitted, until a write of the key succeeds)
//! - tree `echo`: `<map>\0<side>\0<key>` → the host's writes there not
//!   echoed yet, oldest first, at most [`ECHO_HISTORY`]: each a fingerprint
//!   (32 bytes) and the store id it was recorded under (u64 BE)
//! - tree `activity`: `<id u64 BE>` → [`Activity`] as JSON
//! - tree `latest`: `<flow>\0<key>` → the latest source version captured
//!   (an older version read again, say from polling after a webhook
//!   delivered it, is not queued twice)
//! - tree `by_key`: `<flow>\0<key>\0<seq u64 BE>` → nothing (the queued
//!   changes of one key, for conflict checks)
//! - tree `ids`: `<map>\0<side>\0<row id>` → key (a Dataverse delete names
//!   the row id only)
//! - tree `images`: `<map>\0<side>\0<key>` → the mapped fields last seen or
//!   written there, as JSON (the expected echo of the next write)
//! - tree `hashes`: `<map>\0<side>\0<key>` → the hash of the row as the
//!   side last showed it, the stamp of that read (u64 BE) and its key
//!   fields as JSON (`seen.rs`)
//! - tree `maps`: `<map>` → [`MapRecord`] as JSON: the map's state, since
//!   when, why, its initial sync and last error (`lifecycle.rs`)
//! - tree `initial`: each map's initial copy: per side where it is, its
//!   progress, the companies of its failed rows (`initial.rs`)
//! - tree `intent`: `<flow>\0<seq u64 BE>` → the fingerprint (32 bytes) a
//!   sent write will leave on the target, until its change is finished,
//!   parked or discarded (`intent.rs`). Added to layout 2 as it stands: a
//!   store without the tree has no intents, and a build before it ignores
//!   them (and writes such a batch again, as it always did).
//!
//! **Boundary**: this module stores and orders; it knows nothing of HTTP,
//! plugins or how a map shapes a row.

mod activity;
mod alerts;
mod applied;
mod echo;
mod errors;
mod fingerprint;
mod initial;
mod intent;
mod lifecycle;
mod live;
mod log;
mod ops;
mod plugins;
mod queue;
mod seen;
mod state;
mod tally;
mod versions;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use activity::{ErrorClass, ROW_CAP, Step, capped_row};
pub use alerts::{Outgoing, Slot};
pub use applied::Applied;
pub use echo::{ECHO_HISTORY, Written};
pub use errors::ParkedRow;
pub use fingerprint::fingerprint;
pub use initial::{CopyRun, CopyState, InitialFailure, SideCopy, Tally, TallyChange, Total};
pub use lifecycle::{Lifecycle, MapRecord, now};
pub use log::{LogFilter, LogLine, Pruned, Retention};
pub use ops::{Checkpoints, open_sled};
pub use plugins::PluginEntry;
pub use queue::{CHUNK, OldestQueued, QueueHold, QueueLimits};
pub use seen::{RowHash, Seen};
pub use versions::{MapVersion, definition_sha256};

/// The storage layout this build reads and writes.
pub const LAYOUT: &str = "2";

/// Errors of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// sled failed.
    #[error("checkpoint storage failed: {0}")]
    Sled(#[from] sled::Error),
    /// The data directory holds another layout.
    #[error(
        "the data directory uses checkpoint layout {found}; this build reads layout {LAYOUT}: run the matching dualwrite version or start from an empty directory"
    )]
    Layout {
        /// The layout found.
        found: String,
    },
    /// A stored value does not parse.
    #[error("the checkpoint entry {key} is corrupt: {detail}")]
    Corrupt {
        /// The entry's key, printable.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A change of a parked key was asked for that is not parked.
    #[error("key `{key}` of map `{map}` ({direction}) is not parked")]
    NotParked {
        /// The map.
        map: String,
        /// The direction.
        direction: Direction,
        /// The key.
        key: String,
    },
}

/// A direction of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Left to right.
    LeftToRight,
    /// Right to left.
    RightToLeft,
}

impl Direction {
    fn code(self) -> &'static str {
        match self {
            Direction::LeftToRight => ">",
            Direction::RightToLeft => "<",
        }
    }
}

impl Direction {
    /// Its name as stored and reported: `left-to-right`, `right-to-left`
    /// (its serde name).
    pub fn name(self) -> &'static str {
        match self {
            Direction::LeftToRight => "left-to-right",
            Direction::RightToLeft => "right-to-left",
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::LeftToRight => Direction::RightToLeft,
            Direction::RightToLeft => Direction::LeftToRight,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::LeftToRight => "left to right",
            Direction::RightToLeft => "right to left",
        })
    }
}

/// What happened to a row at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Created or updated.
    Upsert,
    /// Deleted.
    Delete,
}

/// A change captured from a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The row's integration key, canonical text (`usmf|US-001`).
    pub key: String,
    /// The source's version of the row (row version, `versionnumber`, …).
    pub version: String,
    /// What happened.
    pub operation: Operation,
    /// The row's fields as the source reported them (empty for a delete).
    pub row: Map<String, Value>,
    /// When the source says the row changed (RFC 3339), for last-writer-wins
    /// conflicts; the capture time when the source does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// A store id ([`Checkpoints::stamp`]) taken before the source was read:
    /// the host's writes recorded before it had landed when the row was
    /// read. 0 when unknown (a pushed event may describe any past moment).
    #[serde(default)]
    pub read_at: u64,
    /// Why capture could not read the row in full (the service refused a
    /// read its lookups needed): the change is parked with this, and a
    /// retry reads the row again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Whether the map's initial copy read it, or a live change did.
    #[serde(default, skip_serializing_if = "Phase::is_live")]
    pub phase: Phase,
}

/// Which part of a map's life captured a change: its initial copy (the
/// rows a side held when the copy read them) or a live change (read after
/// the copy read its row, or pushed). Between two initial-copy changes of
/// one key the map's master side wins; a live change beats an initial-copy
/// change of the other side; the conflict policy settles live against
/// live. Stored by its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A change after the copy read its row (the default: every change
    /// stored before there were phases was live).
    #[default]
    Live,
    /// A row as the map's initial copy read it (`initial-sync`).
    InitialSync,
}

impl Phase {
    /// Whether this is [`Phase::Live`].
    pub fn is_live(&self) -> bool {
        *self == Phase::Live
    }
}

/// `(side, key, image)`: the mapped fields on one side, `None` for none.
pub type Image<'a> = (&'a str, &'a str, Option<Map<String, Value>>);

/// What [`Checkpoints::finish`] records for a batch the target confirmed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish<'a> {
    /// The changes done (written, skipped, or dropped as echoes).
    pub done: &'a [QueuedChange],
    /// Changes of the other direction of the map settled with this batch
    /// (the rivals a written change won against, or rivals that agreed):
    /// removed from that direction's queue in the same transaction.
    pub rivals: &'a [QueuedChange],
    /// `(side, key, fingerprint)` of each row written: added to the key's
    /// echo history.
    pub echoes: &'a [(&'a str, &'a str, [u8; 32])],
    /// `(side, key, fingerprint)` of each echo recognised: that write and
    /// the ones before it leave the history.
    pub consumed: &'a [(&'a str, &'a str, [u8; 32])],
    /// `(side, key, seq)` of each change a side reported that was not an
    /// echo: the writes recorded before its capture leave the history.
    pub superseded: &'a [(&'a str, &'a str, u64)],
    /// `(side, key, image)`: the mapped fields now on that side; `None`
    /// forgets the key (deleted).
    pub images: &'a [Image<'a>],
    /// `(side, row id, key)` of rows written whose id the target named, so
    /// that a delete reported by id finds its key.
    pub ids: &'a [(&'a str, &'a str, &'a str)],
    /// Activity lines.
    pub activity: &'a [Activity],
}

/// A change waiting in a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedChange {
    /// Its place in the queue.
    pub seq: u64,
    /// The change.
    pub change: Change,
    /// When the store queued it; `None` in an entry queued by a build
    /// that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<DateTime<Utc>>,
}

/// A parked key: the change that failed and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    /// The failed change's place in the queue.
    pub seq: u64,
    /// Why it failed.
    pub reason: String,
    /// How many times it was tried (0: parked untried, with its flow's
    /// queue, [`Checkpoints::park_queued`]).
    pub attempts: u32,
    /// Resubmitted: the key flows again, and the count of attempts is kept
    /// until a write of the key succeeds.
    #[serde(default)]
    pub resubmitted: bool,
    /// The key as the source wrote it (the store indexes keys in lower
    /// case).
    #[serde(default)]
    pub key: String,
    /// The phase of the change that failed: `initial-sync` for a row of the
    /// map's initial copy ([`Checkpoints::initial_failures`]).
    #[serde(default)]
    pub phase: Phase,
    /// When it was parked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Parked as a paused map caught up: by `resume --queued park`, or
    /// failed while the map replayed its queue (`resuming`).
    #[serde(default)]
    pub catch_up: bool,
}

impl Parked {
    /// `live`, `catch-up` or `initial-sync`: when in the map's life the
    /// change failed.
    pub fn phase_name(&self) -> &'static str {
        match (self.phase, self.catch_up) {
            (Phase::InitialSync, _) => "initial-sync",
            (Phase::Live, true) => "catch-up",
            (Phase::Live, false) => "live",
        }
    }
}

/// What became of a change: the typed outcome the engine decides, counts,
/// logs and reports. Stored in the activity log by its kebab-case name
/// (`written`, `conflict-lost`, …), which never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Upserted on the target.
    Written,
    /// Deleted on the target (a source delete, or a row leaving the filter).
    Deleted,
    /// The host's own write reported back by the side it wrote: dropped.
    Echo,
    /// Outside the map's filter or companies: not sent.
    Filtered,
    /// Nothing to send (no mapped field changed, both sides agree, a
    /// plugin skipped it, older than a row read again, no usable key).
    Skipped,
    /// Lost a conflict to the other side's change, or was superseded by the
    /// host's own write.
    ConflictLost,
    /// Parked in the error queue, with its later changes behind it.
    Parked,
    /// Waits for a row its lookup points at (reported, not logged).
    Waiting,
    /// Dropped by an admin: a parked change, or a paused map's queued
    /// changes on resume.
    Discarded,
    /// A parked change resubmitted by an admin: it runs again through the
    /// map as it is now.
    Retried,
    /// A parked change an admin ended without writing it (`errors
    /// dismiss`); the changes behind it flow.
    Dismissed,
    /// An alert rule's condition began to hold for the map (the line's
    /// key is the rule).
    Fired,
    /// An alert rule's condition no longer holds for the map.
    Resolved,
    /// A notification was delivered to a webhook.
    Notified,
    /// An attempt to deliver a notification failed; it is tried again.
    Undelivered,
}

impl Action {
    /// The name the log stores and people read: `written`, `conflict-lost`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Written => "written",
            Action::Deleted => "deleted",
            Action::Echo => "echo",
            Action::Filtered => "filtered",
            Action::Skipped => "skipped",
            Action::ConflictLost => "conflict-lost",
            Action::Parked => "parked",
            Action::Waiting => "waiting",
            Action::Discarded => "discarded",
            Action::Retried => "retried",
            Action::Dismissed => "dismissed",
            Action::Fired => "fired",
            Action::Resolved => "resolved",
            Action::Notified => "notified",
            Action::Undelivered => "undelivered",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The map.
    pub map: String,
    /// The direction; none for a line of no flow (an alert, a
    /// notification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The row's key (an alert's line: the rule's name).
    pub key: String,
    /// What was done.
    pub what: Action,
    /// Details for people: for an error, its message.
    pub detail: String,
    /// When (RFC 3339, milliseconds); set as the line is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The step that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    /// For an error, its class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
    /// The row as it was, capped at [`ROW_CAP`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Value>,
    /// The version of the map's definition that produced it (see
    /// `Checkpoints::register_map_version`); set as the line is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_version: Option<u32>,
    /// The plugins (`name@version`) of that version's chain; set as the
    /// line is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

impl Activity {
    /// A line of `what` for `key`, nothing more said yet (but that a
    /// change that lost to the other side's is of class `conflict`, as
    /// dual-write's error classes count it).
    pub fn new(
        map: &str,
        direction: Direction,
        key: &str,
        what: Action,
        detail: String,
    ) -> Activity {
        Activity {
            map: map.to_owned(),
            direction: Some(direction),
            key: key.to_owned(),
            what,
            detail,
            at: Some(now()),
            step: None,
            class: (what == Action::ConflictLost).then_some(ErrorClass::Conflict),
            row: None,
            map_version: None,
            plugins: Vec::new(),
        }
    }

    /// A line of alert rule `rule` for `map` (empty: no map), of no flow,
    /// its step `alert`.
    pub fn alert(map: &str, rule: &str, what: Action, detail: String) -> Activity {
        Activity {
            map: map.to_owned(),
            direction: None,
            key: rule.to_owned(),
            what,
            detail,
            at: Some(now()),
            step: Some(Step::Alert),
            class: None,
            row: None,
            map_version: None,
            plugins: Vec::new(),
        }
    }

    /// The step that decided it.
    pub fn step(mut self, step: Step) -> Activity {
        self.step = Some(step);
        self
    }

    /// An error of `class`.
    pub fn class(mut self, class: ErrorClass) -> Activity {
        self.class = Some(class);
        self
    }

    /// The row as it was (capped).
    pub fn row(mut self, row: &Map<String, Value>) -> Activity {
        if !row.is_empty() {
            self.row = Some(capped_row(row));
        }
        self
    }
}
