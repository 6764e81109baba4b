//! The write-ahead journal: `<store>.journal`, a preallocated file of framed records that
//! makes redb `Durability::None` commits crash-safe (`ENCODING.md` § 7).
//!
//! Invariants:
//! - Each record is `len u32 LE | crc32 u32 LE | epoch u64 LE | kind u8 | durable u32 LE |
//!   payload`, `len` counting from `epoch` on, the CRC-32 (IEEE) over the same bytes. `kind`
//!   has its top bit ([`DURABLE_FLAG`]) set; `durable` is the journal offset up to which an
//!   fsync had returned when the record was written (0 after a reset). Records of the first
//!   journal format have no `durable` and the top bit clear: they still replay. Records start
//!   at 4 KiB boundaries from offset 0 on (the bytes after a record up to the next boundary are
//!   whatever was there); nothing is ever erased. Aligned, a record of up to 4 KiB dirties one
//!   page, and no append rewrites the previous record's last page: measured, this halves the
//!   journal's share of the flash wear.
//! - The store's META holds the epoch of the journal that belongs to its last durable commit.
//!   Every durable commit that follows journaled commits moves the epoch on, which makes every
//!   record in the file stale at once; new records then overwrite the file from offset 0.
//!   Replay reads records of the current epoch from offset 0 and stops at the first that is
//!   not one: a stale epoch (old bytes after the new records), a bad CRC (a torn write) or a
//!   length that does not fit.
//! - A damaged record at offset X followed by intact records of the epoch is damage (records
//!   that were durable are lost) only if one of those says that X was durable (`durable` > X),
//!   or cannot say (the first format). If all say otherwise, X and they were written after the
//!   last fsync that returned: a power cut kept a later one whole and tore X (a device writes
//!   unsynced pages in any order), and none of them was ever promised: a torn unsynced tail.
//! - The file is written page by page with zeros once, at creation, so that an append changes
//!   no file metadata (its `fdatasync` writes only the data pages) and never needs free space.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::crc32::{crc32, crc32_update};

/// Size of the journal file: a fold happens before a record would not fit (a flush record
/// of 810 samples is ≈ 4 KiB, so this is hours of flushes; the fold comes far sooner).
pub(crate) const CAPACITY: u64 = 256 << 10;
/// `len` + `crc`.
const FRAME: usize = 8;
/// `epoch` + `kind`.
const HEAD: usize = 9;
/// The top bit of a record's `kind`: a `durable u32` follows the kind (the second format).
const DURABLE_FLAG: u8 = 0x80;
/// `durable`.
const DURABLE: usize = 4;
const PAGE: usize = 4096;

/// A record's payload kind.
pub(crate) const KIND_INSERT: u8 = 1;
pub(crate) const KIND_MARK: u8 = 2;
pub(crate) const KIND_EXPIRE: u8 = 3;
pub(crate) const KIND_UNSTAMPED: u8 = 4;
pub(crate) const KIND_RESTAMP: u8 = 5;

pub(crate) fn path_of(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    /// Where it was opened (compared with `file` before each write: `Store::heal_journal`).
    path: PathBuf,
    /// Where the next record goes.
    off: u64,
    /// Bytes of this epoch up to which an fsync returned (≤ `off`).
    synced: u64,
    epoch: u64,
    /// Frame and record bytes, reused.
    buf: Vec<u8>,
}

/// `n` rounded up to a whole page.
fn align(n: u64) -> u64 {
    n.div_ceil(PAGE as u64) * PAGE as u64
}

/// Records as `(kind, payload)`, in file order.
pub(crate) type Records = Vec<(u8, Vec<u8>)>;

