//! The latest committed value of every system series, for `/metrics` (pull).
//!
//! The collection loop updates it after each successful flush ([`LatestTable::update`], from
//! the ring's samples, now stored); the health responder renders it ([`LatestTable::visit`]).
//!
//! Invariants:
//! - A series is a metric and its labels (`device_id` and `device.labels` are the same for every
//!   series of a process and are added when rendering). The table holds each series at most
//!   once, sorted by (metric, labels), so the rows of one metric family are adjacent.
//! - Fixed capacity, reserved at start ([`LatestTable::for_config`]: the largest collection
//!   tick, [`RingSize::max_tick`], since one tick emits each series at most once). Neither the
//!   update nor the rendering allocates after that; a new series that finds the table full is
//!   skipped and counted ([`LatestTable::skipped`]), never a reallocation.
//! - Only committed samples enter it, and for each collector only its newest collection of the
//!   flush. A series its collector did not report in its newest collection (an unplugged disk,
//!   an interface gone) is removed, so /metrics does not serve it forever. A collector that
//!   pushed nothing in a flush (failing, or not due) keeps its rows.
//! - A row taken on the boot clock (the wall clock was untrusted, [`crate::monitor::clock`])
//!   carries no timestamp: it is served without one (the scraper stamps it), never as 1970.
//!
//! One `Mutex`: the flush holds it for one pass over its samples, `/metrics` for one render.

use std::sync::{Mutex, MutexGuard};

use crate::catalog::CollectorKind;
use crate::model::sample::{Label, Metric, Sample};

