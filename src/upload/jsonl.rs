//! VictoriaMetrics JSON-lines import format (`/api/v1/import`), written into a reused buffer.
//!
//! One line per series: `{"metric":{"__name__":"…","device_id":"…",…},"values":[…],"timestamps":[…]}`.
//! Values must be finite (VictoriaMetrics answers 204 and silently drops a bare NaN); the writer
//! refuses non-finite values instead of emitting them.

use std::io::Write;

/// The crate's one JSON string escaper ([`crate::text::json`]), named here too for the callers
/// that write JSONL beside the series (`store export`, the log lines).
pub use crate::text::json::write_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonlError {
    /// A value was NaN or infinite.
    NonFinite,
    /// `values` and `timestamps` differ in length, or are empty.
    Shape,
}

impl std::fmt::Display for JsonlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonlError::NonFinite => f.write_str("non-finite value"),
            JsonlError::Shape => {
                f.write_str("values and timestamps must be non-empty and of equal length")
            }
        }
    }
}

impl std::error::Error for JsonlError {}

/// Appends one series line (with its trailing `\n`) to `out`. On error `out` is left unchanged.
pub fn write_series<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    name: &str,
    device_id: &str,
    labels: impl IntoIterator<Item = (K, V)>,
    values: &[f64],
    timestamps: &[i64],
) -> Result<(), JsonlError> {
    check_points(values, timestamps)?;
    write_head(out, name, device_id, labels);
    write_points(out, values, timestamps);
    Ok(())
}

/// [`write_series`] with the line's head already made by [`write_head`]: a series' head is the
/// same on every line, so the uploader makes it once per series (escaping its labels was
/// ≈ 250 instructions a sample, benches/phases). On error `out` is left unchanged.
pub fn write_series_after(
    out: &mut Vec<u8>,
    head: &[u8],
    values: &[f64],
    timestamps: &[i64],
) -> Result<(), JsonlError> {
    check_points(values, timestamps)?;
    out.extend_from_slice(head);
    write_points(out, values, timestamps);
    Ok(())
}

fn check_points(values: &[f64], timestamps: &[i64]) -> Result<(), JsonlError> {
    if values.is_empty() || values.len() != timestamps.len() {
        return Err(JsonlError::Shape);
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(JsonlError::NonFinite);
    }
    Ok(())
}

/// A line's start, up to its values: `{"metric":{"__name__":…,"device_id":…,labels…},"values":[`.
pub fn write_head<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    name: &str,
    device_id: &str,
    labels: impl IntoIterator<Item = (K, V)>,
) {
    out.extend_from_slice(b"{\"metric\":{\"__name__\":");
    write_str(out, name);
    out.extend_from_slice(b",\"device_id\":");
    write_str(out, device_id);
    for (k, v) in labels {
        out.push(b',');
        write_str(out, k.as_ref());
        out.push(b':');
        write_str(out, v.as_ref());
    }
    out.extend_from_slice(b"},\"values\":[");
}

/// The rest of a line after its head: the values, the timestamps and the `\n`.
fn write_points(out: &mut Vec<u8>, values: &[f64], timestamps: &[i64]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_f64(out, *v);
    }
    out.extend_from_slice(b"],\"timestamps\":[");
    for (i, t) in timestamps.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The digit loop, not `write!`: the formatter machinery cost ≈ 200 instructions a
        // timestamp (benches/phases, issue 30).
        write_i64(out, *t);
    }
    out.extend_from_slice(b"]}\n");
}

/// Integers below this print exactly: every integer up to 2^53 is an f64 of its own, so its
/// shortest round-trip form is its own digits.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Rust's `Display` for f64 is the shortest string that round-trips, without exponent: valid JSON.
/// Integral values (counters, bytes: most samples) take a digit loop with the same output,
/// without the float formatter.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < EXACT_INT_LIMIT && !(v == 0.0 && v.is_sign_negative()) {
        // Exact: |v| < 2^53 fits in i64 and has no fraction.
        write_i64(out, v as i64);
        return;
    }
    if write_short_decimal(out, v) {
        return;
    }
    // -0.0 prints as "-0", which JSON accepts.
    let _ = write!(out, "{v}");
}