/// Why a replay stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A zero length or a stale epoch at `offset`, with no record of the epoch after it: the
    /// normal end.
    End { offset: u64 },
    /// A record of the current epoch whose CRC fails, or a length past the end: a torn last
    /// write (or damage); or an end (zeros, stale bytes) with intact records of the epoch
    /// after it: a record that never reached the disk. What follows is not replayed (a gap
    /// would leave later records naming series and keys the lost one made); `later` counts the
    /// intact records of the epoch found after it, at page boundaries: 0 for a torn last
    /// append. `vouched`: those of
    /// them that say this record was durable when they were written (or cannot say, being of
    /// the first format): damage. With `later` > 0 and `vouched` 0 it is a torn unsynced tail:
    /// none of these records was covered by an fsync that returned.
    /// `whole`: the record is complete but its epoch field is damaged (its CRC holds with the
    /// current epoch put back), so it is damage even with nothing after it: it was written in
    /// full, and read as stale bytes it would have been lost without a word.
    Damaged {
        offset: u64,
        later: u64,
        vouched: u64,
        whole: bool,
    },
}

impl Stop {
    /// Damage rather than a torn last append: acknowledged records are lost.
    pub(crate) fn is_damage(self) -> bool {
        matches!(self, Stop::Damaged { vouched, whole, .. } if vouched > 0 || whole)
    }
}

impl Journal {
    /// Open (or create and preallocate) the journal of the store at `store`, for appending
    /// records of `epoch` from byte `end` (where its replay stopped). With `end` > 0 the file
    /// is fsynced first: the records before `end` were read from it, maybe from the page cache
    /// a crashed process left, and the next record says they are durable.
    pub(crate) fn open(store: &Path, epoch: u64, end: u64) -> io::Result<Journal> {
        let path = path_of(store);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len < CAPACITY {
            // Page by page: one large write would leave 2 MiB folios in the page cache, and
            // every later append would then dirty a whole folio.
            let zeros = [0u8; PAGE];
            let mut at = len - len % PAGE as u64;
            while at < CAPACITY {
                file.write_all_at(&zeros, at)?;
                at += PAGE as u64;
            }
            file.sync_all()?;
            crate::file::sync_parent_dir(&path)?;
        } else if end > 0 {
            file.sync_data()?;
        }
        let off = end.min(CAPACITY);
        Ok(Journal {
            file,
            path,
            off,
            synced: off,
            epoch,
            buf: Vec::new(),
        })
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the open file is no longer the one at its path (`file::vanished`).
    pub(crate) fn vanished(&self) -> io::Result<Option<crate::file::Vanished>> {
        crate::file::vanished(&self.file, &self.path)
    }

    /// Bytes appended in this epoch.
    pub(crate) fn used(&self) -> u64 {
        self.off
    }

    /// Start over after a durable commit stored `epoch`: older records are stale from now on.
    pub(crate) fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.off = 0;
        self.synced = 0;
    }

    /// Append one record; with `sync`, `fdatasync` it (and everything before it). Fails with
    /// `StorageFull` when it does not fit; the caller then folds instead.
    pub(crate) fn append(&mut self, kind: u8, payload: &[u8], sync: bool) -> io::Result<()> {
        let len = HEAD + DURABLE + payload.len();
        let total = align((FRAME + len) as u64);
        if self.off + total > CAPACITY {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        let len32 = u32::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.buf.clear();
        self.buf.extend_from_slice(&len32.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&self.epoch.to_le_bytes());
        self.buf.push(kind | DURABLE_FLAG);
        // ≤ CAPACITY (256 KiB): fits.
        let synced = u32::try_from(self.synced).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&synced.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let crc = crc32(&self.buf[FRAME..]);
        self.buf[4..FRAME].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&self.buf, self.off)?;
        if sync {
            self.file.sync_data()?;
        }
        self.off += total;
        if sync {
            self.synced = self.off;
        }
        Ok(())
    }
}

/// The records of `epoch` in the journal of the store at `store`, in order, as
/// `(kind, payload)`; none if there is no journal file. Reads the file, never writes it.
pub(crate) fn read(store: &Path, epoch: u64) -> io::Result<(Records, Stop)> {
    let bytes = match std::fs::read(path_of(store)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Stop::End { offset: 0 }));
        }
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes, epoch))
}

