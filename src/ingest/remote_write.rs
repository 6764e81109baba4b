//! Prometheus remote_write 1.0: a view over a decompressed `WriteRequest` protobuf.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//!                repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }   // ms
//! ```
//!
//! [`Series::new`] walks the request; each [`TimeSeries`] it yields was checked whole (every
//! field's wire type and length, every label and sample), so its [`TimeSeries::labels`] and
//! [`TimeSeries::samples`] never fail. Unknown fields are skipped, as protobuf requires;
//! exemplars and native histograms are counted ([`TimeSeries::histograms`]) and not read.
//!
//! Self-contained (no `crate::` paths): the fuzz target includes this file by path. No
//! allocation; no panic on any input.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesError {
    /// 1-based index of the time series in the request (0: the request itself).
    pub series: usize,
    pub what: &'static str,
}

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

/// A protobuf reader over one message's bytes.
#[derive(Debug, Clone)]
struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

/// One field: its number and value.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32,
}

impl<'a> Reader<'a> {
    fn new(s: &'a [u8]) -> Reader<'a> {
        Reader { s, i: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        for k in 0..10 {
            let b = *self.s.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            if k == 9 && b > 1 {
                return Err("varint too long");
            }
            v |= u64::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    fn next_field(&mut self) -> Option<Result<(u64, Field<'a>), &'static str>> {
        if self.i >= self.s.len() {
            return None;
        }
        let r = (|| {
            let key = self.varint()?;
            let number = key >> 3;
            if number == 0 {
                return Err("field number 0");
            }
            let field = match key & 7 {
                WIRE_VARINT => Field::Varint(self.varint()?),
                WIRE_I64 => {
                    let b = self.s.get(self.i..self.i + 8).ok_or("truncated fixed64")?;
                    self.i += 8;
                    let a = <[u8; 8]>::try_from(b).map_err(|_| "truncated fixed64")?;
                    Field::I64(u64::from_le_bytes(a))
                }
                WIRE_LEN => {
                    let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                    let end = self.i.checked_add(n).ok_or("length too large")?;
                    let b = self
                        .s
                        .get(self.i..end)
                        .ok_or("truncated length-delimited field")?;
                    self.i = end;
                    Field::Len(b)
                }
                WIRE_I32 => {
                    self.s.get(self.i..self.i + 4).ok_or("truncated fixed32")?;
                    self.i += 4;
                    Field::I32
                }
                _ => return Err("unsupported wire type"),
            };
            Ok((number, field))
        })();
        if r.is_err() {
            self.i = self.s.len();
        }
        Some(r)
    }
}

/// The time series of a `WriteRequest`.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    r: Reader<'a>,
    n: usize,
}

impl<'a> Series<'a> {
    pub fn new(request: &'a [u8]) -> Series<'a> {
        Series {
            r: Reader::new(request),
            n: 0,
        }
    }
}

impl<'a> Iterator for Series<'a> {
    type Item = Result<TimeSeries<'a>, SeriesError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let field = match self.r.next_field()? {
                Ok(f) => f,
                Err(what) => {
                    return Some(Err(SeriesError {
                        series: self.n,
                        what,
                    }));
                }
            };
            match field {
                (1, Field::Len(b)) => {
                    self.n += 1;
                    let series = self.n;
                    let checked = check_series(b);
                    if checked.is_err() {
                        // The first error ends the request.
                        self.r.i = self.r.s.len();
                    }
                    return Some(checked.map_err(|what| SeriesError { series, what }));
                }
                (1, _) => {
                    self.r.i = self.r.s.len();
                    return Some(Err(SeriesError {
                        series: self.n + 1,
                        what: "a time series must be length-delimited",
                    }));
                }
                _ => {} // metadata and unknown fields
            }
        }
    }
}

/// One time series, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSeries<'a> {
    buf: &'a [u8],
    /// Labels and samples in it.
    pub label_count: usize,
    pub sample_count: usize,
    /// Native histograms (not stored).
    pub histograms: usize,
}

fn check_series(b: &[u8]) -> Result<TimeSeries<'_>, &'static str> {
    let mut ts = TimeSeries {
        buf: b,
        label_count: 0,
        sample_count: 0,
        histograms: 0,
    };
    let mut r = Reader::new(b);
    while let Some(f) = r.next_field() {
        match f? {
            (1, Field::Len(l)) => {
                label(l)?;
                ts.label_count += 1;
            }
            (2, Field::Len(s)) => {
                sample(s)?;
                ts.sample_count += 1;
            }
            (1 | 2, _) => return Err("a label or sample must be length-delimited"),
            (4, _) => ts.histograms += 1,
            _ => {}
        }
    }
    Ok(ts)
}

fn label(b: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut r = Reader::new(b);
    while let Some(f) = r.next_field() {
        match f? {
            (1, Field::Len(s)) => name = s,
            (2, Field::Len(s)) => value = s,
            (1 | 2, _) => return Err("a label's name and value must be strings"),
            _ => {}
        }
    }
    Ok((name, value))
}

fn sample(b: &[u8]) -> Result<(f64, i64), &'static str> {
    let (mut value, mut ts) = (0.0, 0i64);
    let mut r = Reader::new(b);
    while let Some(f) = r.next_field() {
        match f? {
            (1, Field::I64(bits)) => value = f64::from_bits(bits),
            // int64: two's complement in a varint.
            (2, Field::Varint(v)) => ts = v as i64,
            (1 | 2, _) => {
                return Err("a sample's value must be a double and its timestamp an int64");
            }
            _ => {}
        }
    }
    Ok((value, ts))
}

