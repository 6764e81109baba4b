//! The commit policy: how one write transaction reaches the disk. Pure: no I/O (the caller
//! measures the journal, the held pages and the file and passes the numbers in), so every rule
//! is a row of the table test below. [`Store::write_journaled`](crate::Store) acts on the
//! [`Decision`].
//!
//! Rules (`ENCODING.md` § Durability and § 7):
//! - A write with a journal record, while a journal is open, is journaled (a redb
//!   `Durability::None` commit, then the record appended) unless a fold is due, checked in
//!   this order: `fold_after` commits journaled since the last durable one, [`MAX_HELD_BYTES`]
//!   of redb pages held in RAM, the journal too full for this record, or the file near the
//!   size cap (or its size unknown). The record is fsynced, except a `DeferredMarks` mark's,
//!   which waits for the next fsynced record or is fsynced as the `max_unsynced`-th in a row.
//! - A write without a record after journaled commits folds them (a durable commit).
//! - Otherwise `Periodic` defers all but every `max_unsynced + 1`-th commit (never a
//!   maintenance one); `Immediate` and `DeferredMarks` commit durably (their marks wait in
//!   memory, `Writer::marks`, not in redb non-durable commits: those cost nearly as many
//!   pages as durable ones once the next fsync writes them).

use crate::Durability;
use crate::journal;

/// Bytes of redb pages held in RAM at which the next journaled commit folds instead. 576 KiB:
/// with the agent's 64 KiB redb cache, redb hands pages that its transaction frees again to the
/// backend sooner, and at 448 KiB the agent folded a quarter more often (5 folds in 20 min
/// instead of 4, +4 % bytes written); at 576 the fold rate and the bytes are those of the
/// 256 KiB cache (docs/benchmarks.md, "a smaller redb cache").
pub(crate) const MAX_HELD_BYTES: u64 = 576 << 10;

/// Bytes an appended record takes in the journal besides its payload (header and checksum),
/// with room to spare.
const RECORD_OVERHEAD: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Data,
    Mark,
    /// Retention and the size cap: always fsynced, which also makes the pages that earlier
    /// deferred commits freed reusable before the cap is measured.
    Maintenance,
}

/// What the policy knows about one write, just before its transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Input {
    pub kind: Kind,
    pub durability: Durability,
    /// `StoreOptions::fold_after`.
    pub fold_after: u32,
    /// `StoreOptions::max_size_bytes`.
    pub max_size_bytes: u64,
    /// Bytes of the open journal in use; `None`: no journal.
    pub journal_used: Option<u64>,
    /// Payload bytes of the write's journal record; `None`: the write has no record.
    pub record_len: Option<u64>,
    /// Commits made with redb `Durability::None` since the last durable one (`Writer::unsynced`).
    pub unsynced: u32,
    /// `DeferredMarks`: mark records appended since the journal's last fsync.
    pub unsynced_marks: u32,
    /// Bytes of redb pages the backend holds until the next durable commit.
    pub held_bytes: u64,
    /// The store file's size in bytes; `None`: it could not be read (counts as near the cap).
    /// Only consulted for a write that would be journaled.
    pub file_len: Option<u64>,
}

/// Why a commit that could have been journaled (or that follows journaled ones) folds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// `fold_after` commits were journaled since the last durable one.
    Commits,
    /// [`MAX_HELD_BYTES`] of redb pages wait in RAM.
    HeldFull,
    /// The record would not fit in the journal.
    JournalFull,
    /// The file passed 7/16 of `max_size_bytes` (or its size is unknown): the pages journaled
    /// commits replace would stay allocated until the fold and grow the file past the cap.
    NearSizeCap,
    /// A write without a record after journaled commits.
    NoRecord,
}

impl Fold {
    /// For the debug log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fold::Commits => "fold_after commits",
            Fold::HeldFull => "held pages full",
            Fold::JournalFull => "journal full",
            Fold::NearSizeCap => "near the size cap",
            Fold::NoRecord => "a write without a record",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A redb `Durability::None` commit, then the record appended to the journal; fsynced
    /// when `sync_record`. Afterwards `unsynced_marks` is the number of mark records waiting
    /// for an fsync (0 after a synced one).
    Journal {
        sync_record: bool,
        unsynced_marks: u32,
    },
    /// A redb `Durability::None` commit without a record (`Periodic`). `fold`: the write could
    /// have been journaled but a fold was due (logged only: no journal exists under `Periodic`).
    Defer { fold: Option<Fold> },
    /// A durable commit; it moves the journal's epoch on if anything was journaled since the
    /// last one. `fold`: why a journaled write (or one after journaled ones) folds.
    Durable { fold: Option<Fold> },
}

