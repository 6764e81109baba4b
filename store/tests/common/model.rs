// Stateful model check of the store against a BTreeMap, shared by `tests/model.rs` (driven
// by a PRNG) and `fuzz/fuzz_targets/store_model.rs` (driven by fuzzer bytes, via
// `include!`, hence no inner attributes or `//!` here).
//
// Ops: insert (fresh and duplicate batches, numbers and text, label orders), pending,
// mark_uploaded, quarantine, enforce_retention, reopen (a crash copy with the journal),
// insert_unstamped (two boots), restamp (a piece or all of a boot) and a store file deleted
// under the open store (the journal, or the store file, put back). After every op the
// store must agree with the model; after every few ops with the whole export, the unstamped
// counts per boot and its own invariants.

use belabox_store::{
    Checkpoint, Durability, NewSample, OwnedValue, SampleKey, SeriesKey, Store, StoreOptions, Uuid,
    Value,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where the model gets its choices; `None` ends the run (fuzz input exhausted).
pub trait Choices {
    fn next(&mut self) -> Option<u32>;
}

type Labels = &'static [(&'static str, &'static str)];

/// Series pool: (name, device, label variants that canonicalise to the same series).
const POOL: &[(&str, &str, &[Labels])] = &[
    (
        "cpu",
        "d1",
        &[
            &[("cpu", "0"), ("mode", "user")],
            &[("mode", "user"), ("cpu", "0")],
        ],
    ),
    ("cpu", "d1", &[&[("cpu", "1"), ("mode", "user")]]),
    ("mem", "d1", &[&[]]),
    (
        "net",
        "d1",
        &[
            &[("if", "eth0"), ("dir", "rx")],
            &[("dir", "rx"), ("if", "eth0")],
        ],
    ),
    ("net", "d2", &[&[("if", "eth0"), ("dir", "rx")]]),
    ("oper", "d1", &[&[("if", "wwan0")]]),
];

const TS_SPAN: u32 = 40;
const RETENTION_MS: u64 = 10;

/// The boots unstamped samples belong to.
const BOOTS: [Uuid; 2] = [Uuid::from_u128(0xa1), Uuid::from_u128(0xb2)];

/// An unstamped sample's identity: (boot index, boot-clock ms, pool index).
type UId = (usize, i64, usize);

/// A sample's identity in the model: (ts, pool index, is text).
type Id = (i64, usize, bool);

#[derive(Clone, Copy, Debug, PartialEq)]
enum MValue {
    Num(u64), // f64 bits: NaN payloads must survive too
    Text(u32),
}

#[derive(Clone, Copy, Debug)]
struct Row {
    value: MValue,
    pending: bool,
}

const TEXTS: [&str; 4] = ["up", "down", "6.1.0", ""];

fn text_of(i: u32) -> &'static str {
    TEXTS[i as usize % TEXTS.len()]
}

struct Model {
    rows: BTreeMap<Id, Row>,
    /// Store series id ↔ (pool index, is text), learned from what the store returns.
    by_sid: HashMap<u32, (usize, bool)>,
    sid_of: HashMap<(usize, bool), u32>,
    batches: Vec<Vec<(Id, MValue, usize)>>,
    checkpoints: u32,
    /// Unstamped samples (f64 bits), not pending until restamped.
    unstamped: BTreeMap<UId, u64>,
    /// Boots holding unstamped samples, in the order the store first saw them.
    boots: Vec<usize>,
}

fn sample(id: Id, v: MValue, variant: usize) -> NewSample<'static> {
    let (name, device_id, variants) = POOL[id.1];
    NewSample {
        series: SeriesKey {
            name,
            device_id,
            labels: variants[variant % variants.len()],
        },
        ts_ms: id.0,
        value: match v {
            MValue::Num(bits) => Value::Number(f64::from_bits(bits)),
            MValue::Text(i) => Value::Text(text_of(i)),
        },
    }
}

fn pool_index(store: &Store, sid: u32) -> usize {
    let info = store.series(sid).unwrap();
    POOL.iter()
        .position(|(name, dev, variants)| {
            let mut labels: Vec<(String, String)> = variants[0]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            labels.sort();
            *name == info.name && *dev == info.device_id && labels == info.labels
        })
        .unwrap_or_else(|| panic!("series {sid} is not in the pool: {info:?}"))
}

