//! RK3588 video encoder/decoder load per hardware core: `/proc/mpp_service/load`
//! (Rockchip vendor kernel, `CONFIG_ROCKCHIP_MPP_PROC_FS`).
//!
//! ```text
//! fdbd0000.rkvenc-core      load:  43.18% utilization:  41.07%
//! fdc38100.rkvdec-core      load: 112.50% utilization:  98.03%
//! ```
//! One row per populated task-queue core: `"%-25s load: %3d.%02d%% utilization:
//! %3d.%02d%%\n"` with the core's device name. `load` is run-to-reap busy time and
//! `utilization` hardware busy time, both in percent over `load_interval`, both allowed
//! above 100 for a multicore queue. They are kept in hundredths of a percent
//! (`43.18%` = 4318), exactly as printed, so nothing is rounded.
//!
//! Until `/proc/mpp_service/load_interval` is set non-zero the driver prints a
//! three-line hint instead (`please set load_interval first!!!`, ...): that is
//! [`MppLoad::IntervalUnset`], not a malformed file. Arming it is a write into
//! `/proc`, the collector's decision, not the parser's.
//!
//! Rows are independent, so a bad row yields `Err` and the next row is still parsed
//! ([`crate::Rows`]): Malformed `name`, `load`, `utilization` (not `digits.2digits%`,
//! negative, or over `u32::MAX` hundredths), or `field count`; a cut last row is
//! `Incomplete`. An empty file (no MPP device) yields nothing.
//!
//! Format: armbian/linux-rockchip drivers/video/rockchip/mpp/mpp_service.c
//! `mpp_show_device_load` (commit 0183b322: the hint when `!srv->load_interval`, then
//! the row format above); CERALIVE/rk3588-media-island
//! drivers/video/rockchip/mpp/mpp_telemetry.h:20-27 `mpp_telemetry_format_load`
//! (same format, line 26); CERALIVE/CeraUI apps/backend/src/tests/fixtures/encoder-load/mpp-load.txt
//! (rows in that format, above-100 values documented in docs/ENCODER-LOAD.md).

use crate::ParseError;
use crate::fields::{self, Fields, Rows, malformed};

/// What the driver prints before `load_interval` is armed (its first line).
pub const INTERVAL_UNSET: &[u8] = b"please set load_interval first!!!";

/// A `load` file.
#[derive(Debug, Clone)]
pub enum MppLoad<'a> {
    /// `load_interval` is 0: the driver measures nothing yet.
    IntervalUnset,
    /// One item per row.
    Cores(Rows<'a, MppCore<'a>>),
}

/// One hardware core's row. `device` borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppCore<'a> {
    /// The device name, e.g. `fdbd0000.rkvenc-core`.
    pub device: &'a str,
    /// Run-to-reap busy time, hundredths of a percent.
    pub load_centi: u32,
    /// Hardware busy time, hundredths of a percent.
    pub utilization_centi: u32,
}

impl MppCore<'_> {
    /// `load_centi` in percent.
    #[must_use]
    pub fn load_percent(&self) -> f64 {
        f64::from(self.load_centi) / 100.0
    }

    /// `utilization_centi` in percent.
    #[must_use]
    pub fn utilization_percent(&self) -> f64 {
        f64::from(self.utilization_centi) / 100.0
    }
}

/// The rows of a `load` file, or [`MppLoad::IntervalUnset`] if it starts with
/// [`INTERVAL_UNSET`] (what follows that line is not read).
pub fn parse(buf: &[u8]) -> MppLoad<'_> {
    if buf.starts_with(INTERVAL_UNSET) {
        return MppLoad::IntervalUnset;
    }
    MppLoad::Cores(Rows::new(buf, parse_row))
}

fn parse_row(bytes: &[u8], line: usize) -> Result<MppCore<'_>, ParseError> {
    let mut fields = Fields::new(bytes);
    let device = fields
        .token()
        .and_then(fields::name)
        .ok_or(malformed(line, "name"))?;
    let load_centi = labelled_centi(&mut fields, b"load:", line, "load")?;
    let utilization_centi = labelled_centi(&mut fields, b"utilization:", line, "utilization")?;
    fields.end(line)?;
    Ok(MppCore {
        device,
        load_centi,
        utilization_centi,
    })
}

/// `label` then `digits.dd%`, as hundredths.
fn labelled_centi(
    fields: &mut Fields<'_>,
    label: &[u8],
    line: usize,
    what: &'static str,
) -> Result<u32, ParseError> {
    if fields.token() != Some(label) {
        return Err(malformed(line, "field count"));
    }
    fields
        .token()
        .and_then(|t| t.strip_suffix(b"%"))
        .and_then(centi)
        .ok_or(malformed(line, what))
}

