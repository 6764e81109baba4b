//! What every format's parser hands over: a [`Batch`] of validated series and samples, built by
//! a [`Builder`] that applies the rules of the request (docs/ingest.md "What is accepted"):
//!
//! - a metric name is `[a-zA-Z_:][a-zA-Z0-9_:]*`, at most [`MAX_NAME`] bytes;
//! - label names and values follow `device.labels`' rules (a Prometheus label name, not `__`-
//!   prefixed, at most 64 bytes; a value of at most 128 bytes of UTF-8 without control
//!   characters), at most 16 labels a series; a label with an empty value is no label
//!   (Prometheus' rule); a name given twice is refused;
//! - `device_id` and the names of `device.labels` are the agent's: a producer that sends one is
//!   refused (400), never overridden and never silently dropped;
//! - a `session_id` value is a canonical UUID (`session.rs`; 400 otherwise);
//! - a sample older than the retention, stamped more than `ingest.max_future` ahead, or not a
//!   finite number is refused alone and counted ([`Refused`]); the rest of the request stands;
//! - at most `ingest.max_samples_per_request` samples (413 past it).
//!
//! The first bad line ends the request with a 400 naming it; nothing of it is stored. Strings are
//! copied unescaped into one arena; the batch's memory is bounded by a small multiple of the
//! (already bounded) body.

use std::hash::{DefaultHasher, Hasher};
use std::ops::Range;

/// Longest metric name, bytes.
pub const MAX_NAME: usize = 256;

/// A request refused whole: the status and the text of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u32>,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Samples refused one by one (the request stands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub too_old: u64,
    pub future: u64,
    pub non_finite: u64,
    /// Native histograms and other values the agent does not store.
    pub unsupported: u64,
}

impl Refused {
    pub fn total(&self) -> u64 {
        self.too_old + self.future + self.non_finite + self.unsupported
    }
}