impl Model {
    fn learn(&mut self, store: &Store, sid: u32, text: bool) -> usize {
        match self.by_sid.get(&sid) {
            Some(&(idx, t)) => {
                assert_eq!(t, text, "series {sid} holds both numbers and text");
                idx
            }
            None => {
                let idx = pool_index(store, sid);
                self.by_sid.insert(sid, (idx, text));
                let old = self.sid_of.insert((idx, text), sid);
                assert!(old.is_none(), "two series ids for one series");
                idx
            }
        }
    }

    fn pending_ids(&self) -> Vec<Id> {
        self.rows
            .iter()
            .filter(|(_, r)| r.pending)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Compare the whole pending queue (and learn series ids from it).
    fn check_pending(&mut self, store: &Store) -> Vec<SampleKey> {
        let full = store.pending(usize::MAX).unwrap();
        assert!(
            full.windows(2).all(|w| w[0].key < w[1].key),
            "pending out of order"
        );
        let mut got = Vec::new();
        for p in &full {
            assert_eq!((p.key.ts_ms(), p.key.series_id()), (p.ts_ms, p.series_id));
            let idx = self.learn(store, p.series_id, false);
            let id = (p.ts_ms, idx, false);
            let row = self
                .rows
                .get(&id)
                .unwrap_or_else(|| panic!("{id:?} pending, not in model"));
            assert_eq!(row.value, MValue::Num(p.value.to_bits()), "{id:?}");
            got.push(id);
        }
        let mut want = self.pending_ids();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "pending set");
        assert_eq!(
            store.pending_count().unwrap(),
            full.len() as u64,
            "pending_count"
        );
        full.iter().map(|p| p.key).collect()
    }

    fn check_all(&mut self, store: &Store) {
        store.check_invariants().unwrap();
        let mut seen = Vec::new();
        store.export(i64::MIN, |s| seen.push(s.clone())).unwrap();
        assert!(
            seen.windows(2).all(|w| w[0].key < w[1].key),
            "export out of order"
        );
        let mut got = BTreeMap::new();
        for s in &seen {
            let text = matches!(s.value, OwnedValue::Text(_));
            let idx = self.learn(store, s.key.series_id(), text);
            let value = match &s.value {
                OwnedValue::Number(x) => MValue::Num(x.to_bits()),
                OwnedValue::Text(t) => {
                    let i = TEXTS.iter().position(|x| x == t).unwrap_or(usize::MAX);
                    MValue::Text(i as u32)
                }
            };
            got.insert((s.ts_ms, idx, text), (value, s.pending));
        }
        let want: BTreeMap<Id, (MValue, bool)> = self
            .rows
            .iter()
            .map(|(id, r)| (*id, (r.value, r.pending)))
            .collect();
        assert_eq!(got, want, "export differs from the model");
        let numeric = self.rows.keys().filter(|id| !id.2).count() as u64;
        assert_eq!(store.history_count().unwrap(), numeric);
        self.check_unstamped(store);
    }

    fn check_unstamped(&self, store: &Store) {
        assert_eq!(
            store.unstamped_count(),
            self.unstamped.len() as u64,
            "unstamped_count"
        );
        let want: Vec<(Uuid, u64)> = self
            .boots
            .iter()
            .map(|&b| {
                let n = self.unstamped.keys().filter(|k| k.0 == b).count();
                (BOOTS[b], n as u64)
            })
            .collect();
        assert_eq!(
            store.unstamped_by_boot().unwrap(),
            want,
            "unstamped_by_boot"
        );
    }
}

fn options(durability: Durability, fold_after: u32) -> StoreOptions {
    StoreOptions {
        durability,
        fold_after,
        retention_ms: RETENTION_MS,
        // Far above anything a run writes: the cap is not modelled here.
        max_size_bytes: 1 << 40,
        ..StoreOptions::default()
    }
}

/// Run up to `max_ops` operations against a store at `dir/model.redb`.
// The fuzz target calls `run_model_journaled` only.
#[allow(dead_code)]
pub fn run_model(dir: &Path, c: &mut dyn Choices, durability: Durability, max_ops: usize) {
    run_model_journaled(dir, c, durability, 0, max_ops);
}