/// The decision for one write. See the module documentation for the rules.
pub(crate) fn decide(i: &Input) -> Decision {
    let fold = match (i.journal_used, i.record_len) {
        (Some(used), Some(len)) => {
            if i.unsynced >= i.fold_after {
                Some(Fold::Commits)
            } else if i.held_bytes >= MAX_HELD_BYTES {
                Some(Fold::HeldFull)
            } else if used + len + RECORD_OVERHEAD > journal::CAPACITY {
                Some(Fold::JournalFull)
            } else if i.file_len.is_none_or(|len| len > i.max_size_bytes / 16 * 7) {
                Some(Fold::NearSizeCap)
            } else {
                let sync_record = match i.durability {
                    Durability::DeferredMarks { max_unsynced } if i.kind == Kind::Mark => {
                        i.unsynced_marks + 1 >= max_unsynced
                    }
                    _ => true,
                };
                let unsynced_marks = if sync_record { 0 } else { i.unsynced_marks + 1 };
                return Decision::Journal {
                    sync_record,
                    unsynced_marks,
                };
            }
        }
        (Some(_), None) if i.unsynced > 0 => Some(Fold::NoRecord),
        _ => None,
    };
    let deferrable = match i.durability {
        _ if i.kind == Kind::Maintenance => None,
        Durability::Immediate | Durability::DeferredMarks { .. } => None,
        Durability::Periodic { max_unsynced } => Some(max_unsynced),
    };
    if deferrable.is_some_and(|max| i.unsynced < max) {
        Decision::Defer { fold }
    } else {
        Decision::Durable { fold }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use Fold::*;

    const MAX: u64 = 64 << 20;

    /// A journaled `Immediate` store with room everywhere: its data write is journaled.
    fn base() -> Input {
        Input {
            kind: Kind::Data,
            durability: Durability::Immediate,
            fold_after: 60,
            max_size_bytes: MAX,
            journal_used: Some(1000),
            record_len: Some(500),
            unsynced: 3,
            unsynced_marks: 0,
            held_bytes: 0,
            file_len: Some(1 << 20),
        }
    }

    fn journal(sync_record: bool, unsynced_marks: u32) -> Decision {
        Journal {
            sync_record,
            unsynced_marks,
        }
    }

    #[test]
    fn decisions_table() {
        let marks = |max_unsynced| Durability::DeferredMarks { max_unsynced };
        let periodic = |max_unsynced| Durability::Periodic { max_unsynced };
        let cap = MAX / 16 * 7;
        let room = journal::CAPACITY - RECORD_OVERHEAD;
        // (what differs from `base`, input) → decision
        let table: &[(&str, Input, Decision)] = &[
            ("journaled data", base(), journal(true, 0)),
            (
                "first journaled commit",
                Input {
                    unsynced: 0,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "last before fold_after",
                Input {
                    unsynced: 59,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "fold_after reached",
                Input {
                    unsynced: 60,
                    ..base()
                },
                Durable {
                    fold: Some(Commits),
                },
            ),
            (
                "fold_after 0 with a journal folds every commit",
                Input {
                    fold_after: 0,
                    unsynced: 0,
                    ..base()
                },
                Durable {
                    fold: Some(Commits),
                },
            ),
            (
                "held pages just under",
                Input {
                    held_bytes: MAX_HELD_BYTES - 1,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "held pages full",
                Input {
                    held_bytes: MAX_HELD_BYTES,
                    ..base()
                },
                Durable {
                    fold: Some(HeldFull),
                },
            ),
            (
                "fold_after wins over held pages",
                Input {
                    unsynced: 60,
                    held_bytes: MAX_HELD_BYTES,
                    ..base()
                },
                Durable {
                    fold: Some(Commits),
                },
            ),
            (
                "record just fits",
                Input {
                    journal_used: Some(room - 500),
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "journal full",
                Input {
                    journal_used: Some(room - 499),
                    ..base()
                },
                Durable {
                    fold: Some(JournalFull),
                },
            ),
            (
                "held pages win over a full journal",
                Input {
                    journal_used: Some(room),
                    held_bytes: MAX_HELD_BYTES,
                    ..base()
                },
                Durable {
                    fold: Some(HeldFull),
                },
            ),
            (
                "file at the cap",
                Input {
                    file_len: Some(cap),
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "file past the cap",
                Input {
                    file_len: Some(cap + 1),
                    ..base()
                },
                Durable {
                    fold: Some(NearSizeCap),
                },
            ),
            (
                "file size unknown",
                Input {
                    file_len: None,
                    ..base()
                },
                Durable {
                    fold: Some(NearSizeCap),
                },
            ),
            (
                "a full journal wins over the cap",
                Input {
                    journal_used: Some(room),
                    file_len: None,
                    ..base()
                },
                Durable {
                    fold: Some(JournalFull),
                },
            ),
            (
                "no record after journaled commits",
                Input {
                    record_len: None,
                    ..base()
                },
                Durable {
                    fold: Some(NoRecord),
                },
            ),
            (
                "no record, nothing journaled",
                Input {
                    record_len: None,
                    unsynced: 0,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "no journal",
                Input {
                    journal_used: None,
                    unsynced: 0,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "no journal ignores the record's folds",
                Input {
                    journal_used: None,
                    unsynced: 99,
                    file_len: None,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "a journaled maintenance write is journaled too",
                Input {
                    kind: Kind::Maintenance,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "Immediate mark: synced",
                Input {
                    kind: Kind::Mark,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "DeferredMarks data: synced, resets the marks",
                Input {
                    durability: marks(4),
                    unsynced_marks: 2,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "DeferredMarks mark waits",
                Input {
                    durability: marks(4),
                    kind: Kind::Mark,
                    unsynced_marks: 2,
                    ..base()
                },
                journal(false, 3),
            ),
            (
                "DeferredMarks mark: the max_unsynced-th syncs",
                Input {
                    durability: marks(4),
                    kind: Kind::Mark,
                    unsynced_marks: 3,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "DeferredMarks max 0 syncs every mark",
                Input {
                    durability: marks(0),
                    kind: Kind::Mark,
                    ..base()
                },
                journal(true, 0),
            ),
            (
                "DeferredMarks mark that folds is durable",
                Input {
                    durability: marks(4),
                    kind: Kind::Mark,
                    unsynced: 60,
                    ..base()
                },
                Durable {
                    fold: Some(Commits),
                },
            ),
            (
                "DeferredMarks without a journal: durable",
                Input {
                    durability: marks(4),
                    kind: Kind::Mark,
                    journal_used: None,
                    unsynced: 0,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "Periodic defers",
                Input {
                    durability: periodic(3),
                    journal_used: None,
                    unsynced: 2,
                    ..base()
                },
                Defer { fold: None },
            ),
            (
                "Periodic: the max_unsynced + 1-th is durable",
                Input {
                    durability: periodic(3),
                    journal_used: None,
                    unsynced: 3,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "Periodic 0 never defers",
                Input {
                    durability: periodic(0),
                    journal_used: None,
                    unsynced: 0,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "Periodic maintenance is durable",
                Input {
                    durability: periodic(3),
                    kind: Kind::Maintenance,
                    journal_used: None,
                    unsynced: 0,
                    ..base()
                },
                Durable { fold: None },
            ),
            (
                "Periodic mark defers",
                Input {
                    durability: periodic(3),
                    kind: Kind::Mark,
                    journal_used: None,
                    unsynced: 1,
                    ..base()
                },
                Defer { fold: None },
            ),
            (
                "Periodic with a journal (not opened so) still folds by the rules",
                Input {
                    durability: periodic(3),
                    held_bytes: MAX_HELD_BYTES,
                    unsynced: 2,
                    ..base()
                },
                Defer {
                    fold: Some(HeldFull),
                },
            ),
        ];
        for (what, input, want) in table {
            assert_eq!(decide(input), *want, "{what}: {input:?}");
        }
    }
}
