//! The echo history of one key on one side: the fingerprints of the host's
//! writes there not echoed yet, oldest first, each with the store id it was
//! recorded under (ids come from the same counter as queue sequence numbers,
//! so a write and a captured change can be ordered).
//!
//! Stored as entries of 40 bytes: the fingerprint, then the id (u64 BE).

/// How many writes are remembered per key: a side may report an older
/// write after the host wrote a newer one.
pub const ECHO_HISTORY: usize = 8;

const ENTRY: usize = 40;

/// One remembered write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The fingerprint of what was written.
    pub fingerprint: [u8; 32],
    /// When it was recorded, on the store's id counter.
    pub id: u64,
}

/// The entries of a stored history.
pub fn entries(stored: &[u8]) -> Vec<Written> {
    stored
        .chunks_exact(ENTRY)
        .map(|entry| {
            let mut fingerprint = [0u8; 32];
            fingerprint.copy_from_slice(&entry[..32]);
            let mut id = [0u8; 8];
            id.copy_from_slice(&entry[32..]);
            Written {
                fingerprint,
                id: u64::from_be_bytes(id),
            }
        })
        .collect()
}

fn encode(entries: &[Written]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY);
    for entry in entries {
        out.extend_from_slice(&entry.fingerprint);
        out.extend_from_slice(&entry.id.to_be_bytes());
    }
    out
}

/// The history with a write appended (the oldest dropped past
/// [`ECHO_HISTORY`]).
pub fn remember(stored: Option<&[u8]>, written: Written) -> Vec<u8> {
    let mut list = entries(stored.unwrap_or_default());
    list.push(written);
    let excess = list.len().saturating_sub(ECHO_HISTORY);
    encode(&list[excess..])
}

/// The history without the write that echoed and every older one: once a
/// write echoed, the writes before it will not echo any more.
pub fn consume(stored: &[u8], fingerprint: &[u8; 32]) -> Vec<u8> {
    let list = entries(stored);
    match list.iter().position(|e| &e.fingerprint == fingerprint) {
        Some(at) => encode(&list[at + 1..]),
        None => encode(&list),
    }
}

/// The history without the writes recorded before `seq`: a change the side
/// reported, captured at `seq`, was read after those writes had landed, so
/// the side will not report them again; a later change that hashes like
/// one of them is a user's edit.
pub fn supersede(stored: &[u8], seq: u64) -> Vec<u8> {
    let list: Vec<Written> = entries(stored).into_iter().filter(|e| e.id > seq).collect();
    encode(&list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(byte: u8, id: u64) -> Written {
        Written {
            fingerprint: [byte; 32],
            id,
        }
    }

    #[test]
    fn remember_keeps_the_newest_and_consume_drops_older() {
        let mut stored = Vec::new();
        for n in 0..10u8 {
            stored = remember(Some(&stored), w(n, u64::from(n)));
        }
        let list = entries(&stored);
        assert_eq!(list.len(), ECHO_HISTORY);
        assert_eq!(list[0], w(2, 2));
        let after = entries(&consume(&stored, &[5; 32]));
        assert_eq!(after.first(), Some(&w(6, 6)));
        assert_eq!(entries(&consume(&stored, &[42; 32])).len(), ECHO_HISTORY);
    }

    #[test]
    fn supersede_drops_writes_recorded_before_the_change() {
        let stored = encode(&[w(1, 10), w(2, 20), w(3, 30)]);
        assert_eq!(entries(&supersede(&stored, 20)), vec![w(3, 30)]);
        assert!(supersede(&stored, 99).is_empty());
    }
}