impl<'a> TimeSeries<'a> {
    /// (name, value) of each label, in message order.
    pub fn labels(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut r = Reader::new(self.buf);
        core::iter::from_fn(move || {
            loop {
                match r.next_field()? {
                    Ok((1, Field::Len(l))) => return label(l).ok(),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
    }

    /// (value, timestamp ms) of each sample, in message order.
    pub fn samples(&self) -> impl Iterator<Item = (f64, i64)> + 'a {
        let mut r = Reader::new(self.buf);
        core::iter::from_fn(move || {
            loop {
                match r.next_field()? {
                    Ok((2, Field::Len(s))) => return sample(s).ok(),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(n: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// One time series: (labels, samples).
    pub(crate) type Ts<'a> = (&'a [(&'a str, &'a str)], &'a [(f64, i64)]);

    /// A WriteRequest of `series`.
    pub(crate) fn encode(series: &[Ts<'_>]) -> Vec<u8> {
        let mut req = Vec::new();
        for (labels, samples) in series {
            let mut ts = Vec::new();
            for (k, v) in *labels {
                let mut l = Vec::new();
                len_field(1, k.as_bytes(), &mut l);
                len_field(2, v.as_bytes(), &mut l);
                len_field(1, &l, &mut ts);
            }
            for (v, t) in *samples {
                let mut s = Vec::new();
                s.push(1 << 3 | 1);
                s.extend_from_slice(&v.to_bits().to_le_bytes());
                varint(2 << 3, &mut s);
                varint(*t as u64, &mut s);
                len_field(2, &s, &mut ts);
            }
            len_field(1, &ts, &mut req);
        }
        // Metadata, skipped.
        len_field(3, b"\x08\x01", &mut req);
        req
    }

    #[test]
    fn a_request_is_read() {
        let body = encode(&[
            (
                &[("__name__", "up"), ("job", "a")],
                &[(1.0, 1_700_000_000_000), (0.5, -1)],
            ),
            (&[("__name__", "x")], &[]),
        ]);
        let got: Vec<_> = Series::new(&body).map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        let labels: Vec<_> = got[0].labels().collect();
        assert_eq!(
            labels,
            vec![(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"a"[..])]
        );
        let samples: Vec<_> = got[0].samples().collect();
        assert_eq!(samples, vec![(1.0, 1_700_000_000_000), (0.5, -1)]);
        assert_eq!((got[1].label_count, got[1].sample_count), (1, 0));
    }

    #[test]
    fn damaged_requests_are_errors() {
        let body = encode(&[(&[("__name__", "up")], &[(1.0, 1)])]);
        for cut in 1..body.len() - 4 {
            let got: Vec<_> = Series::new(&body[..cut]).collect();
            assert!(got.iter().any(Result::is_err), "cut {cut}");
        }
        assert_eq!(
            Series::new(b"\x0a\x05\x0a").next(),
            Some(Err(SeriesError {
                series: 0,
                what: "truncated length-delimited field"
            }))
        );
        assert_eq!(
            Series::new(b"\x0f").next(),
            Some(Err(SeriesError {
                series: 0,
                what: "unsupported wire type"
            }))
        );
        assert_eq!(
            Series::new(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").next(),
            Some(Err(SeriesError {
                series: 0,
                what: "length too large"
            }))
        );
    }
}
