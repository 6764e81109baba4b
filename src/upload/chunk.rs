//! The pure half of the uploader: which samples may be sent, how a batch is cut into chunks,
//! and a chunk's VictoriaMetrics JSONL.
//!
//! Nothing here does I/O or reads the clock; `now_ms` is always a parameter.

use std::ops::Range;
use std::time::Duration;

use crate::upload::jsonl::{JsonlError, write_head, write_series_after};

/// VictoriaMetrics drops (with a 204) samples more than two days ahead of its clock.
pub const MAX_FUTURE: Duration = Duration::from_secs(2 * 86_400);

/// What the encoder needs to know of one pending sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub series_id: u32,
    pub ts_ms: i64,
    pub value: f64,
}

/// Implemented by the store's pending sample and by test fixtures.
pub trait AsPoint {
    fn point(&self) -> Point;
}

impl AsPoint for Point {
    fn point(&self) -> Point {
        *self
    }
}

/// A series as written on a JSONL line: `__name__`, then `device_id`, then its own labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMeta {
    pub name: String,
    pub device_id: String,
    pub labels: Vec<(String, String)>,
    /// The JSONL line's head for this series ([`write_head`]): made once, copied on every line.
    jsonl_head: Box<[u8]>,
}

impl SeriesMeta {
    pub fn new(name: String, device_id: String, labels: Vec<(String, String)>) -> SeriesMeta {
        let mut head = Vec::new();
        write_head(
            &mut head,
            &name,
            &device_id,
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        SeriesMeta {
            name,
            device_id,
            labels,
            jsonl_head: head.into_boxed_slice(),
        }
    }
}

/// Why a sample must not be sent. VictoriaMetrics would answer 204 and silently drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// NaN or ±∞: not representable in JSON.
    NonFinite,
    /// Older than `max_sample_age` (beyond the server's retention): never becomes valid.
    TooOld,
    /// More than [`MAX_FUTURE`] ahead: becomes valid as time passes (a clock that was wrong).
    Future,
}

impl Verdict {
    /// The `reason` label of `uploader_samples_rejected_total` and the quarantine reason.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Send => "",
            Verdict::NonFinite => "non_finite",
            Verdict::TooOld => "too_old",
            Verdict::Future => "future",
        }
    }
}

/// The accepted timestamp range `[now − max_age, now + MAX_FUTURE]`, inclusive, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
}

impl Window {
    pub fn new(now_ms: i64, max_age: Duration) -> Window {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Window {
            min_ts_ms: now_ms.saturating_sub(ms(max_age)),
            max_ts_ms: now_ms.saturating_add(ms(MAX_FUTURE)),
        }
    }

    /// Non-finite wins over a bad timestamp: such a sample can never be sent.
    pub fn classify(&self, ts_ms: i64, value: f64) -> Verdict {
        if !value.is_finite() {
            Verdict::NonFinite
        } else if ts_ms < self.min_ts_ms {
            Verdict::TooOld
        } else if ts_ms > self.max_ts_ms {
            Verdict::Future
        } else {
            Verdict::Send
        }
    }
}

/// The receiver's clock as best known, the "now" of the [`Window`]: the boot clock plus the
/// server − boot offset of the clock-skew check (`skew_offset_ms`), else of the uploader's last
/// answer's `Date` (`answer_offset_ms`); the local wall clock only when neither is known. The
/// boot clock never steps, so a wall clock that jumped days since cannot bend it.
pub fn receiver_now_ms(
    wall_ms: i64,
    boot_ms: i64,
    skew_offset_ms: Option<i64>,
    answer_offset_ms: Option<i64>,
) -> i64 {
    match skew_offset_ms.or(answer_offset_ms) {
        Some(off) => boot_ms.saturating_add(off),
        None => wall_ms,
    }
}

/// Consecutive ranges of at most `chunk_size` (≥ 1) covering `0..len`.
pub fn chunk_ranges(len: usize, chunk_size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = chunk_size.max(1);
    (0..len.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(len))
}

/// The two halves of a range of at least two elements, left first.
pub fn halves(r: &Range<usize>) -> (Range<usize>, Range<usize>) {
    let mid = r.start + (r.end - r.start) / 2;
    (r.start..mid, mid..r.end)
}