/// `digits.dd` (exactly two decimals, as `%3d.%02d` prints a 0–99 fraction) as
/// hundredths, or None.
fn centi(s: &[u8]) -> Option<u32> {
    let dot = fields::find_byte::<b'.'>(s)?;
    let (whole, frac) = s.split_at_checked(dot)?;
    let frac = frac.get(1..).filter(|f| f.len() == 2)?;
    let whole = fields::parse_u32(whole)?;
    let frac = fields::parse_u32(frac)?;
    whole.checked_mul(100)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] =
        include_bytes!("../../tests/fixtures/soc/rk3588-vendor/proc/mpp_service/load");
    const UNSET: &[u8] = b"please set load_interval first!!!\n\
        e.g. set 1000ms to load_interval:\n\
        echo 1000 > /proc/mpp_service/load_interval\n";

    fn rows(buf: &[u8]) -> Vec<Result<MppCore<'_>, ParseError>> {
        match parse(buf) {
            MppLoad::Cores(rows) => rows.collect(),
            MppLoad::IntervalUnset => panic!("unset"),
        }
    }

    fn core(device: &str, load_centi: u32, utilization_centi: u32) -> MppCore<'_> {
        MppCore {
            device,
            load_centi,
            utilization_centi,
        }
    }

    #[test]
    fn fixture() {
        let got: Vec<_> = rows(RK3588).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                core("fdb50000.vepu", 0, 0),
                core("fdb90000.jpegd", 0, 0),
                core("fdba0000.jpege-core", 152, 140),
                core("fdbb0000.iep", 0, 0),
                core("fdbd0000.rkvenc-core", 4318, 4107),
                core("fdbe0000.rkvenc-core", 3966, 3725),
                // A multicore queue's decoder above 100 %.
                core("fdc38100.rkvdec-core", 11250, 9803),
                core("fdc48100.rkvdec-core", 0, 0),
                core("fdc70000.av1d", 0, 0),
            ]
        );
        assert_eq!(got[4].load_percent(), 43.18);
        assert_eq!(got[6].utilization_percent(), 98.03);
    }

    #[test]
    fn interval_unset() {
        assert!(matches!(parse(UNSET), MppLoad::IntervalUnset));
        assert!(matches!(parse(&UNSET[..40]), MppLoad::IntervalUnset));
        assert!(rows(b"").is_empty());
        // Only at the start: a row naming it is an ordinary bad row.
        assert_eq!(
            rows(b"x load: 1.00% utilization: 1.00%\nplease set load_interval first!!!\n").len(),
            2
        );
    }

    #[test]
    fn cut_rows_are_incomplete_and_last() {
        for cut in 1..RK3588.len() {
            let got = rows(&RK3588[..cut]);
            let complete = RK3588[..cut].iter().filter(|&&b| b == b'\n').count();
            if RK3588[cut - 1] == b'\n' {
                assert_eq!(got.len(), complete, "{cut}");
                assert!(got.iter().all(Result::is_ok), "{cut}");
            } else {
                assert_eq!(got.len(), complete + 1, "{cut}");
                assert_eq!(got.last(), Some(&Err(ParseError::Incomplete)), "{cut}");
            }
        }
    }

    #[test]
    fn bad_rows_cost_only_themselves() {
        let buf = b"a load:   1.00% utilization:   2.00%\n\
            b load: 1.0% utilization: 2.00%\n\
            c load:   3.00% utilization:   4.00%\n";
        assert_eq!(
            rows(buf),
            [
                Ok(core("a", 100, 200)),
                Err(malformed(2, "load")),
                Ok(core("c", 300, 400)),
            ]
        );
    }

    #[test]
    fn hostile() {
        fn one(row: &[u8]) -> Result<MppCore<'_>, ParseError> {
            rows(row).pop().unwrap()
        }
        let m = |what| Err(malformed(1, what));
        assert_eq!(
            one(b"x load: 42949672.95% utilization: 0.00%\n"),
            Ok(core("x", u32::MAX, 0))
        );
        assert_eq!(
            one(b"averyveryverylongdevicename.rkvenc-core load: 0.01% utilization: 99.99%\n"),
            Ok(core("averyveryverylongdevicename.rkvenc-core", 1, 9999))
        );
        assert_eq!(one(b"\n"), m("name"));
        assert_eq!(one(b"a\0b load: 1.00% utilization: 1.00%\n"), m("name"));
        assert_eq!(one(b"x\n"), m("field count"));
        assert_eq!(one(b"x load 1.00% utilization: 1.00%\n"), m("field count"));
        assert_eq!(one(b"x load: 1.00%\n"), m("field count"));
        assert_eq!(one(b"x load: 1.00% util: 1.00%\n"), m("field count"));
        assert_eq!(
            one(b"x load: 1.00% utilization: 1.00% extra\n"),
            m("field count")
        );
        for bad in [
            &b"x load: 42949672.96% utilization: 0.00%\n"[..],
            b"x load: 99999999999999999999.00% utilization: 0.00%\n",
            b"x load:  -1.00% utilization: 0.00%\n",
            b"x load: 1.0% utilization: 0.00%\n",
            b"x load: 1.000% utilization: 0.00%\n",
            b"x load: 1% utilization: 0.00%\n",
            b"x load: .50% utilization: 0.00%\n",
            b"x load: 1.5x% utilization: 0.00%\n",
            b"x load: 1.00 utilization: 0.00%\n",
            b"x load: 1.00%% utilization: 0.00%\n",
            b"x load: 1.-1% utilization: 0.00%\n",
            b"x load: 1..00% utilization: 0.00%\n",
            b"x load: % utilization: 0.00%\n",
        ] {
            assert_eq!(one(bad), m("load"), "{bad:?}");
        }
        assert_eq!(one(b"x load: 1.00% utilization: 1.00\n"), m("utilization"));
        assert_eq!(one(b"x load: 1.00% utilization:\n"), m("utilization"));
        assert_eq!(one(b"x load: \xff% utilization: 1.00%\n"), m("UTF-8"));
    }
}
