//! `/proc/loadavg`: `0.52 0.61 0.58 2/387 23456\n`.
//!
//! Load averages over 1, 5 and 15 minutes; runnable scheduling entities / total
//! threads; the most recently assigned pid.

use crate::ParseError;
use crate::fields::{self, Fields, malformed};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    /// Finite and `>= 0`, as are `load5` and `load15`.
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub running: u32,
    pub total: u32,
    pub last_pid: u32,
}

/// Parses the one `'\n'`-terminated line; anything after it is Malformed. Values must
/// be plain decimals (no sign, exponent, `inf` or `nan`), so they are finite and `>= 0`.
pub fn parse(buf: &[u8]) -> Result<LoadAvg, ParseError> {
    let line = fields::single_line(buf)?;
    parse_line(line).map_err(|e| fields::utf8_first(line, LINE, e))
}

const LINE: usize = 1;

fn parse_line(bytes: &[u8]) -> Result<LoadAvg, ParseError> {
    let mut fields = Fields::new(bytes);
    let load1 = fields.f64_field(LINE, "load1")?;
    let load5 = fields.f64_field(LINE, "load5")?;
    let load15 = fields.f64_field(LINE, "load15")?;
    let (running, total) = fields
        .token()
        .and_then(|t| fields::find_byte::<b'/'>(t).and_then(|i| t.split_at_checked(i)))
        .ok_or(malformed(LINE, "running/total"))?;
    let running = fields::parse_u32(running).ok_or(malformed(LINE, "running"))?;
    // `total` starts with the '/'.
    let total = total
        .get(1..)
        .and_then(fields::parse_u32)
        .ok_or(malformed(LINE, "total"))?;
    let last_pid = fields.u32_field(LINE, "last_pid")?;
    if !fields.at_end() {
        return Err(malformed(LINE, "field count"));
    }
    Ok(LoadAvg {
        load1,
        load5,
        load15,
        running,
        total,
        last_pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/loadavg");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/loadavg");

    #[test]
    fn fixtures() {
        assert_eq!(
            parse(RK3588),
            Ok(LoadAvg {
                load1: 0.52,
                load5: 0.61,
                load15: 0.58,
                running: 2,
                total: 387,
                last_pid: 23456,
            })
        );
        assert_eq!(
            parse(JETSON),
            Ok(LoadAvg {
                load1: 1.23,
                load5: 0.98,
                load15: 0.87,
                running: 1,
                total: 512,
                last_pid: 12345,
            })
        );
    }

    #[test]
    fn every_cut_is_incomplete() {
        for cut in 0..RK3588.len() {
            assert_eq!(
                parse(&RK3588[..cut]),
                Err(ParseError::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn hostile() {
        let m = |what| Err(malformed(1, what));
        assert_eq!(parse(b"\n"), m("load1"));
        assert_eq!(parse(b"-0.52 0.61 0.58 2/387 23456\n"), m("load1"));
        assert_eq!(parse(b"0.52 inf 0.58 2/387 23456\n"), m("load5"));
        assert_eq!(parse(b"0.52 0.61 NaN 2/387 23456\n"), m("load15"));
        assert_eq!(parse(b"0.52 0.61 1e3 2/387 23456\n"), m("load15"));
        let huge = format!("{} 0 0 1/1 1\n", "9".repeat(400));
        assert_eq!(parse(huge.as_bytes()), m("load1"));
        assert_eq!(parse(b"0.52 0.61 0.58 2 23456\n"), m("running/total"));
        assert_eq!(parse(b"0.52 0.61 0.58 /387 23456\n"), m("running"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/-387 23456\n"), m("total"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/3/4 23456\n"), m("total"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/387 4294967296\n"), m("last_pid"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/387\n"), m("last_pid"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/387 1 2\n"), m("field count"));
        assert_eq!(parse(b"0.52 0.61 0.58 2/387 1\0\n"), m("last_pid"));
        assert_eq!(parse(b"0.52 \xff 0.58 2/387 1\n"), m("UTF-8"));
        assert_eq!(
            parse(b"0.52 0.61 0.58 2/387 23456\n\n"),
            Err(malformed(2, "trailing data"))
        );
        assert_eq!(
            parse(b"0 0 0 4294967295/4294967295 4294967295\n"),
            Ok(LoadAvg {
                load1: 0.0,
                load5: 0.0,
                load15: 0.0,
                running: u32::MAX,
                total: u32::MAX,
                last_pid: u32::MAX,
            })
        );
    }
}