/// One series' newest committed sample.
#[derive(Debug, Clone)]
struct Row {
    sample: Sample,
    /// False: `sample.ts_ms` is on the boot clock and is not served.
    stamped: bool,
    /// The update that last wrote the row.
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    rows: Vec<Row>,
    generation: u64,
    skipped: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct LatestTable {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// One row as `/metrics` renders it.
#[derive(Debug, Clone, Copy)]
pub struct LatestRow<'a> {
    pub metric: Metric,
    pub labels: &'a [Label],
    pub value: f64,
    /// ms since the Unix epoch; `None` for a sample taken on the boot clock.
    pub ts_ms: Option<i64>,
}

/// Orders series: metric first (so a family's rows are adjacent), then labels pairwise.
fn cmp_series(a: &Sample, metric: Metric, labels: &[Label]) -> core::cmp::Ordering {
    a.metric.cmp(&metric).then_with(|| {
        let ka = a.labels.iter().map(|l| (l.key, l.value.as_str()));
        let kb = labels.iter().map(|l| (l.key, l.value.as_str()));
        ka.cmp(kb)
    })
}

impl LatestTable {
    /// A table of at most `capacity` series, reserved now.
    pub fn with_capacity(capacity: usize) -> LatestTable {
        LatestTable {
            inner: Mutex::new(Inner {
                rows: Vec::with_capacity(capacity),
                generation: 0,
                skipped: 0,
            }),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Series held now.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// New series skipped because the table was full, since start.
    pub fn skipped(&self) -> u64 {
        self.lock().skipped
    }

    /// Takes in a flush's committed samples (arrival order, as the ring holds them). `stamped`
    /// is false when their timestamps are on the boot clock. Allocates nothing.
    /// `samples` is called twice (two passes).
    #[inline(never)] // its own frame in profiles (benches/phases.rs)
    pub fn update<'a, I>(&self, samples: impl Fn() -> I, stamped: bool)
    where
        I: Iterator<Item = &'a Sample>,
    {
        // The newest collection of each collector in this flush: its samples share one
        // timestamp (one per tick), the largest of the collector's in the flush.
        let mut newest: [Option<i64>; CollectorKind::COUNT] = [None; CollectorKind::COUNT];
        for s in samples() {
            if let Some(n) = newest.get_mut(s.metric.collector().index()) {
                *n = Some(n.map_or(s.ts_ms, |t| t.max(s.ts_ms)));
            }
        }
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        let generation = inner.generation;
        for s in samples() {
            let collector = s.metric.collector().index();
            if newest.get(collector).copied().flatten() != Some(s.ts_ms) {
                continue;
            }
            let found = inner
                .rows
                .binary_search_by(|r| cmp_series(&r.sample, s.metric, &s.labels));
            match found {
                Ok(i) => {
                    if let Some(r) = inner.rows.get_mut(i) {
                        r.sample.ts_ms = s.ts_ms;
                        r.sample.value = s.value;
                        r.stamped = stamped;
                        r.generation = generation;
                    }
                }
                Err(i) if inner.rows.len() < self.capacity => inner.rows.insert(
                    i,
                    Row {
                        sample: s.clone(),
                        stamped,
                        generation,
                    },
                ),
                Err(_) => inner.skipped += 1,
            }
        }
        // Series their collector no longer reports.
        inner.rows.retain(|r| {
            let reported = newest
                .get(r.sample.metric.collector().index())
                .copied()
                .flatten()
                .is_some();
            !reported || r.generation == generation
        });
    }

    /// Calls `f` on every row, sorted by (metric, labels), under the table's lock.
    pub fn visit(&self, mut f: impl FnMut(LatestRow<'_>)) {
        let inner = self.lock();
        for r in &inner.rows {
            f(LatestRow {
                metric: r.sample.metric,
                labels: &r.sample.labels,
                value: r.sample.value,
                ts_ms: r.stamped.then_some(r.sample.ts_ms),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::LabelKey;

    fn rows(t: &LatestTable) -> Vec<(String, Vec<String>, f64, Option<i64>)> {
        let mut out = Vec::new();
        t.visit(|r| {
            out.push((
                r.metric.name().to_owned(),
                r.labels.iter().map(|l| l.value.to_string()).collect(),
                r.value,
                r.ts_ms,
            ));
        });
        out
    }

    fn disk(ts: i64, dev: &str, v: f64) -> Sample {
        Sample::new(Metric::DiskReadBytesTotal, ts, v)
            .with_label(LabelKey::Device, dev)
            .unwrap()
    }

    #[test]
    fn keeps_the_newest_collection_sorted_by_series() {
        let t = LatestTable::with_capacity(8);
        let flush = [
            Sample::new(Metric::MemoryTotalBytes, 1000, 8.0),
            disk(1000, "sdb", 1.0),
            disk(1000, "sda", 2.0),
            Sample::new(Metric::MemoryTotalBytes, 2000, 9.0),
            disk(2000, "sdb", 3.0),
            disk(2000, "sda", 4.0),
        ];
        t.update(|| flush.iter(), true);
        assert_eq!(
            rows(&t),
            [
                ("memory_total_bytes".into(), vec![], 9.0, Some(2000)),
                (
                    "disk_read_bytes_total".into(),
                    vec!["sda".into()],
                    4.0,
                    Some(2000)
                ),
                (
                    "disk_read_bytes_total".into(),
                    vec!["sdb".into()],
                    3.0,
                    Some(2000)
                ),
            ]
        );
        // sdb unplugged: gone with the disk collector's next collection; memory not collected
        // in this flush keeps its row. Boot-clock samples carry no timestamp.
        let next = [disk(3000, "sda", 5.0)];
        t.update(|| next.iter(), false);
        assert_eq!(
            rows(&t),
            [
                ("memory_total_bytes".into(), vec![], 9.0, Some(2000)),
                (
                    "disk_read_bytes_total".into(),
                    vec!["sda".into()],
                    5.0,
                    None
                ),
            ]
        );
        assert_eq!(t.skipped(), 0);
    }

    #[test]
    fn a_full_table_skips_new_series_and_counts_them() {
        let t = LatestTable::with_capacity(2);
        let flush = [disk(1, "a", 1.0), disk(1, "b", 1.0), disk(1, "c", 1.0)];
        t.update(|| flush.iter(), true);
        assert_eq!(t.len(), 2);
        assert_eq!(t.skipped(), 1);
        let cap = t.lock().rows.capacity();
        t.update(|| flush.iter(), true);
        assert_eq!(t.lock().rows.capacity(), cap);
    }
}
