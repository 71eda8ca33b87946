//! Echo fingerprints as the engine reads them: which of the host's writes
//! to a side a change of that side is the echo of, and the marks that
//! identify a written row or a delete. Shared by the pipeline and the
//! conflict policy.

use crate::checkpoint::{Change, Operation, Written, fingerprint};

use super::shape::Row;

/// The index in `writes` (the host's writes to the change's side, oldest
/// first) of the write `change` is the echo of, if any. Only the writes that
/// may not have landed when the row was read can come back: the last one
/// recorded before the read, and later ones. A delete is reported of the
/// row id it removed, also when a later write made the key's row again
/// under a new id (Dataverse's change tracking then reports both, the old
/// id's delete and the new row), so the last delete recorded before the
/// read can come back too. (An upsert by alternate key of a missing row
/// creates a new record:
/// <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/use-upsert-insert-update-record>;
/// change tracking reports a removed record by its id:
/// <https://learn.microsoft.com/en-us/training/modules/dataverse-web-api/change-tracking>.)
pub(super) fn echoed_write(
    writes: &[Written],
    change: &Change,
    echo_fields: &[String],
) -> Option<usize> {
    let mark = mark_of(&change.operation, &change.row, echo_fields);
    let before_read = |w: &Written| w.id < change.read_at;
    let last = writes.iter().rposition(before_read);
    let from = match change.operation {
        Operation::Delete => writes
            .iter()
            .rposition(|w| before_read(w) && w.fingerprint == mark)
            .or(last),
        Operation::Upsert => last,
    }
    .unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::checkpoint::Phase;

    fn change(operation: Operation, name: Option<&str>, read_at: u64) -> Change {
        let row = name
            .map(|n| json!({"name": n}).as_object().cloned().unwrap_or_default())
            .unwrap_or_default();
        Change {
            key: "A-1".into(),
            version: "1".into(),
            operation,
            row,
            modified: None,
            read_at,
            unreadable: None,
            phase: Phase::Live,
        }
    }

    fn write(name: Option<&str>, id: u64) -> Written {
        let fields = ["name".to_owned()];
        let fingerprint = match name {
            Some(_) => mark_of(
                &Operation::Upsert,
                &change(Operation::Upsert, name, 0).row,
                &fields,
            ),
            None => deleted_mark(),
        };
        Written { fingerprint, id }
    }

    #[test]
    fn a_delete_read_after_the_row_was_made_again_is_the_echo_of_the_delete() {
        let fields = ["name".to_owned()];
        // The host wrote v1, deleted the row, and made it again (a new id
        // on Dataverse); one read after all three reports the old id's
        // delete and the new row.
        let writes = [
            write(Some("v1"), 10),
            write(None, 11),
            write(Some("v2"), 12),
        ];
        let delete = change(Operation::Delete, None, 13);
        assert_eq!(echoed_write(&writes, &delete, &fields), Some(1));
        // Once the delete echoed, it and the older writes are gone.
        let made_again = change(Operation::Upsert, Some("v2"), 13);
        assert_eq!(echoed_write(&writes[2..], &made_again, &fields), Some(0));
        // A delete of the new row after that is a user's.
        assert_eq!(echoed_write(&writes[2..], &delete, &fields), None);
        // An upsert still matches only the last write before its read and
        // later ones: v1 read again after v2 landed is a user's edit.
        let old_value = change(Operation::Upsert, Some("v1"), 13);
        assert_eq!(echoed_write(&writes, &old_value, &fields), None);
    }
}
