//! A memo of the series the writer resolved: a hash of a sample's series fields *as the caller
//! gave them* (name, device id, labels in the caller's order, value type) → the id resolved for
//! them last time, with what that id means. A hit skips building the canonical encoding
//! (`codec::series_bytes`) and hashing it, ≈ 1 000 instructions a sample on every flush
//! (benches/phases, issue 30), and the cache's two lookups by id (an entry carries the id's
//! [`SeriesInfo`] and value type).
//!
//! Invariants: an entry is made only for an id already interned in the store's cache
//! (committed: ids are never reused within a store, so the entry cannot come to mean another
//! series); an id a batch is still introducing is not remembered, since its insert may fail
//! and the id then go to another series. A hit is only trusted after its fields are compared
//! with the entry's series, value type included: a hash collision falls back to the canonical
//! path, whose answer then replaces the entry. So the memo can make a lookup faster, never give
//! another id than the canonical path would. The memo lives in the writer of one open store.

use crate::insert::SeriesCache;
use crate::series_hash::{BuildSeriesHasher, SeriesHasher};
use crate::{SeriesInfo, SeriesKey};
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

/// Entries kept at most (16 B each); at the cap the memo starts over. The agent has ≈ 100
/// series; local ingest can bring many more, which then cost the canonical path again.
const MAX_ENTRIES: usize = 1 << 16;

#[derive(Debug, Default)]
pub(crate) struct SeriesMemo {
    ids: HashMap<u64, Entry, BuildSeriesHasher>,
}

/// An interned id and what it names (from the cache, which never changes an id's meaning).
#[derive(Debug)]
struct Entry {
    id: u32,
    value_type: u8,
    info: Arc<SeriesInfo>,
}

impl SeriesMemo {
    /// A hash of `key` and `value_type` as given: of each field its length and its first and
    /// last 8 bytes (two loads, not a loop over the bytes: hashing every byte cost more than the
    /// memo saved). Fields that differ only in the middle collide; [`Self::get`]'s comparison
    /// sends them to the canonical path.
    pub(crate) fn hash(key: &SeriesKey<'_>, value_type: u8) -> u64 {
        let mut h = SeriesHasher::default();
        h.write_u64(u64::from(value_type) | (key.labels.len() as u64) << 8);
        field(&mut h, key.name);
        field(&mut h, key.device_id);
        for (k, v) in key.labels {
            field(&mut h, k);
            field(&mut h, v);
        }
        h.finish()
    }

    /// The id remembered for `hash`, if its interned series is exactly `key` and `value_type`.
    pub(crate) fn get(&self, hash: u64, key: &SeriesKey<'_>, value_type: u8) -> Option<u32> {
        let e = self.ids.get(&hash)?;
        (e.value_type == value_type && same_series(&e.info, key)).then_some(e.id)
    }

    /// Remembers `id` for `hash` if `cache` has it interned; an id not (yet) there is skipped
    /// (the module's invariants).
    pub(crate) fn remember(&mut self, hash: u64, id: u32, cache: &SeriesCache) {
        let (Some(info), Some(&value_type)) = (cache.info.get(&id), cache.value_type.get(&id))
        else {
            return;
        };
        if self.ids.len() >= MAX_ENTRIES {
            self.ids.clear();
        }
        let info = Arc::clone(info);
        self.ids.insert(
            hash,
            Entry {
                id,
                value_type,
                info,
            },
        );
    }
}

/// Mixes a field's length and its first and last (up to) 8 bytes into `h`. Fixed-size loads,
/// no `memcpy` of a variable length (at opt-level "z" that was a call per word).
fn field(h: &mut SeriesHasher, s: &str) {
    let b = s.as_bytes();
    let n = b.len();
    h.write_u64(n as u64);
    match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(head), Some(tail)) => {
            h.write_u64(u64::from_le_bytes(*head));
            h.write_u64(u64::from_le_bytes(*tail));
        }
        _ => {
            // Shorter than 8 bytes: all of it in one word.
            let mut w = 0u64;
            for &x in b {
                w = w << 8 | u64::from(x);
            }
            h.write_u64(w);
        }
    }
}