/// Why a chunk could not be encoded. The uploader filters and resolves series first, so either
/// is a bug upstream; the encoder still refuses rather than emit a line VM would drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    UnknownSeries(u32),
    Jsonl(JsonlError),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::UnknownSeries(id) => write!(f, "series {id} is not known"),
            EncodeError::Jsonl(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Refills `order` with the indices of `samples` sorted by (series id, timestamp, index) and
/// yields its runs of one series, `(series id, indices)`, by ascending id: the grouping both
/// encoders send (one line or `TimeSeries` per series, its samples in time order).
pub(crate) fn by_series<'a, T: AsPoint>(
    samples: &'a [T],
    order: &'a mut Vec<u32>,
) -> SeriesRuns<'a, T> {
    let key = |i: u32| {
        let p = samples[i as usize].point();
        (p.series_id, p.ts_ms, i)
    };
    order.clear();
    let max_id = samples.iter().map(|s| s.point().series_id).max();
    match max_id {
        // Series ids are dense (interned from 0), so a counting sort by id is linear; the
        // pending queue hands samples over in (timestamp, id) order, so each series' run is
        // already in time order and only a run that is not gets sorted. The comparison sort of
        // every sample cost ≈ 600 instructions a sample (benches/phases, issue 30).
        Some(max) if (max as usize) <= samples.len().saturating_mul(4).saturating_add(4096) => {
            let mut starts = vec![0u32; max as usize + 2];
            for s in samples {
                starts[s.point().series_id as usize + 1] += 1;
            }
            for i in 1..starts.len() {
                starts[i] += starts[i - 1];
            }
            order.resize(samples.len(), 0);
            let mut next = starts.clone();
            for (i, s) in samples.iter().enumerate() {
                let slot = &mut next[s.point().series_id as usize];
                order[*slot as usize] = i as u32;
                *slot += 1;
            }
            for w in starts.windows(2) {
                let run = &mut order[w[0] as usize..w[1] as usize];
                if !run.is_sorted_by_key(|&i| key(i)) {
                    run.sort_unstable_by_key(|&i| key(i));
                }
            }
        }
        _ => {
            order.extend(0..samples.len() as u32);
            order.sort_unstable_by_key(|&i| key(i));
        }
    }
    SeriesRuns {
        samples,
        rest: order,
    }
}

/// The iterator of [`by_series`].
pub(crate) struct SeriesRuns<'a, T> {
    samples: &'a [T],
    rest: &'a [u32],
}

