//! Echo fingerprints as the engine reads them: which of the host's writes
//! to a side a change of that side is the echo of, and the marks that
//! identify a written row or a delete. Shared by the pipeline and the
//! conflict policy.

use crate::checkpoint::{Change, Operation, Written, fingerprint};

use super::shape::Row;

/// The index in `writes` (the host's writes to the change's side, oldest
/// first) of the write `change` is the echo of, if any. Only the writes that
/// may not have landed when the row was read can come back: the last one
/// recorded before the read, and later ones.
pub(super) fn echoed_write(
    writes: &[Written],
    change: &Change,
    echo_fields: &[String],
) -> Option<usize> {
    let from = writes
        .iter()
        .rposition(|w| w.id < change.read_at)
        .unwrap_or(0);
    let mark = mark_of(&change.operation, &change.row, echo_fields);
    writes[from..]
        .iter()
        .position(|w| w.fingerprint == mark)
        .map(|at| from + at)
}

/// The echo fingerprint of a change: its row over the echo fields, or the
/// deleted mark.
pub(super) fn mark_of(operation: &Operation, row: &Row, echo_fields: &[String]) -> [u8; 32] {
    match operation {
        Operation::Upsert => fingerprint(row, echo_fields.iter().map(String::as_str)),
        Operation::Delete => deleted_mark(),
    }
}

/// The fingerprint recorded for a row the host deleted.
pub(super) fn deleted_mark() -> [u8; 32] {
    fingerprint(&Row::new(), ["\0deleted"])
}