/// `key` names the series `info` holds: the same name and device id, and the same set of labels
/// (in any order, no name twice: a list with a repeated name is invalid and must take the
/// canonical path, which refuses it).
fn same_series(info: &SeriesInfo, key: &SeriesKey<'_>) -> bool {
    if info.name != key.name
        || info.device_id != key.device_id
        || info.labels.len() != key.labels.len()
        || key.labels.len() > 64
    {
        return false;
    }
    // The usual caller gives the labels in the interned (sorted) order: pairwise equal, done.
    if info
        .labels
        .iter()
        .zip(key.labels)
        .all(|((ik, iv), (k, v))| ik == k && iv == v)
    {
        return true;
    }
    let mut seen = 0u64;
    for (k, v) in key.labels {
        let Ok(i) = info.labels.binary_search_by(|(ik, _)| ik.as_str().cmp(k)) else {
            return false;
        };
        let bit = 1u64 << i;
        if info.labels.get(i).map(|(_, iv)| iv.as_str()) != Some(*v) || seen & bit != 0 {
            return false;
        }
        seen |= bit;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{VT_NUMBER, VT_TEXT};

    fn info(name: &str, labels: &[(&str, &str)]) -> SeriesInfo {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        SeriesInfo {
            name: name.to_owned(),
            device_id: "dev".to_owned(),
            labels,
        }
    }

    fn key<'a>(name: &'a str, labels: &'a [(&'a str, &'a str)]) -> SeriesKey<'a> {
        SeriesKey {
            name,
            device_id: "dev",
            labels,
        }
    }

    /// Which given fields name the interned series: a table of (labels given, same?).
    #[test]
    fn same_series_is_set_equality_of_labels() {
        let i = info("m", &[("a", "1"), ("b", "2")]);
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[("a", "1"), ("b", "2")], true),
            (&[("b", "2"), ("a", "1")], true),
            (&[("a", "1")], false),
            (&[("a", "1"), ("b", "3")], false),
            (&[("a", "1"), ("c", "2")], false),
            // A repeated name is invalid: never a hit, whatever the counts say.
            (&[("a", "1"), ("a", "1")], false),
            (&[("a", "1"), ("b", "2"), ("c", "3")], false),
        ];
        for (labels, want) in table {
            assert_eq!(same_series(&i, &key("m", labels)), *want, "{labels:?}");
        }
        assert!(!same_series(&i, &key("n", &[("a", "1"), ("b", "2")])));
        let mut other_dev = key("m", &[("a", "1"), ("b", "2")]);
        other_dev.device_id = "other";
        assert!(!same_series(&i, &other_dev));
    }

    #[test]
    fn a_hit_needs_the_interned_series_and_its_value_type() {
        let mut cache = SeriesCache::default();
        let mut canon = Vec::new();
        crate::codec::series_bytes(
            "m",
            "dev",
            &[("a", "1")],
            VT_NUMBER,
            &mut Vec::new(),
            &mut canon,
        )
        .unwrap();
        cache.add(7, &canon).unwrap();
        let k = key("m", &[("a", "1")]);
        let mut memo = SeriesMemo::default();
        let h = SeriesMemo::hash(&k, VT_NUMBER);
        assert_eq!(memo.get(h, &k, VT_NUMBER), None, "nothing remembered");
        memo.remember(h, 7, &cache);
        assert_eq!(memo.get(h, &k, VT_NUMBER), Some(7));
        assert_eq!(memo.get(h, &k, VT_TEXT), None, "another value type");
        // Another series under the same hash (a collision): the comparison refuses it.
        let other = key("m", &[("a", "2")]);
        assert_eq!(memo.get(h, &other, VT_NUMBER), None);
        // An id not interned (a failed insert's fresh id) is not remembered: the entry for 7
        // stays.
        memo.remember(h, 8, &cache);
        assert_eq!(memo.get(h, &k, VT_NUMBER), Some(7));
        let mut fresh = SeriesMemo::default();
        fresh.remember(h, 8, &cache);
        assert_eq!(fresh.get(h, &k, VT_NUMBER), None);
        // Names that differ only in the middle hash alike: the comparison refuses the hit.
        let (a, b) = ("aaaaaaaaXaaaaaaaa", "aaaaaaaaYaaaaaaaa");
        assert_eq!(
            SeriesMemo::hash(&key(a, &[]), VT_NUMBER),
            SeriesMemo::hash(&key(b, &[]), VT_NUMBER)
        );
        let mut canon = Vec::new();
        crate::codec::series_bytes(a, "dev", &[], VT_NUMBER, &mut Vec::new(), &mut canon).unwrap();
        cache.add(9, &canon).unwrap();
        let h = SeriesMemo::hash(&key(a, &[]), VT_NUMBER);
        memo.remember(h, 9, &cache);
        assert_eq!(memo.get(h, &key(a, &[]), VT_NUMBER), Some(9));
        assert_eq!(memo.get(h, &key(b, &[]), VT_NUMBER), None);
        // Field boundaries count: ("ab", "dev") is not ("a", "bdev").
        assert_ne!(
            SeriesMemo::hash(&key("ab", &[]), VT_NUMBER),
            SeriesMemo::hash(
                &SeriesKey {
                    name: "a",
                    device_id: "bdev",
                    labels: &[]
                },
                VT_NUMBER
            )
        );
    }
}