/// What the request may contain, from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `device.labels`' names (a producer may not send them), and `device_id`.
    pub own_labels: Vec<String>,
    pub max_samples: usize,
    pub retention_ms: i64,
    pub max_future_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    Number(f64),
    /// An event: kept locally, never uploaded (arena span).
    Text(u32, u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRec {
    pub name: Range<u32>,
    /// Into [`Batch::labels`], sorted by name.
    pub labels: Range<u32>,
    /// Of the name and sorted labels: the cardinality limit's identity.
    pub hash: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRec {
    pub series: u32,
    pub ts_ms: i64,
    pub value: SampleValue,
}

/// A request's validated content.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub arena: Vec<u8>,
    pub labels: Vec<(Range<u32>, Range<u32>)>,
    pub series: Vec<SeriesRec>,
    pub samples: Vec<SampleRec>,
    pub refused: Refused,
}

impl Batch {
    /// The arena's text at `r` (validated UTF-8 when it was added; "" otherwise).
    pub fn str(&self, r: &Range<u32>) -> &str {
        self.arena
            .get(r.start as usize..r.end as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// Builds a [`Batch`], one series at a time: [`Builder::start`], the name, the labels,
/// [`Builder::finish`], then its samples.
#[derive(Debug)]
pub struct Builder<'r> {
    rules: &'r Rules,
    now_ms: i64,
    /// "line" or "time series": how a refusal names where it is.
    unit: &'static str,
    line: usize,
    batch: Batch,
    name: Range<u32>,
    labels_start: usize,
}

impl<'r> Builder<'r> {
    pub fn new(rules: &'r Rules, now_ms: i64, unit: &'static str) -> Builder<'r> {
        Builder {
            rules,
            now_ms,
            unit,
            line: 0,
            batch: Batch::default(),
            name: 0..0,
            labels_start: 0,
        }
    }

    fn pos(&self) -> u32 {
        u32::try_from(self.batch.arena.len()).unwrap_or(u32::MAX)
    }

    /// A 400 naming the current line.
    pub fn bad(&self, what: impl std::fmt::Display) -> Refusal {
        Refusal::new(400, format!("{} {}: {what}", self.unit, self.line))
    }

    /// Begins a series of `line`.
    pub fn start(&mut self, line: usize) {
        self.line = line;
        self.labels_start = self.batch.labels.len();
        self.name = 0..0;
    }

    /// The name, written by `write` into the arena.
    pub fn name(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.pos();
        write(&mut self.batch.arena);
        self.name = start..self.pos();
    }

    /// One label, name and value written by the closures. A label with an empty value is
    /// dropped (Prometheus' rule).
    pub fn label(
        &mut self,
        name: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>) -> Result<(), &'static str>,
    ) -> Result<(), Refusal> {
        let n0 = self.pos();
        name(&mut self.batch.arena);
        let n1 = self.pos();
        value(&mut self.batch.arena).map_err(|e| self.bad(e))?;
        let v1 = self.pos();
        if v1 == n1 {
            self.batch.arena.truncate(n0 as usize);
            return Ok(());
        }
        self.batch.labels.push((n0..n1, n1..v1));
        Ok(())
    }

    /// Validates the series begun by [`Builder::start`]; returns its index.
    pub fn finish(&mut self) -> Result<u32, Refusal> {
        let name = self.name.clone();
        let name_bytes = self
            .batch
            .arena
            .get(name.start as usize..name.end as usize)
            .unwrap_or_default();
        if let Err(e) = check_metric_name(name_bytes) {
            return Err(self.bad(e));
        }
        let labels = self
            .batch
            .labels
            .get_mut(self.labels_start..)
            .unwrap_or_default();
        if labels.len() > crate::config::MAX_DEVICE_LABELS {
            let n = labels.len();
            return Err(self.bad(format_args!(
                "{n} labels, more than {} (a bounded series size)",
                crate::config::MAX_DEVICE_LABELS
            )));
        }
        let arena = &self.batch.arena;
        let text = |r: &Range<u32>| {
            arena
                .get(r.start as usize..r.end as usize)
                .unwrap_or_default()
        };
        labels.sort_by(|a, b| text(&a.0).cmp(text(&b.0)));
        let mut hasher = DefaultHasher::new();
        hasher.write(name_bytes);
        let mut problem: Option<String> = None;
        let mut prev: Option<&[u8]> = None;
        for (k, v) in labels.iter() {
            let (k, v) = (text(k), text(v));
            if let Err(e) = check_label(k, v, &self.rules.own_labels) {
                problem = Some(e);
                break;
            }
            if prev == Some(k) {
                problem = Some(format!(
                    "label {:?} given twice",
                    String::from_utf8_lossy(k)
                ));
                break;
            }
            prev = Some(k);
            hasher.write_u8(0xff);
            hasher.write(k);
            hasher.write_u8(0xfe);
            hasher.write(v);
        }
        if let Some(p) = problem {
            return Err(self.bad(p));
        }
        let idx = u32::try_from(self.batch.series.len()).unwrap_or(u32::MAX);
        let start = u32::try_from(self.labels_start).unwrap_or(u32::MAX);
        let end = u32::try_from(self.batch.labels.len()).unwrap_or(u32::MAX);
        self.batch.series.push(SeriesRec {
            name,
            labels: start..end,
            hash: hasher.finish(),
        });
        Ok(idx)
    }

    /// The time window and the sample cap; `Ok(None)` when the sample is refused alone.
    fn admit(&mut self, ts_ms: Option<i64>) -> Result<Option<i64>, Refusal> {
        if self.batch.samples.len() >= self.rules.max_samples {
            return Err(Refusal::new(
                413,
                format!(
                    "more than {} samples in one request (ingest.max_samples_per_request)",
                    self.rules.max_samples
                ),
            ));
        }
        let ts = ts_ms.unwrap_or(self.now_ms);
        if ts < self.now_ms.saturating_sub(self.rules.retention_ms) {
            self.batch.refused.too_old += 1;
            return Ok(None);
        }
        if ts > self.now_ms.saturating_add(self.rules.max_future_ms) {
            self.batch.refused.future += 1;
            return Ok(None);
        }
        Ok(Some(ts))
    }

    /// A numeric sample of `series` (`None`: now).
    pub fn sample(&mut self, series: u32, ts_ms: Option<i64>, value: f64) -> Result<(), Refusal> {
        if !value.is_finite() {
            self.batch.refused.non_finite += 1;
            return Ok(());
        }
        if let Some(ts_ms) = self.admit(ts_ms)? {
            self.batch.samples.push(SampleRec {
                series,
                ts_ms,
                value: SampleValue::Number(value),
            });
        }
        Ok(())
    }

    /// A text sample (an event) of `series`, written by `write`.
    pub fn text(
        &mut self,
        series: u32,
        ts_ms: Option<i64>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), Refusal> {
        let Some(ts_ms) = self.admit(ts_ms)? else {
            return Ok(());
        };
        let start = self.pos();
        write(&mut self.batch.arena);
        let end = self.pos();
        let bytes = self
            .batch
            .arena
            .get(start as usize..end as usize)
            .unwrap_or_default();
        if bytes.len() > belabox_store::MAX_STRING_LEN || std::str::from_utf8(bytes).is_err() {
            return Err(self.bad(format_args!(
                "a text value must be UTF-8 of at most {} bytes",
                belabox_store::MAX_STRING_LEN
            )));
        }
        self.batch.samples.push(SampleRec {
            series,
            ts_ms,
            value: SampleValue::Text(start, end),
        });
        Ok(())
    }

    /// A sample the agent does not store (a native histogram), counted.
    pub fn unsupported(&mut self, n: usize) {
        self.batch.refused.unsupported += n as u64;
    }

    pub fn into_batch(self) -> Batch {
        self.batch
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, at most [`MAX_NAME`] bytes.
pub fn check_metric_name(name: &[u8]) -> Result<(), String> {
    let ok = name
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if !ok {
        return Err(format!(
            "a metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got {:?}",
            String::from_utf8_lossy(name.get(..MAX_NAME.min(name.len())).unwrap_or_default())
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "a metric name may be at most {MAX_NAME} bytes, got {}",
            name.len()
        ));
    }
    Ok(())
}

/// `device.labels`' rules for one label, and none of the agent's own names.
pub fn check_label(name: &[u8], value: &[u8], own: &[String]) -> Result<(), String> {
    let Ok(name) = std::str::from_utf8(name) else {
        return Err("a label name must be ASCII".to_owned());
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return Err(format!("label {name:?}: the value is not valid UTF-8"));
    };
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(format!(
            "a label name must match [a-zA-Z_][a-zA-Z0-9_]*, got {name:?}"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "label {name:?}: names starting with \"__\" are reserved to Prometheus"
        ));
    }
    if name.len() > crate::config::DEVICE_LABEL_NAME_MAX {
        return Err(format!(
            "a label name may be at most {} bytes, got {}",
            crate::config::DEVICE_LABEL_NAME_MAX,
            name.len()
        ));
    }
    if own.iter().any(|o| o == name) {
        return Err(format!(
            "label {name:?} is the agent's own (device_id and device.labels are added by the \
             agent and never taken from a producer)"
        ));
    }
    if value.len() > crate::config::DEVICE_LABEL_VALUE_MAX || value.chars().any(char::is_control) {
        return Err(format!(
            "label {name:?}: expected a value of at most {} bytes without control characters",
            crate::config::DEVICE_LABEL_VALUE_MAX
        ));
    }
    if name == super::session::LABEL {
        super::session::check_value(value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            own_labels: vec!["device_id".into(), "site".into()],
            max_samples: 3,
            retention_ms: 1000,
            max_future_ms: 100,
        }
    }

    fn series(b: &mut Builder<'_>, name: &str, labels: &[(&str, &str)]) -> Result<u32, Refusal> {
        b.start(7);
        b.name(|a| a.extend_from_slice(name.as_bytes()));
        for (k, v) in labels {
            b.label(
                |a| a.extend_from_slice(k.as_bytes()),
                |a| {
                    a.extend_from_slice(v.as_bytes());
                    Ok(())
                },
            )?;
        }
        b.finish()
    }

    #[test]
    fn series_are_sorted_hashed_and_checked() {
        let r = rules();
        let mut b = Builder::new(&r, 10_000, "line");
        let s1 = series(&mut b, "a:b_c", &[("z", "1"), ("a", "2"), ("e", "")]).unwrap();
        let s2 = series(&mut b, "a:b_c", &[("a", "2"), ("z", "1")]).unwrap();
        let batch = b.into_batch();
        assert_eq!(
            batch.series[s1 as usize].hash,
            batch.series[s2 as usize].hash
        );
        let l = &batch.labels[batch.series[0].labels.start as usize];
        assert_eq!((batch.str(&l.0), batch.str(&l.1)), ("a", "2"));
        assert_eq!(
            batch.series[0].labels.len(),
            2,
            "the empty label is dropped"
        );

        let mut b = Builder::new(&r, 10_000, "line");
        let bad = [
            ("1x", vec![], "a metric name must match"),
            ("x", vec![("device_id", "d")], "is the agent's own"),
            ("x", vec![("site", "d")], "is the agent's own"),
            ("x", vec![("__x", "d")], "reserved to Prometheus"),
            ("x", vec![("a", "1"), ("a", "2")], "given twice"),
            ("x", vec![("a", "\u{1}")], "without control characters"),
        ];
        for (name, labels, what) in bad {
            let e = series(&mut b, name, &labels).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.starts_with("line 7: ") && e.message.contains(what),
                "{e:?}"
            );
        }
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("l{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(
            series(&mut b, "x", &many)
                .unwrap_err()
                .message
                .contains("17 labels")
        );
    }

    #[test]
    fn samples_outside_the_window_are_refused_alone_and_the_cap_ends_the_request() {
        let r = rules();
        let mut b = Builder::new(&r, 10_000, "line");
        let s = series(&mut b, "x", &[]).unwrap();
        b.sample(s, Some(8_999), 1.0).unwrap();
        b.sample(s, Some(10_101), 1.0).unwrap();
        b.sample(s, Some(9_000), f64::NAN).unwrap();
        b.sample(s, None, 1.0).unwrap();
        b.sample(s, Some(10_100), 2.0).unwrap();
        b.text(s, Some(9_500), |a| a.extend_from_slice(b"started"))
            .unwrap();
        assert_eq!(b.sample(s, Some(9_500), 3.0).unwrap_err().status, 413);
        let batch = b.into_batch();
        assert_eq!(
            batch.refused,
            Refused {
                too_old: 1,
                future: 1,
                non_finite: 1,
                unsupported: 0
            }
        );
        let ts: Vec<i64> = batch.samples.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![10_000, 10_100, 9_500]);
    }
}