/// `run_model` with the journal on (`StoreOptions::fold_after`; 0: off).
pub fn run_model_journaled(
    dir: &Path,
    c: &mut dyn Choices,
    durability: Durability,
    fold_after: u32,
    max_ops: usize,
) {
    let mut path = dir.join("model.redb");
    let mut crashes = 0u32;
    let mut store = Some(Store::open(&path, options(durability, fold_after)).unwrap());
    let mut m = Model {
        rows: BTreeMap::new(),
        by_sid: HashMap::new(),
        sid_of: HashMap::new(),
        batches: Vec::new(),
        checkpoints: 0,
        unstamped: BTreeMap::new(),
        boots: Vec::new(),
    };
    let mut now = 0i64;
    for op in 0..max_ops {
        let Some(choice) = c.next() else { break };
        let s = store.as_ref().unwrap();
        match choice % 19 {
            // Fresh batch.
            0..=5 => {
                let n = c.next().unwrap_or(0) % 24;
                let mut batch = Vec::new();
                for _ in 0..n {
                    let r = c.next().unwrap_or(0);
                    let idx = (r % POOL.len() as u32) as usize;
                    let text = (r >> 8) % 5 == 0;
                    let ts = now + i64::from((r >> 12) % TS_SPAN) - i64::from(TS_SPAN / 2);
                    let v = if text {
                        MValue::Text((r >> 20) % TEXTS.len() as u32)
                    } else if (r >> 20) % 17 == 0 {
                        MValue::Num(f64::NAN.to_bits() | u64::from(r >> 24))
                    } else {
                        MValue::Num(f64::from((r >> 16) as u16).to_bits())
                    };
                    batch.push(((ts, idx, text), v, (r >> 28) as usize));
                }
                insert(&mut m, s, &batch);
                m.batches.push(batch);
            }
            // Duplicate of an earlier batch.
            6 => {
                if !m.batches.is_empty() {
                    let i = c.next().unwrap_or(0) as usize % m.batches.len();
                    let batch = m.batches[i].clone();
                    insert(&mut m, s, &batch);
                }
            }
            7 | 8 => {
                let full = m.check_pending(s);
                let limit = c.next().unwrap_or(0) as usize % (full.len() + 2);
                let part = s.pending(limit).unwrap();
                let keys: Vec<_> = part.iter().map(|p| p.key).collect();
                assert_eq!(keys, full[..limit.min(full.len())], "pending({limit})");
            }
            // Mark uploaded: a prefix of pending (the uploader's way) or a random subset,
            // plus keys that are not pending.
            9..=11 => {
                let full = m.check_pending(s);
                let r = c.next().unwrap_or(0);
                let mut keys: Vec<SampleKey> = if r % 2 == 0 {
                    full.iter().take((r >> 1) as usize % 60).copied().collect()
                } else {
                    full.iter()
                        .filter(|_| c.next().unwrap_or(0) % 3 == 0)
                        .copied()
                        .collect()
                };
                if r % 7 == 0 {
                    keys.push(SampleKey::new(now, (r >> 3) % 40));
                    keys.extend(keys.first().copied());
                }
                let expected = mark(&mut m, &keys);
                m.checkpoints += 1;
                let cp = Checkpoint {
                    batch_id: Uuid::from_u128(u128::from(m.checkpoints)),
                    chunk_index: m.checkpoints,
                    sample_count: keys.len() as u32,
                    first_ts_ms: 0,
                    last_ts_ms: 0,
                    uploaded_at_ms: now,
                };
                assert_eq!(
                    s.mark_uploaded(&keys, &cp).unwrap(),
                    expected,
                    "mark_uploaded"
                );
                assert_eq!(s.stats().unwrap().last_checkpoint, Some(cp));
            }
            12 => {
                let full = m.check_pending(s);
                let keys: Vec<_> = full
                    .iter()
                    .filter(|_| c.next().unwrap_or(0) % 5 == 0)
                    .copied()
                    .collect();
                let expected = mark(&mut m, &keys);
                assert_eq!(
                    s.quarantine(&keys, "400", now).unwrap(),
                    expected,
                    "quarantine"
                );
            }
            13 => {
                now += i64::from(c.next().unwrap_or(0) % 8);
                let cutoff = now - RETENTION_MS as i64;
                let before = m.rows.len();
                m.rows.retain(|id, r| r.pending || id.0 >= cutoff);
                let st = s.enforce_retention(now).unwrap();
                assert_eq!(st.expired, (before - m.rows.len()) as u64, "expired");
                assert_eq!((st.evicted, st.dropped_pending), (0, 0));
            }
            14 => {
                // Periodic durability never journals (fold_after is ignored) and a crash may
                // lose its unsynced commits by design: only a journaling store is crashed.
                let journals = fold_after > 0 && !matches!(durability, Durability::Periodic { .. });
                if journals && c.next().unwrap_or(0) % 2 == 0 {
                    // A crash: the files as they are now (the journaled commits only in the
                    // journal, their pages only in RAM) become the store; the old one closes.
                    crashes += 1;
                    let copy = dir.join(format!("crash-{crashes}.redb"));
                    std::fs::copy(&path, &copy).unwrap();
                    let journal = |p: &Path| {
                        let mut j = p.as_os_str().to_owned();
                        j.push(".journal");
                        std::path::PathBuf::from(j)
                    };
                    if journal(&path).exists() {
                        std::fs::copy(journal(&path), journal(&copy)).unwrap();
                    }
                    drop(store.take());
                    path = copy;
                } else {
                    drop(store.take());
                }
                store = Some(Store::open(&path, options(durability, fold_after)).unwrap());
                m.check_all(store.as_ref().unwrap());
            }
            15 => now += 1,
            16 => insert_unstamped(&mut m, s, c),
            17 => restamp(&mut m, s, c, now),
            _ => {
                // A store file deleted under the open store (a cleanup script): the journal is
                // folded and started again at the next write, the store file put back from the
                // open descriptor. Nothing the model holds may change.
                let journal = {
                    let mut j = path.as_os_str().to_owned();
                    j.push(".journal");
                    std::path::PathBuf::from(j)
                };
                // (A crash before the heal loses what only the deleted journal held: the
                // agent heals at its next flush.)
                let gone = if c.next().unwrap_or(0) % 2 == 0 {
                    journal
                } else {
                    path.clone()
                };
                if gone.exists() {
                    std::fs::remove_file(&gone).unwrap();
                    let s = store.as_mut().unwrap();
                    assert!(s.restore_vanished().unwrap(), "restore_vanished");
                    assert!(gone.exists());
                }
                m.check_all(store.as_ref().unwrap());
            }
        }
        if op % 16 == 15 {
            m.check_all(store.as_ref().unwrap());
        }
    }
    m.check_all(store.as_ref().unwrap());
}

