//! Time per CPU frequency: `/sys/devices/system/cpu/cpufreq/policy*/stats/time_in_state`.
//!
//! ```text
//! 408000 1523421
//! 1800000 260114
//! ```
//! One row per frequency of the policy's table, `"%u %llu\n"`: the frequency in kHz,
//! then the time spent at it since boot (or the last `reset`) in `clock_t` ticks of
//! `USER_HZ`, 100 per second on ARM and arm64: 10 ms each. The policy's other files
//! (`scaling_cur_freq` kHz, `stats/total_trans`) hold one number:
//! [`crate::sysfs::parse_u64`].
//!
//! Rows are independent ([`crate::Rows`]): a bad row yields Malformed `frequency`,
//! `time` or `field count` and the next row is still parsed; a cut last row is
//! `Incomplete`. The file is empty when the policy keeps no statistics.
//!
//! Format: torvalds/linux drivers/cpufreq/cpufreq_stats.c:66-80 `show_time_in_state`
//! at commit 00d0b294 (an old 3.x form: `"%u %llu\n"` of `jiffies_64_to_clock_t`,
//! line 75); current kernels print the same row with `sysfs_emit_at`.

use crate::ParseError;
use crate::fields::{Fields, Rows};

/// Milliseconds per `USER_HZ` tick on ARM and arm64 (`USER_HZ` = 100).
pub const MS_PER_TICK: u64 = 10;

/// One row: time spent at one frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreqTime {
    pub khz: u32,
    /// `USER_HZ` ticks (10 ms each).
    pub ticks: u64,
}

impl FreqTime {
    /// `ticks` in milliseconds, or None on overflow.
    #[must_use]
    pub fn millis(&self) -> Option<u64> {
        self.ticks.checked_mul(MS_PER_TICK)
    }
}

/// Iterates the rows of a `time_in_state` file.
pub fn time_in_state(buf: &[u8]) -> Rows<'_, FreqTime> {
    Rows::new(buf, parse_row)
}

fn parse_row(bytes: &[u8], line: usize) -> Result<FreqTime, ParseError> {
    let mut fields = Fields::new(bytes);
    let khz = fields.u32_field(line, "frequency")?;
    let ticks = fields.u64_field(line, "time")?;
    fields.end(line)?;
    Ok(FreqTime { khz, ticks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::malformed;

    macro_rules! policy {
        ($board:literal, $policy:literal) => {
            include_bytes!(concat!(
                "../../tests/fixtures/soc/",
                $board,
                "/sys/devices/system/cpu/cpufreq/",
                $policy,
                "/stats/time_in_state"
            ))
            .as_slice()
        };
    }

    fn rows(buf: &[u8]) -> Vec<(u32, u64)> {
        time_in_state(buf)
            .map(|r| r.map(|f| (f.khz, f.ticks)).unwrap())
            .collect()
    }

    #[test]
    fn rk3588() {
        let little = rows(policy!("rk3588-vendor", "policy0"));
        assert_eq!(
            little,
            [
                (408_000, 1_523_421),
                (600_000, 20_311),
                (816_000, 9_870),
                (1_008_000, 7_211),
                (1_200_000, 5_532),
                (1_416_000, 4_109),
                (1_608_000, 3_377),
                (1_800_000, 260_114),
            ]
        );
        // 1 833 945 ticks = 18 339.45 s at 10 ms a tick.
        assert_eq!(little.iter().map(|r| r.1).sum::<u64>(), 1_833_945);
        let big = rows(policy!("rk3588-vendor", "policy4"));
        assert_eq!(big.len(), 11);
        assert_eq!(big[0], (408_000, 1_711_203));
        assert_eq!(big[9], (2_208_000, 98_213));
        assert_eq!(big[10], (2_400_000, 25));
        assert_eq!(big.iter().map(|r| r.1).sum::<u64>(), 1_816_223);
    }

    #[test]
    fn jetson() {
        let nano = rows(policy!("jetson-nano", "policy0"));
        assert_eq!(nano.len(), 15);
        assert_eq!(nano[0], (102_000, 30_214));
        assert_eq!(nano[14], (1_479_000, 912_334));
        assert_eq!(nano.iter().map(|r| r.1).sum::<u64>(), 956_938);
        let orin0 = rows(policy!("jetson-orin", "policy0"));
        assert_eq!(orin0.len(), 20);
        assert_eq!(orin0[0], (115_200, 41_022));
        assert_eq!(orin0[19], (1_510_400, 655_432));
        let orin4 = rows(policy!("jetson-orin", "policy4"));
        // Only three frequencies were ever used by the second cluster.
        let used: Vec<_> = orin4.into_iter().filter(|r| r.1 > 0).collect();
        assert_eq!(
            used,
            [(115_200, 52_311), (729_600, 644_902), (1_510_400, 2_033)]
        );
    }

    #[test]
    fn millis() {
        let row = FreqTime {
            khz: 408_000,
            ticks: 1_523_421,
        };
        assert_eq!(row.millis(), Some(15_234_210));
        let huge = FreqTime {
            khz: 0,
            ticks: u64::MAX / 10 + 1,
        };
        assert_eq!(huge.millis(), None);
    }

    #[test]
    fn hostile() {
        let got: Vec<_> = time_in_state(
            b"408000 12\n\
              x 1\n\
              600000\n\
              816000 -1\n\
              1008000 1 2\n\
              4294967296 1\n\
              1200000 18446744073709551616\n\
              1416000\t18446744073709551615 \n\
              \n\
              1608000 3",
        )
        .collect();
        assert_eq!(
            got,
            [
                Ok(FreqTime {
                    khz: 408_000,
                    ticks: 12
                }),
                Err(malformed(2, "frequency")),
                Err(malformed(3, "time")),
                Err(malformed(4, "time")),
                Err(malformed(5, "field count")),
                Err(malformed(6, "frequency")),
                Err(malformed(7, "time")),
                Ok(FreqTime {
                    khz: 1_416_000,
                    ticks: u64::MAX
                }),
                Err(malformed(9, "frequency")),
                Err(ParseError::Incomplete),
            ]
        );
        let mut good = time_in_state(
            b"408000 12\n\
              x 1\n\
              600000 7\n\
              816000 -1\n\
              1008000 1",
        )
        .skip_bad();
        assert_eq!(
            good.by_ref().map(|r| (r.khz, r.ticks)).collect::<Vec<_>>(),
            [(408_000, 12), (600_000, 7)]
        );
        assert_eq!((good.malformed(), good.incomplete()), (2, true));
        assert_eq!(good.next(), None);
        assert_eq!(
            time_in_state(b"408000 1\xff\n").collect::<Vec<_>>(),
            [Err(malformed(1, "UTF-8"))]
        );
        assert_eq!(time_in_state(b"").count(), 0);
    }
}