impl<'a, T: AsPoint> Iterator for SeriesRuns<'a, T> {
    type Item = (u32, &'a [u32]);

    fn next(&mut self) -> Option<(u32, &'a [u32])> {
        let id = self
            .samples
            .get(*self.rest.first()? as usize)?
            .point()
            .series_id;
        let end = self
            .rest
            .iter()
            .position(|&j| self.samples.get(j as usize).map(|s| s.point().series_id) != Some(id))
            .unwrap_or(self.rest.len());
        let (run, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some((id, run))
    }
}

/// Writes chunks as JSONL with scratch buffers reused across calls.
#[derive(Debug, Default)]
pub struct JsonlEncoder {
    order: Vec<u32>,
    values: Vec<f64>,
    timestamps: Vec<i64>,
}

impl JsonlEncoder {
    pub fn new() -> JsonlEncoder {
        JsonlEncoder::default()
    }

    /// Replaces `out` with the JSONL of `samples`: one line per series, lines ordered by series
    /// id, each line's samples in timestamp order. Returns the number of lines. On error `out`
    /// is left empty.
    #[inline(never)] // its own frame in profiles (benches/phases.rs)
    pub fn encode<'m, T: AsPoint>(
        &mut self,
        samples: &[T],
        series: impl Fn(u32) -> Option<&'m SeriesMeta>,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        out.clear();
        let mut lines = 0;
        for (id, run) in by_series(samples, &mut self.order) {
            self.values.clear();
            self.timestamps.clear();
            for &j in run {
                let p = samples[j as usize].point();
                self.values.push(p.value);
                self.timestamps.push(p.ts_ms);
            }
            let result = match series(id) {
                None => Err(EncodeError::UnknownSeries(id)),
                Some(m) => write_series_after(out, &m.jsonl_head, &self.values, &self.timestamps)
                    .map_err(EncodeError::Jsonl),
            };
            if let Err(e) = result {
                out.clear();
                return Err(e);
            }
            lines += 1;
        }
        Ok(lines)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    const NOW: i64 = 1_795_824_323_000;
    const DAY_MS: i64 = 86_400_000;

    pub(crate) fn meta(name: &str, labels: &[(&str, &str)]) -> SeriesMeta {
        SeriesMeta::new(
            name.to_owned(),
            "rock5b".to_owned(),
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    pub(crate) fn p(series_id: u32, ts_ms: i64, value: f64) -> Point {
        Point {
            series_id,
            ts_ms,
            value,
        }
    }

    #[test]
    fn receiver_now_prefers_the_skew_check_then_the_answers_then_the_wall() {
        const BOOT: i64 = 40_000;
        const WALL: i64 = NOW + 3 * DAY_MS; // jumped 3 days ahead
        let off = NOW - BOOT;
        // (skew offset, answer offset) → now
        let table = [
            (None, None, WALL),
            (None, Some(off), NOW),
            (Some(off), None, NOW),
            (Some(off), Some(off + 1_000), NOW),
            (Some(off + 1_000), Some(off), NOW + 1_000),
        ];
        for (skew, answer, want) in table {
            assert_eq!(
                receiver_now_ms(WALL, BOOT, skew, answer),
                want,
                "{skew:?} {answer:?}"
            );
        }
        // The window around it: a sample stamped by the jumped wall clock is future.
        let w = Window::new(
            receiver_now_ms(WALL, BOOT, None, Some(off)),
            Duration::from_secs(30 * 86_400),
        );
        assert_eq!(w.classify(WALL, 1.0), Verdict::Future);
    }

    #[test]
    fn validity_window() {
        let w = Window::new(NOW, Duration::from_secs(30 * 86_400));
        assert_eq!(w.classify(NOW, 1.0), Verdict::Send);
        assert_eq!(w.classify(NOW - 30 * DAY_MS, 1.0), Verdict::Send);
        assert_eq!(w.classify(NOW - 30 * DAY_MS - 1, 1.0), Verdict::TooOld);
        assert_eq!(w.classify(NOW + 2 * DAY_MS, -0.0), Verdict::Send);
        assert_eq!(w.classify(NOW + 2 * DAY_MS + 1, 1.0), Verdict::Future);
        assert_eq!(w.classify(NOW, f64::NAN), Verdict::NonFinite);
        assert_eq!(w.classify(NOW, f64::INFINITY), Verdict::NonFinite);
        assert_eq!(w.classify(0, f64::NEG_INFINITY), Verdict::NonFinite);
        assert_eq!(w.classify(i64::MIN, f64::MAX), Verdict::TooOld);
        assert_eq!(w.classify(i64::MAX, f64::MIN_POSITIVE), Verdict::Future);
        // Extremes do not overflow.
        let w = Window::new(i64::MIN + 5, Duration::MAX);
        assert_eq!(w.min_ts_ms, i64::MIN);
        let w = Window::new(i64::MAX - 5, Duration::ZERO);
        assert_eq!(w.max_ts_ms, i64::MAX);
        assert_eq!(Verdict::TooOld.reason(), "too_old");
    }

    #[test]
    fn chunk_ranges_cover_exactly() {
        for len in 0..120 {
            for size in [1, 2, 7, 50, 200] {
                let rs: Vec<_> = chunk_ranges(len, size).collect();
                let mut next = 0;
                for r in &rs {
                    assert_eq!(r.start, next);
                    assert!(r.end > r.start && r.end - r.start <= size);
                    next = r.end;
                }
                assert_eq!(next, len);
                assert_eq!(rs.len(), len.div_ceil(size));
            }
        }
        assert_eq!(chunk_ranges(5, 0).count(), 5);
        assert_eq!(halves(&(10..15)), (10..12, 12..15));
        assert_eq!(halves(&(3..5)), (3..4, 4..5));
    }

    #[test]
    fn groups_samples_of_a_series_on_one_line() {
        let series: HashMap<u32, SeriesMeta> = [
            (1, meta("cpu_usage_percent", &[("core", "0")])),
            (2, meta("disk_read_bytes_total", &[("device", "mmcblk0")])),
            (3, meta("system_load1", &[])),
        ]
        .into();
        // Interleaved and out of order on purpose.
        let chunk = [
            p(2, 2000, 4096.0),
            p(1, 3000, 12.5),
            p(3, 1000, 0.25),
            p(1, 1000, 10.0),
            p(2, 1000, 0.0),
            p(1, 2000, 100.0),
        ];
        let mut enc = JsonlEncoder::new();
        let mut out = b"stale".to_vec();
        let lines = enc.encode(&chunk, |id| series.get(&id), &mut out).unwrap();
        assert_eq!(lines, 3);
        let text = std::str::from_utf8(&out).unwrap();
        let expected = "\
{\"metric\":{\"__name__\":\"cpu_usage_percent\",\"device_id\":\"rock5b\",\"core\":\"0\"},\"values\":[10,100,12.5],\"timestamps\":[1000,2000,3000]}
{\"metric\":{\"__name__\":\"disk_read_bytes_total\",\"device_id\":\"rock5b\",\"device\":\"mmcblk0\"},\"values\":[0,4096],\"timestamps\":[1000,2000]}
{\"metric\":{\"__name__\":\"system_load1\",\"device_id\":\"rock5b\"},\"values\":[0.25],\"timestamps\":[1000]}
";
        assert_eq!(text, expected);

        // The same encoder and buffer again: same bytes, nothing left over.
        let lines = enc.encode(&chunk, |id| series.get(&id), &mut out).unwrap();
        assert_eq!(lines, 3);
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);

        // An empty chunk is an empty body.
        assert_eq!(
            enc.encode::<Point>(&[], |id| series.get(&id), &mut out),
            Ok(0)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn refuses_unknown_series_and_non_finite() {
        let series: HashMap<u32, SeriesMeta> = [(1, meta("m", &[]))].into();
        let mut enc = JsonlEncoder::new();
        let mut out = Vec::new();
        assert_eq!(
            enc.encode(
                &[p(1, 1, 1.0), p(9, 1, 1.0)],
                |id| series.get(&id),
                &mut out
            ),
            Err(EncodeError::UnknownSeries(9))
        );
        assert!(out.is_empty());
        assert_eq!(
            enc.encode(&[p(1, 1, f64::NAN)], |id| series.get(&id), &mut out),
            Err(EncodeError::Jsonl(JsonlError::NonFinite))
        );
        assert!(out.is_empty());
    }

    /// The counting sort and its fallback give exactly the order of a comparison sort by
    /// (series, timestamp, index): dense and sparse ids, runs in and out of time order, equal
    /// timestamps.
    #[test]
    fn by_series_orders_as_a_comparison_sort() {
        let mut rng = oorandom::Rand64::new(30);
        let mut order = Vec::new();
        for round in 0..400 {
            let n = rng.rand_range(0..300) as usize;
            // Dense ids, then ids so sparse that the fallback sorts.
            let id_space = if round % 4 == 3 {
                u64::from(u32::MAX)
            } else {
                1 + round as u64 % 90
            };
            let in_time_order = round % 2 == 0;
            let samples: Vec<Point> = (0..n)
                .map(|i| {
                    let ts = if in_time_order {
                        (i / 7) as i64
                    } else {
                        rng.rand_range(0..20) as i64
                    };
                    p(rng.rand_range(0..id_space) as u32, ts, i as f64)
                })
                .collect();
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by_key(|&i| {
                let q = samples[i as usize];
                (q.series_id, q.ts_ms, i)
            });
            let runs: Vec<(u32, Vec<u32>)> = by_series(&samples, &mut order)
                .map(|(id, run)| (id, run.to_vec()))
                .collect();
            let flat: Vec<u32> = runs.iter().flat_map(|(_, r)| r.iter().copied()).collect();
            assert_eq!(flat, want, "round {round}");
            for (id, run) in &runs {
                assert!(run.iter().all(|&i| samples[i as usize].series_id == *id));
            }
            let ids: Vec<u32> = runs.iter().map(|(id, _)| *id).collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "round {round}: one run per series"
            );
        }
    }
}