/// Numbers on the boot clock of one of [`BOOTS`]: the first value of a repeated
/// (boot, boot ms, series) is kept, the rest count as duplicates.
fn insert_unstamped(m: &mut Model, s: &Store, c: &mut dyn Choices) {
    let boot = c.next().unwrap_or(0) as usize % BOOTS.len();
    let n = c.next().unwrap_or(0) % 16;
    let mut samples = Vec::new();
    let (mut inserted, mut duplicates) = (0, 0);
    for _ in 0..n {
        let r = c.next().unwrap_or(0);
        let idx = (r % POOL.len() as u32) as usize;
        let ms = i64::from((r >> 12) % TS_SPAN);
        let bits = f64::from((r >> 16) as u16 % 7).to_bits();
        samples.push(sample(
            (ms, idx, false),
            MValue::Num(bits),
            (r >> 28) as usize,
        ));
        match m.unstamped.entry((boot, ms, idx)) {
            std::collections::btree_map::Entry::Occupied(_) => duplicates += 1,
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(bits);
                inserted += 1;
            }
        }
    }
    if n > 0 && !m.boots.contains(&boot) {
        m.boots.push(boot);
    }
    let st = s.insert_unstamped(&BOOTS[boot], &samples).unwrap();
    assert_eq!(
        (st.inserted, st.duplicates, st.moved),
        (inserted, duplicates, 0),
        "insert_unstamped"
    );
    m.check_unstamped(s);
}

