//! Prometheus remote_write 1.0 bodies: a protobuf `WriteRequest`, written by hand into a reused
//! buffer, then snappy block-compressed (`snap::raw`, reused).
//!
//! ```proto
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }   // ms since the epoch
//! ```
//!
//! Why by hand and not prost: the four messages above are all the agent ever writes, and the
//! encoder is ~100 lines with no generated code, no build script (prost-build needs `protoc`),
//! no `bytes` dependency, and no intermediate `Vec<TimeSeries>`/`String` per sample. prost
//! would build owned message structs per chunk (an allocation per series and per label) and
//! add roughly 100–150 KiB to the static binary; here a steady-state chunk allocates nothing.
//!
//! Layout rules the receivers rely on: one `TimeSeries` per series, its samples in timestamp
//! order (Prometheus appends in order; an older sample after a newer one is refused as out of
//! order); label names sorted byte-wise (Prometheus' `labels.Labels` invariant — `__name__`
//! comes first as long as no label name starts with an upper-case letter, which `device.labels`
//! and the agent's own labels never do); fields written even when zero (a decoder reads them
//! as the default, the body is the same size).

use super::chunk::{AsPoint, EncodeError, SeriesMeta, by_series};

/// Protobuf wire types.
const LEN: u8 = 2;
const I64: u8 = 1;
const VARINT: u8 = 0;

const fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

/// Bytes of `v` as a base-128 varint.
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field's total size: tag, length, payload.
fn field_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// `Sample` payload size (both fields present).
fn sample_len(ts_ms: i64) -> usize {
    // double: tag + 8 bytes; int64: tag + varint of the two's complement.
    1 + 8 + 1 + varint_len(ts_ms as u64)
}

/// `Label` payload size.
fn label_len(name: &str, value: &str) -> usize {
    field_len(name.len()) + field_len(value.len())
}

/// Writes chunks as remote_write `WriteRequest`s with scratch buffers reused across calls.
#[derive(Debug, Default)]
pub struct RemoteWriteEncoder {
    /// Sample indices, ordered by (series, ts).
    order: Vec<u32>,
    /// Label indices of one series: 0 = `__name__`, 1 = `device_id`, 2.. = its own labels;
    /// sorted by name.
    labels: Vec<u16>,
}

impl RemoteWriteEncoder {
    pub fn new() -> RemoteWriteEncoder {
        RemoteWriteEncoder::default()
    }

    /// Replaces `out` with the protobuf `WriteRequest` of `samples` (uncompressed): one
    /// `TimeSeries` per series, ordered by series id, each with its samples in timestamp
    /// order. Returns the number of series. On error `out` is left empty. Non-finite values
    /// are refused like the JSONL encoder does (the uploader quarantines them before; a stale
    /// NaN is Prometheus' staleness marker, which the agent must not send by accident).
    pub fn encode<'m, T: AsPoint>(
        &mut self,
        samples: &[T],
        series: impl Fn(u32) -> Option<&'m SeriesMeta>,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        out.clear();
        let mut count = 0;
        for (id, run) in by_series(samples, &mut self.order) {
            let Some(meta) = series(id) else {
                out.clear();
                return Err(EncodeError::UnknownSeries(id));
            };
            if run
                .iter()
                .any(|&j| !samples[j as usize].point().value.is_finite())
            {
                out.clear();
                return Err(EncodeError::Jsonl(super::jsonl::JsonlError::NonFinite));
            }
            Self::write_series(&mut self.labels, meta, samples, run, out);
            count += 1;
        }
        Ok(count)
    }

    fn write_series<T: AsPoint>(
        labels: &mut Vec<u16>,
        meta: &SeriesMeta,
        samples: &[T],
        run: &[u32],
        out: &mut Vec<u8>,
    ) {
        let label = |k: u16| -> (&str, &str) {
            match k {
                0 => ("__name__", meta.name.as_str()),
                1 => ("device_id", meta.device_id.as_str()),
                n => meta
                    .labels
                    .get(usize::from(n) - 2)
                    .map_or(("", ""), |(k, v)| (k.as_str(), v.as_str())),
            }
        };
        labels.clear();
        // Series carry a handful of labels (the config caps device.labels at 16).
        let n_labels = u16::try_from(meta.labels.len() + 2).unwrap_or(u16::MAX);
        labels.extend(0..n_labels);
        labels.sort_unstable_by(|&a, &b| label(a).0.cmp(label(b).0));

        let mut ts_len = 0;
        for &k in labels.iter() {
            let (n, v) = label(k);
            ts_len += field_len(label_len(n, v));
        }
        for &j in run {
            ts_len += field_len(sample_len(samples[j as usize].point().ts_ms));
        }
        out.push(tag(1, LEN));
        put_varint(out, ts_len as u64);
        for &k in labels.iter() {
            let (n, v) = label(k);
            out.push(tag(1, LEN));
            put_varint(out, label_len(n, v) as u64);
            out.push(tag(1, LEN));
            put_varint(out, n.len() as u64);
            out.extend_from_slice(n.as_bytes());
            out.push(tag(2, LEN));
            put_varint(out, v.len() as u64);
            out.extend_from_slice(v.as_bytes());
        }
        for &j in run {
            let p = samples[j as usize].point();
            out.push(tag(2, LEN));
            put_varint(out, sample_len(p.ts_ms) as u64);
            out.push(tag(1, I64));
            out.extend_from_slice(&p.value.to_le_bytes());
            out.push(tag(2, VARINT));
            // int64: negative values as their 64-bit two's complement (10 bytes).
            put_varint(out, p.ts_ms as u64);
        }
    }
}

