//! `/proc/uptime`: `86412.37 645123.54\n`.
//!
//! Seconds since boot, and idle seconds summed over all CPUs (so it may exceed the
//! uptime on a multi-core board).

use crate::ParseError;
use crate::fields::{self, Fields, malformed};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uptime {
    /// Finite and `>= 0`, as is `idle_seconds`.
    pub uptime_seconds: f64,
    pub idle_seconds: f64,
}

/// Parses the one `'\n'`-terminated line; anything after it is Malformed. Values must
/// be plain decimals (no sign, exponent, `inf` or `nan`), so they are finite and `>= 0`.
pub fn parse(buf: &[u8]) -> Result<Uptime, ParseError> {
    let line = fields::single_line(buf)?;
    parse_line(line).map_err(|e| fields::utf8_first(line, LINE, e))
}

const LINE: usize = 1;

fn parse_line(bytes: &[u8]) -> Result<Uptime, ParseError> {
    let mut fields = Fields::new(bytes);
    let uptime_seconds = fields.f64_field(LINE, "uptime")?;
    let idle_seconds = fields.f64_field(LINE, "idle")?;
    if !fields.at_end() {
        return Err(malformed(LINE, "field count"));
    }
    Ok(Uptime {
        uptime_seconds,
        idle_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/uptime");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/uptime");

    #[test]
    fn fixtures() {
        assert_eq!(
            parse(RK3588),
            Ok(Uptime {
                uptime_seconds: 86412.37,
                idle_seconds: 645123.54,
            })
        );
        assert_eq!(
            parse(JETSON),
            Ok(Uptime {
                uptime_seconds: 12345.67,
                idle_seconds: 40123.45,
            })
        );
    }

    #[test]
    fn every_cut_is_incomplete() {
        for cut in 0..JETSON.len() {
            assert_eq!(
                parse(&JETSON[..cut]),
                Err(ParseError::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn hostile() {
        let m = |what| Err(malformed(1, what));
        assert_eq!(parse(b"\n"), m("uptime"));
        assert_eq!(parse(b"12345.67\n"), m("idle"));
        assert_eq!(parse(b"-1.00 2.00\n"), m("uptime"));
        assert_eq!(parse(b"1.00 -2.00\n"), m("idle"));
        assert_eq!(parse(b"1.00 inf\n"), m("idle"));
        assert_eq!(parse(b"1.00 2.00 3.00\n"), m("field count"));
        assert_eq!(parse(b"1.00\x002.00\n"), m("uptime"));
        assert_eq!(parse(b"\xff\xfe\n"), m("UTF-8"));
        assert_eq!(parse(b"1.00 2.00\nx"), Err(malformed(2, "trailing data")));
        let huge = format!("1 {}.0\n", "9".repeat(400));
        assert_eq!(parse(huge.as_bytes()), m("idle"));
        assert_eq!(
            parse(b"18446744073709551616 0\n"),
            Ok(Uptime {
                uptime_seconds: 18446744073709551616.0,
                idle_seconds: 0.0,
            })
        );
    }
}