/// A restamp of one boot: the whole boot, or its samples before a boot-clock cut (the store
/// takes the oldest by (boot ms, series id); cutting between milliseconds keeps the model
/// free of series ids). They become pending at `boot ms + offset` by `insert`'s rule.
fn restamp(m: &mut Model, s: &Store, c: &mut dyn Choices, now: i64) {
    let boot = c.next().unwrap_or(0) as usize % BOOTS.len();
    let r = c.next().unwrap_or(0);
    // Lands among the stored rows' times, so that collisions (duplicates, moves) happen.
    let offset = now - i64::from(TS_SPAN) + i64::from(r % 8);
    let mine: Vec<(UId, u64)> = m
        .unstamped
        .iter()
        .filter(|(k, _)| k.0 == boot)
        .map(|(k, v)| (*k, *v))
        .collect();
    let (limit, taken): (usize, Vec<(UId, u64)>) = if (r >> 3) % 3 == 0 {
        (usize::MAX, mine.clone())
    } else {
        let cut = i64::from((r >> 5) % (TS_SPAN + 1));
        let taken: Vec<_> = mine.iter().filter(|(k, _)| k.1 < cut).copied().collect();
        (taken.len(), taken)
    };
    for (k, _) in &taken {
        m.unstamped.remove(k);
    }
    let remaining = (mine.len() - taken.len()) as u64;
    if remaining == 0 {
        m.boots.retain(|&b| b != boot);
    }
    let batch: Vec<(Id, MValue, usize)> = taken
        .iter()
        .map(|&((_, ms, idx), bits)| ((ms + offset, idx, false), MValue::Num(bits), 0))
        .collect();
    let (inserted, duplicates, moved) = apply_insert(m, &batch);
    let st = s.restamp(&BOOTS[boot], offset, limit).unwrap();
    assert_eq!(
        st,
        belabox_store::RestampStats {
            restamped: taken.len() as u64,
            inserted: inserted as u64,
            duplicates: duplicates as u64,
            moved: moved as u64,
            remaining,
        },
        "restamp of boot {boot} (limit {limit}, offset {offset})"
    );
    m.check_unstamped(s);
}

fn insert(m: &mut Model, s: &Store, batch: &[(Id, MValue, usize)]) {
    let samples: Vec<_> = batch
        .iter()
        .map(|&(id, v, var)| sample(id, v, var))
        .collect();
    let expected = apply_insert(m, batch);
    let st = s.insert(&samples).unwrap();
    assert_eq!((st.inserted, st.duplicates, st.moved), expected, "insert");
}

/// The model side of an insert: (inserted, duplicates, moved).
fn apply_insert(m: &mut Model, batch: &[(Id, MValue, usize)]) -> (usize, usize, usize) {
    // The store's rule (ENCODING.md § 1): in key order (per series: by time, then batch
    // order), a key holding the same value is a duplicate, a different value (stored, or
    // earlier in the batch) moves the sample to ts + 1 ms, placed after the rest of the batch.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| (batch[i].0.1, batch[i].0.2, batch[i].0.0));
    let before: std::collections::HashSet<Id> = m.rows.keys().copied().collect();
    let mut first_in_batch: HashMap<Id, MValue> = HashMap::new();
    let (mut inserted, mut duplicates, mut moved) = (0, 0, 0);
    let mut displaced: Vec<(Id, MValue)> = Vec::new();
    for i in order {
        let (id, v, _) = batch[i];
        if let Some(first) = first_in_batch.get(&id) {
            if *first == v || id.2 {
                duplicates += 1;
            } else {
                displaced.push((id, v));
            }
            continue;
        }
        first_in_batch.insert(id, v);
        if before.contains(&id) {
            if m.rows[&id].value == v || id.2 {
                duplicates += 1;
            } else {
                displaced.push((id, v));
            }
            continue;
        }
        m.rows.insert(
            id,
            Row {
                value: v,
                pending: !id.2,
            },
        );
        inserted += 1;
    }
    for (id, v) in displaced {
        let mut placed = false;
        for step in 1..=60_000i64 {
            let k = (id.0 + step, id.1, id.2);
            match m.rows.get(&k) {
                Some(r) if r.value == v => break,
                Some(_) => continue,
                None => {
                    m.rows.insert(
                        k,
                        Row {
                            value: v,
                            pending: true,
                        },
                    );
                    inserted += 1;
                    moved += 1;
                    placed = true;
                    break;
                }
            }
        }
        if !placed {
            duplicates += 1;
        }
    }
    (inserted, duplicates, moved)
}

/// Model side of mark_uploaded/quarantine: how many of `keys` were pending.
fn mark(m: &mut Model, keys: &[SampleKey]) -> usize {
    let mut n = 0;
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        if !seen.insert(*k) {
            continue;
        }
        let Some(&(idx, false)) = m.by_sid.get(&k.series_id()) else {
            continue;
        };
        if let Some(r) = m.rows.get_mut(&(k.ts_ms(), idx, false)) {
            if r.pending {
                r.pending = false;
                n += 1;
            }
        }
    }
    n
}