/// 10^k for the fractional digits [`write_short_decimal`] tries.
const POW10: [f64; 7] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];

/// Below this the scaled value `m` is unique: a `k`-digit decimal is at most 2^50 / 10^k, whose
/// ulp is under a quarter of 10^-k, so no other `k`-digit decimal parses to the same f64.
const SHORT_LIMIT: f64 = 1_125_899_906_842_624.0; // 2^50

/// Writes `v` as `m / 10^k` with the fewest fractional digits `k` ≤ 6 that give back exactly
/// `v`, as `Display` would (it prints the shortest round-trip digits): temperatures, loads and
/// seconds with a few decimals (half of the samples) without the float formatter, which cost
/// ≈ 780 instructions a value (benches/phases, issue 30). False (nothing written) when no such
/// `k` exists; the caller then uses `Display`.
///
/// Why it is exact: `m` and 10^k are exact f64s, IEEE division rounds correctly, and so does
/// parsing `m e-k`: both give the f64 nearest m / 10^k, so the text parses back to `v`. The
/// smallest such `k` has the fewest digits, and below [`SHORT_LIMIT`] it is the only candidate.
fn write_short_decimal(out: &mut Vec<u8>, v: f64) -> bool {
    // Zeros are integral or -0 ("-0" through Display).
    if v == 0.0 {
        return false;
    }
    for (k, &p) in POW10.iter().enumerate().skip(1) {
        let m = (v * p).round();
        if m.abs() >= SHORT_LIMIT {
            return false;
        }
        if m / p != v {
            continue;
        }
        // |m| < 2^50: exact in i64.
        let m = m as i64;
        if m < 0 {
            out.push(b'-');
        }
        let mut digits = [0u8; 24];
        let mut at = digits.len();
        let mut n = m.unsigned_abs();
        // At least k + 1 digits: "0.05" for m = 5, k = 2.
        let mut written = 0;
        while n > 0 || written <= k {
            if written == k {
                at -= 1;
                digits[at] = b'.';
            }
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            written += 1;
        }
        out.extend_from_slice(&digits[at..]);
        return true;
    }
    false
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    // Two digits per division ("00" … "99" from a table), as the `itoa` crate does: a 13-digit
    // timestamp is 7 divisions instead of 13 (≈ 263 → 188 instructions at opt-level "z", counted
    // by callgrind on a loop of timestamps).
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut at = digits.len();
    let mut n = v.unsigned_abs();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        // Two byte stores, not `copy_from_slice`: at opt-level "z" that is a `memcpy` call,
        // which made the loop slower than one digit a step (callgrind, 2026-12-07).
        digits[at] = DIGIT_PAIRS[pair];
        digits[at + 1] = DIGIT_PAIRS[pair + 1];
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at] = DIGIT_PAIRS[pair];
        digits[at + 1] = DIGIT_PAIRS[pair + 1];
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// The digits of 0 … 99, two bytes each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_i64_matches_display() {
        let mut values = vec![
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            101,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ];
        let mut p = 1i64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, -p, -(p - 1), next / 2]);
            p = next;
        }
        let mut rng = oorandom::Rand64::new(0x1_2345);
        for _ in 0..20_000 {
            let v = rng.rand_u64() as i64;
            values.extend([v, v >> rng.rand_range(0..63)]);
        }
        let mut out = Vec::new();
        for v in values {
            out.clear();
            write_i64(&mut out, v);
            assert_eq!(std::str::from_utf8(&out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn write_f64_matches_display() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.25,
            1e15,
            123_456_789_012_345.0,
            EXACT_INT_LIMIT - 1.0,
            -(EXACT_INT_LIMIT - 1.0),
            EXACT_INT_LIMIT,
            EXACT_INT_LIMIT * 4.0,
            1e300,
            -1e-300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            i64::MAX as f64,
            i64::MIN as f64,
        ];
        // Integers of every magnitude, and their neighbours with a fraction.
        let mut x = 1.0f64;
        while x < 1e20 {
            for v in [x, x + 1.0, x - 1.0, x * 3.0 + 7.0, x + 0.5] {
                values.push(v);
                values.push(-v);
            }
            x *= 10.0;
        }
        // Decimals with 1 to 8 fractional digits (the short path and past it), around the
        // 2^50 limit, and random bit patterns.
        let mut rng = oorandom::Rand64::new(0x6a50);
        for _ in 0..200_000 {
            let k = rng.rand_range(0..9) as i32;
            let m = rng.rand_range(0..1 << 52) >> rng.rand_range(0..52);
            let v = m as f64 / 10f64.powi(k);
            values.push(v);
            values.push(-v);
            values.push(f64::from_bits(rng.rand_u64()));
        }
        for m in [SHORT_LIMIT - 1.0, SHORT_LIMIT, SHORT_LIMIT + 1.0] {
            for p in POW10 {
                values.push(m / p);
            }
        }
        for v in values.into_iter().filter(|v| v.is_finite()) {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v}"), "{v:e}");
        }
    }

    #[test]
    fn one_line_per_series() {
        let mut out = Vec::new();
        write_series(
            &mut out,
            "cpu_usage_percent",
            "rock\"5b",
            [("core", "all")],
            &[12.5, 100.0],
            &[1_700_000_000_000, 1_700_000_001_000],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"metric\":{\"__name__\":\"cpu_usage_percent\",\"device_id\":\"rock\\\"5b\",\"core\":\"all\"},\
             \"values\":[12.5,100],\"timestamps\":[1700000000000,1700000001000]}\n"
        );
    }

    #[test]
    fn a_line_after_its_made_head_is_the_whole_line() {
        let labels = [("core", "a\u{1}\""), ("k", "v")];
        let (values, ts) = ([1.5, -2.0, 1e300], [1, 2, 3]);
        let mut whole = Vec::new();
        write_series(&mut whole, "n\\", "d", labels, &values, &ts).unwrap();
        let mut head = Vec::new();
        write_head(&mut head, "n\\", "d", labels);
        let mut after = b"x".to_vec();
        write_series_after(&mut after, &head, &values, &ts).unwrap();
        assert_eq!(&after[1..], whole.as_slice());
        assert_eq!(
            write_series_after(&mut after, &head, &[f64::NAN], &[1]),
            Err(JsonlError::NonFinite)
        );
        assert_eq!(
            write_series_after(&mut after, &head, &[1.0], &[]),
            Err(JsonlError::Shape)
        );
        assert_eq!(&after[1..], whole.as_slice());
    }

    #[test]
    fn refuses_non_finite_and_bad_shape() {
        let mut out = b"keep".to_vec();
        let e = write_series(&mut out, "m", "d", [("k", "v")], &[f64::NAN], &[1]);
        assert_eq!(e, Err(JsonlError::NonFinite));
        let e = write_series(&mut out, "m", "d", [("k", "v")], &[f64::INFINITY], &[1]);
        assert_eq!(e, Err(JsonlError::NonFinite));
        assert_eq!(
            write_series(&mut out, "m", "d", [("k", "v")], &[1.0], &[]),
            Err(JsonlError::Shape)
        );
        assert_eq!(
            write_series(&mut out, "m", "d", [("k", "v")], &[], &[]),
            Err(JsonlError::Shape)
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn escapes_control_bytes_and_formats_extremes() {
        let mut out = Vec::new();
        write_str(&mut out, "a\u{1}b\\\t");
        assert_eq!(out, b"\"a\\u0001b\\\\\\t\"");
        let mut out = Vec::new();
        write_f64(&mut out, 1e21);
        assert_eq!(out, b"1000000000000000000000");
        let mut out = Vec::new();
        write_f64(&mut out, 0.1 + 0.2);
        assert_eq!(out, b"0.30000000000000004");
    }
}