/// For the journal at `path` whose store file is gone: `None` when there is no file (or an
/// empty one), else how many intact records of the epoch of its first record it holds (an upper
/// bound of what was not folded: without the store, folded records cannot be told apart).
pub(crate) fn count_records(path: &Path) -> io::Result<Option<u64>> {
    let bytes = match std::fs::read(path) {
        Ok(b) if b.is_empty() => return Ok(None),
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let epoch = bytes
        .get(FRAME..FRAME + 8)
        .map_or(0, |e| u64::from_le_bytes(e.try_into().unwrap_or_default()));
    Ok(Some(parse(&bytes, epoch).0.len() as u64))
}

fn parse(bytes: &[u8], epoch: u64) -> (Records, Stop) {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        match record_at(bytes, at, epoch) {
            At::Record {
                kind,
                payload,
                next,
                ..
            } => {
                out.push((kind, payload.to_vec()));
                at = next;
            }
            stop @ (At::End | At::Torn | At::Unknown | At::Misdated) => {
                let (mut later, mut vouched) = (0, 0);
                let mut p = at + PAGE;
                while p < bytes.len() {
                    if let At::Record { durable, .. } = record_at(bytes, p, epoch) {
                        later += 1;
                        vouched += u64::from(durable.is_none_or(|d| d > at as u64));
                    }
                    p += PAGE;
                }
                let offset = at as u64;
                if matches!(stop, At::End | At::Unknown) && later == 0 {
                    // The end: zeros, an older epoch's record, or the inside of an older
                    // epoch's record that spanned this page boundary (nothing of this epoch
                    // was ever written here).
                    return (out, Stop::End { offset });
                }
                // An end with records of the epoch after it: a record that never reached the
                // disk (a power cut kept later ones), or one whose header was destroyed.
                let whole = matches!(stop, At::Misdated);
                return (
                    out,
                    Stop::Damaged {
                        offset,
                        later,
                        vouched,
                        whole,
                    },
                );
            }
        }
    }
}

enum At<'a> {
    Record {
        kind: u8,
        /// The journal offset an fsync had reached when it was written (`None`: a record of
        /// the first format, which does not say).
        durable: Option<u64>,
        payload: &'a [u8],
        next: usize,
    },
    /// A zero length, the end of the file, or an intact record of another epoch.
    End,
    /// A header of this epoch whose record fails its CRC or does not fit: a torn write (the
    /// header is in the first page written) or damage.
    Torn,
    /// Neither a record of this epoch nor an intact one of another: stale bytes (the inside
    /// of an older, longer record), or a record whose header is damaged.
    Unknown,
    /// A whole record of this epoch whose epoch field is damaged: its CRC holds once the
    /// current epoch is put back (a 32-bit check, as for every record).
    Misdated,
}