/// A reusable snappy block (raw, not framed) compressor, as remote_write requires.
pub struct Snappy {
    /// Its hash table is ~2 KiB inline: boxed, allocated once per uploader.
    encoder: Box<snap::raw::Encoder>,
}

impl std::fmt::Debug for Snappy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snappy")
    }
}

impl Default for Snappy {
    fn default() -> Self {
        Self::new()
    }
}

impl Snappy {
    pub fn new() -> Snappy {
        Snappy {
            encoder: Box::new(snap::raw::Encoder::new()),
        }
    }

    /// Replaces `out` with the snappy block of `input`; `out` keeps its capacity, so a
    /// steady-state call does not allocate.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(snap::raw::max_compress_len(input.len()), 0);
        match self.encoder.compress(input, out) {
            Ok(n) => out.truncate(n),
            // Only for inputs above snappy's 4 GiB limit, far beyond max_chunk_bytes: an empty
            // body, which the server refuses (the chunk stays pending), never a panic.
            Err(_) => out.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::upload::chunk::Point;
    use crate::upload::chunk::tests::{meta, p};

    /// A minimal protobuf reader for the test: (field, wire, payload or varint).
    fn fields(mut b: &[u8]) -> Vec<(u64, u8, Vec<u8>, u64)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = (key >> 3, (key & 7) as u8);
            match wire {
                0 => out.push((field, wire, Vec::new(), varint(&mut b))),
                1 => {
                    out.push((field, wire, b[..8].to_vec(), 0));
                    b = &b[8..];
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((field, wire, b[..n].to_vec(), 0));
                    b = &b[n..];
                }
                _ => panic!("wire type {wire}"),
            }
        }
        out
    }

    type Decoded = Vec<(Vec<(String, String)>, Vec<(i64, f64)>)>;

    fn decode(body: &[u8]) -> Decoded {
        fields(body)
            .into_iter()
            .map(|(f, w, ts, _)| {
                assert_eq!((f, w), (1, 2));
                let mut labels = Vec::new();
                let mut samples = Vec::new();
                for (f, w, payload, _) in fields(&ts) {
                    match (f, w) {
                        (1, 2) => {
                            let l = fields(&payload);
                            labels.push((
                                String::from_utf8(l[0].2.clone()).unwrap(),
                                String::from_utf8(l[1].2.clone()).unwrap(),
                            ));
                        }
                        (2, 2) => {
                            let s = fields(&payload);
                            assert_eq!((s[0].0, s[0].1, s[1].0, s[1].1), (1, 1, 2, 0));
                            let v = f64::from_le_bytes(s[0].2.clone().try_into().unwrap());
                            samples.push((s[1].3 as i64, v));
                        }
                        other => panic!("{other:?}"),
                    }
                }
                (labels, samples)
            })
            .collect()
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), n);
        }
        assert_eq!(varint_len(u64::MAX), 10);
        assert_eq!(varint_len(-1i64 as u64), 10);
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn one_time_series_per_series_with_sorted_labels() {
        let series: HashMap<u32, SeriesMeta> = [
            (
                1,
                meta("cpu_usage_percent", &[("core", "0"), ("board", "b")]),
            ),
            (2, meta("system_load1", &[])),
        ]
        .into();
        let chunk = [
            p(2, 2000, 0.5),
            p(1, 3000, 12.5),
            p(1, 1000, 10.0),
            p(2, 1000, -1.0),
            p(1, 2000, 100.0),
        ];
        let mut enc = RemoteWriteEncoder::new();
        let mut out = b"stale".to_vec();
        assert_eq!(enc.encode(&chunk, |id| series.get(&id), &mut out), Ok(2));
        let got = decode(&out);
        let l = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
        };
        assert_eq!(
            got,
            vec![
                (
                    l(&[
                        ("__name__", "cpu_usage_percent"),
                        ("board", "b"),
                        ("core", "0"),
                        ("device_id", "rock5b")
                    ]),
                    vec![(1000, 10.0), (2000, 100.0), (3000, 12.5)]
                ),
                (
                    l(&[("__name__", "system_load1"), ("device_id", "rock5b")]),
                    vec![(1000, -1.0), (2000, 0.5)]
                ),
            ]
        );
        // Same encoder and buffer again: same bytes.
        let first = out.clone();
        enc.encode(&chunk, |id| series.get(&id), &mut out).unwrap();
        assert_eq!(out, first);
        // Negative timestamps are 10-byte varints, read back exactly.
        enc.encode(&[p(2, -5, 1.0)], |id| series.get(&id), &mut out)
            .unwrap();
        assert_eq!(decode(&out)[0].1, vec![(-5, 1.0)]);
        // Empty chunk, unknown series, non-finite.
        assert_eq!(
            enc.encode::<Point>(&[], |id| series.get(&id), &mut out),
            Ok(0)
        );
        assert!(out.is_empty());
        assert_eq!(
            enc.encode(&[p(9, 1, 1.0)], |id| series.get(&id), &mut out),
            Err(EncodeError::UnknownSeries(9))
        );
        assert!(out.is_empty());
        assert!(
            enc.encode(&[p(1, 1, f64::NAN)], |id| series.get(&id), &mut out)
                .is_err()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn snappy_round_trips() {
        let mut s = Snappy::new();
        let mut out = Vec::new();
        let input: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for input in [&b""[..], b"x", &input] {
            s.compress(input, &mut out);
            let back = snap::raw::Decoder::new().decompress_vec(&out).unwrap();
            assert_eq!(back, input);
        }
    }
}