fn record_at(bytes: &[u8], at: usize, epoch: u64) -> At<'_> {
    let Some(frame) = bytes.get(at..at.saturating_add(FRAME)) else {
        return At::End;
    };
    let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if len == 0 {
        return At::End;
    }
    let ours = bytes
        .get(at + FRAME..at + FRAME + 8)
        .is_some_and(|e| e == epoch.to_le_bytes());
    let Some(body) = bytes
        .get(at + FRAME..(at + FRAME).saturating_add(len))
        .filter(|b| b.len() >= HEAD)
    else {
        return if ours { At::Torn } else { At::Unknown };
    };
    let crc_ok = crc32(body) == crc;
    if !ours {
        if crc_ok {
            // An intact record of another epoch: this epoch's records ended before it.
            return At::End;
        }
        let put_back = crc32_update(crc32(&epoch.to_le_bytes()), &body[8..]);
        return if put_back == crc {
            At::Misdated
        } else {
            At::Unknown
        };
    }
    if !crc_ok {
        return At::Torn;
    }
    let next = at + align((FRAME + len) as u64) as usize;
    let kind = body[8];
    if kind & DURABLE_FLAG == 0 {
        return At::Record {
            kind,
            durable: None,
            payload: &body[HEAD..],
            next,
        };
    }
    // Intact, but too short for its format: not a record this store wrote.
    let Some(d) = body.get(HEAD..HEAD + DURABLE) else {
        return At::Torn;
    };
    At::Record {
        kind: kind & !DURABLE_FLAG,
        durable: Some(u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
        payload: &body[HEAD + DURABLE..],
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_the_epoch_come_back_and_stale_or_torn_ones_stop_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 7, 0).unwrap();
        assert_eq!(std::fs::metadata(path_of(&store)).unwrap().len(), CAPACITY);
        j.append(KIND_INSERT, b"one", true).unwrap();
        j.append(KIND_MARK, b"two!", true).unwrap();
        j.append(KIND_INSERT, b"three", true).unwrap();
        let (recs, stop) = read(&store, 7).unwrap();
        assert_eq!(stop, Stop::End { offset: j.used() });
        assert_eq!(
            recs,
            vec![
                (KIND_INSERT, b"one".to_vec()),
                (KIND_MARK, b"two!".to_vec()),
                (KIND_INSERT, b"three".to_vec())
            ]
        );
        // Another epoch sees nothing; after a reset the new records shadow the old ones.
        assert!(read(&store, 8).unwrap().0.is_empty());
        j.reset(8);
        j.append(KIND_MARK, b"new", true).unwrap();
        let (recs, stop) = read(&store, 8).unwrap();
        assert_eq!(
            (recs, stop),
            (
                vec![(KIND_MARK, b"new".to_vec())],
                Stop::End { offset: j.used() }
            )
        );
        // A flipped payload bit is a damaged record, not a silent end.
        let mut bytes = std::fs::read(path_of(&store)).unwrap();
        bytes[FRAME + HEAD] ^= 1;
        assert_eq!(
            parse(&bytes, 8),
            (
                vec![],
                Stop::Damaged {
                    offset: 0,
                    later: 0,
                    vouched: 0,
                    whole: false
                }
            )
        );
        // A header of this epoch whose length runs past the end of the file is damage too.
        let mut short = vec![0u8; 24];
        short[0] = 200;
        short[FRAME..FRAME + 8].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(
            parse(&short, 8),
            (
                vec![],
                Stop::Damaged {
                    offset: 0,
                    later: 0,
                    vouched: 0,
                    whole: false
                }
            )
        );
        // Damage in the middle: the intact records after it are counted, not replayed.
        j.append(KIND_INSERT, b"second", true).unwrap();
        j.append(KIND_INSERT, b"third", true).unwrap();
        let mut bytes = std::fs::read(path_of(&store)).unwrap();
        bytes[PAGE + FRAME + HEAD] ^= 1;
        assert_eq!(
            parse(&bytes, 8),
            (
                vec![(KIND_MARK, b"new".to_vec())],
                Stop::Damaged {
                    offset: PAGE as u64,
                    later: 1,
                    vouched: 1,
                    whole: false
                }
            )
        );
    }

    /// Measured in a field trial: after a fold, one short record of the new epoch is followed,
    /// at the next page boundary, by the inside of an older two-page record, whose bytes read
    /// as a huge length. That is the normal end, not a torn write (which was logged on every
    /// open); damage is still told from it by an intact record of the epoch further on.
    #[test]
    fn the_inside_of_an_older_longer_record_is_the_end_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 3, 0).unwrap();
        let two_pages: Vec<u8> = (0..7000u32).map(|i| (i * 7 + 0xf1) as u8).collect();
        j.append(KIND_UNSTAMPED, &two_pages, true).unwrap();
        j.reset(4);
        j.append(KIND_INSERT, b"kernel release", true).unwrap();
        let bytes = std::fs::read(path_of(&store)).unwrap();
        let len = u32::from_le_bytes(bytes[PAGE..PAGE + 4].try_into().unwrap()) as usize;
        assert!(
            len > CAPACITY as usize,
            "the stale page must read as a length past the end"
        );
        assert_eq!(
            read(&store, 4).unwrap(),
            (
                vec![(KIND_INSERT, b"kernel release".to_vec())],
                Stop::End {
                    offset: PAGE as u64
                }
            )
        );
        // The same stale page with a record of the epoch after it that was written once an
        // fsync had covered this page: a header was destroyed.
        let mut damaged = bytes.clone();
        let mut later = Journal::open(&dir.path().join("t.redb"), 4, 0).unwrap();
        for _ in 0..3 {
            later.append(KIND_MARK, b"mark", true).unwrap();
        }
        let rec = std::fs::read(path_of(&dir.path().join("t.redb"))).unwrap();
        damaged[2 * PAGE..3 * PAGE].copy_from_slice(&rec[2 * PAGE..3 * PAGE]);
        assert_eq!(
            parse(&damaged, 4).1,
            Stop::Damaged {
                offset: PAGE as u64,
                later: 1,
                vouched: 1,
                whole: false
            }
        );
        // One written before any fsync covered it: the unsynced tail of a power cut.
        damaged[2 * PAGE..3 * PAGE].copy_from_slice(&rec[..PAGE]);
        let stop = parse(&damaged, 4).1;
        assert_eq!(
            stop,
            Stop::Damaged {
                offset: PAGE as u64,
                later: 1,
                vouched: 0,
                whole: false
            }
        );
        assert!(!stop.is_damage());
    }

    /// A bit flip in the epoch field of the last record: without the put-back check it read as
    /// stale bytes with nothing of the epoch after it, the normal end, and the record's
    /// samples were gone without a word.
    #[test]
    fn a_damaged_epoch_field_is_damage_even_in_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 9, 0).unwrap();
        j.append(KIND_INSERT, b"first", true).unwrap();
        j.append(KIND_INSERT, b"last", true).unwrap();
        let clean = std::fs::read(path_of(&store)).unwrap();
        for bit in 0..64 {
            let mut bytes = clean.clone();
            bytes[PAGE + FRAME + bit / 8] ^= 1 << (bit % 8);
            let (recs, stop) = parse(&bytes, 9);
            assert_eq!(recs, vec![(KIND_INSERT, b"first".to_vec())], "bit {bit}");
            assert_eq!(
                stop,
                Stop::Damaged {
                    offset: PAGE as u64,
                    later: 0,
                    vouched: 0,
                    whole: true
                },
                "bit {bit}"
            );
            assert!(stop.is_damage());
        }
        // A torn last append is still not damage, and the stale inside of an older record
        // still the end.
        let mut torn = clean.clone();
        torn[PAGE + FRAME + HEAD] ^= 1;
        assert!(!parse(&torn, 9).1.is_damage());
        assert_eq!(
            parse(&clean, 9).1,
            Stop::End {
                offset: 2 * PAGE as u64
            }
        );
    }

    /// Finding F2 of docs/durability.md: with deferred (unsynced) records, a power cut may tear
    /// one and keep a later one whole. Each record says how far an fsync had reached when it
    /// was written; a damaged record that no later record says was durable is a torn unsynced
    /// tail, not damage, and one that a later record vouches for is damage, as is any damaged
    /// record followed by a record of the first format (which cannot say).
    #[test]
    fn a_torn_record_no_later_one_says_was_durable_is_an_unsynced_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 5, 0).unwrap();
        j.append(KIND_INSERT, b"synced", true).unwrap(); // 0, durable 0
        // 150 bytes, as a mark of a few keys: the 158-byte record F2 found torn after 102.
        j.append(KIND_MARK, &[0x5a; 150], false).unwrap(); // 4096, durable 4096
        j.append(KIND_INSERT, &[0x33; 200], true).unwrap(); // 8192, durable 4096
        j.append(KIND_MARK, b"later mark", false).unwrap(); // 12288, durable 12288
        let clean = std::fs::read(path_of(&store)).unwrap();
        let durable_of = |at: usize| match record_at(&clean, at, 5) {
            At::Record { durable, .. } => durable,
            _ => panic!("no record at {at}"),
        };
        assert_eq!(
            [0, PAGE, 2 * PAGE, 3 * PAGE].map(durable_of),
            [
                Some(0),
                Some(PAGE as u64),
                Some(PAGE as u64),
                Some(3 * PAGE as u64)
            ]
        );
        // The deferred mark torn after 100 bytes (the rest as the preallocation left it), the
        // flush after it kept whole; the last mark not written at all.
        let mut torn = clean.clone();
        torn[PAGE + 100..2 * PAGE].fill(0);
        torn[3 * PAGE..4 * PAGE].fill(0);
        let (recs, stop) = parse(&torn, 5);
        assert_eq!(recs, vec![(KIND_INSERT, b"synced".to_vec())]);
        let tail = Stop::Damaged {
            offset: PAGE as u64,
            later: 1,
            vouched: 0,
            whole: false,
        };
        assert_eq!(stop, tail);
        assert!(!stop.is_damage());
        // The deferred mark never written at all (its page as the preallocation left it):
        // the same tail. Read as the end, the flush after it would come back once a new record
        // filled the gap.
        let mut dropped = clean.clone();
        dropped[PAGE..2 * PAGE].fill(0);
        dropped[3 * PAGE..4 * PAGE].fill(0);
        assert_eq!(parse(&dropped, 5).1, tail);
        // The later mark kept too: it says the first page was durable, not the second.
        let mut torn = clean.clone();
        torn[PAGE + 100..2 * PAGE].fill(0);
        assert_eq!(
            parse(&torn, 5).1,
            Stop::Damaged {
                offset: PAGE as u64,
                later: 2,
                vouched: 1,
                whole: false
            }
        );
        // Torn flush at 8192 with the later mark whole: that mark was written after the flush's
        // fsync returned, so the flush was durable: damage.
        let mut torn = clean.clone();
        torn[2 * PAGE + 100..3 * PAGE].fill(0);
        let stop = parse(&torn, 5).1;
        assert_eq!(
            stop,
            Stop::Damaged {
                offset: 2 * PAGE as u64,
                later: 1,
                vouched: 1,
                whole: false
            }
        );
        assert!(stop.is_damage());
        // A record of the first format (no durable field: kind without the top bit) replays,
        // and after a damaged record it counts as vouching: it cannot say.
        let mut old = clean.clone();
        let v1 = |payload: &[u8]| {
            let mut r = Vec::new();
            r.extend_from_slice(&((HEAD + payload.len()) as u32).to_le_bytes());
            r.extend_from_slice(&[0; 4]);
            r.extend_from_slice(&5u64.to_le_bytes());
            r.push(KIND_INSERT);
            r.extend_from_slice(payload);
            let crc = crc32(&r[FRAME..]);
            r[4..FRAME].copy_from_slice(&crc.to_le_bytes());
            r
        };
        let r = v1(b"first format");
        old[2 * PAGE..2 * PAGE + r.len()].copy_from_slice(&r);
        old[3 * PAGE..4 * PAGE].fill(0);
        let (recs, stop) = parse(&old, 5);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2], (KIND_INSERT, b"first format".to_vec()));
        assert_eq!(
            stop,
            Stop::End {
                offset: 3 * PAGE as u64
            }
        );
        old[PAGE + 100..2 * PAGE].fill(0);
        assert!(parse(&old, 5).1.is_damage());
    }

    /// The journal reopened after a replay (whose records may sit in a crashed process's page
    /// cache) fsyncs them first: the next record says they are durable.
    #[test]
    fn a_journal_opened_after_records_counts_them_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 6, 0).unwrap();
        j.append(KIND_MARK, b"deferred", false).unwrap();
        drop(j);
        let mut j = Journal::open(&store, 6, PAGE as u64).unwrap();
        j.append(KIND_INSERT, b"next", false).unwrap();
        let bytes = std::fs::read(path_of(&store)).unwrap();
        assert!(matches!(
            record_at(&bytes, PAGE, 6),
            At::Record { durable: Some(d), .. } if d == PAGE as u64
        ));
        // After a reset (a fold moved the epoch on) nothing of the new epoch is durable yet.
        j.reset(7);
        j.append(KIND_INSERT, b"new epoch", true).unwrap();
        j.append(KIND_INSERT, b"second", false).unwrap();
        let bytes = std::fs::read(path_of(&store)).unwrap();
        assert!(matches!(
            record_at(&bytes, 0, 7),
            At::Record {
                durable: Some(0),
                ..
            }
        ));
        assert!(matches!(
            record_at(&bytes, PAGE, 7),
            At::Record { durable: Some(d), .. } if d == PAGE as u64
        ));
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let mut j = Journal::open(&store, 1, 0).unwrap();
        let big = vec![1u8; CAPACITY as usize];
        let e = j.append(KIND_INSERT, &big, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(j.used(), 0);
        assert!(read(&store, 1).unwrap().0.is_empty());
    }
}
