//! Time per cooling state (throttling): `/sys/class/thermal/cooling_device*/stats/time_in_state_ms`.
//!
//! ```text
//! state0<TAB>5120330
//! state2<TAB>12990640
//! ```
//! One row per state from 0 to `max_state`, `"state%u\t%llu\n"`: the state index, then
//! the milliseconds spent in it since boot (or the last `stats/reset`). For a fan a
//! state is an index into its devicetree `cooling-levels`, for a cpufreq or devfreq
//! cooling device a step down from the highest frequency: a time in a state above 0 is
//! time throttled. The device's other files (`type`, `cur_state`, `max_state`,
//! `stats/total_trans`) hold one value each: [`crate::sysfs`]. Kernels before 4.17
//! (Jetson Nano's 4.9) have no `stats/` directory.
//!
//! Rows are independent ([`crate::Rows`]): a bad row yields Malformed `state`,
//! `time` or `field count` and the next row is still parsed; a cut last row is
//! `Incomplete`. The file is empty while the device has no statistics.
//!
//! Format: drivers/thermal/thermal_sysfs.c `time_in_state_ms_show` of current
//! mainline (`"state%u\t%llu\n"` of `ktime_to_ms`, `i <= cdev->max_state`; read
//! through code search, which did not name the repository, and in the
//! `sysfs_emit_at` and `max_states` patches on linux-pm).

use crate::ParseError;
use crate::fields::{self, Fields, Rows, malformed};

/// One row: time spent in one cooling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTime {
    pub state: u32,
    pub ms: u64,
}

/// Iterates the rows of a `time_in_state_ms` file.
pub fn time_in_state_ms(buf: &[u8]) -> Rows<'_, StateTime> {
    Rows::new(buf, parse_row)
}

fn parse_row(bytes: &[u8], line: usize) -> Result<StateTime, ParseError> {
    let mut fields = Fields::new(bytes);
    let state = fields
        .token()
        .and_then(|t| t.strip_prefix(b"state"))
        .and_then(fields::parse_u32)
        .ok_or(malformed(line, "state"))?;
    let ms = fields.u64_field(line, "time")?;
    fields.end(line)?;
    Ok(StateTime { state, ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/rk3588-vendor/sys/class/thermal/cooling_device0/stats/time_in_state_ms"
    );
    const ORIN: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/jetson-orin/sys/class/thermal/cooling_device0/stats/time_in_state_ms"
    );

    fn rows(buf: &[u8]) -> Vec<(u32, u64)> {
        time_in_state_ms(buf)
            .map(|r| r.map(|s| (s.state, s.ms)).unwrap())
            .collect()
    }

    #[test]
    fn fixtures() {
        let fan = rows(RK3588);
        assert_eq!(
            fan,
            [
                (0, 5_120_330),
                (1, 731_280),
                (2, 12_990_640),
                (3, 0),
                (4, 0)
            ]
        );
        // Time above state 0: 731 280 + 12 990 640 ms = 13 721.92 s of 18 842.25 s.
        let above: u64 = fan.iter().filter(|r| r.0 > 0).map(|r| r.1).sum();
        assert_eq!(above, 13_721_920);
        assert_eq!(fan.iter().map(|r| r.1).sum::<u64>(), 18_842_250);
        assert_eq!(rows(ORIN), [(0, 402_113), (1, 6_590_871), (2, 0), (3, 0)]);
    }

    #[test]
    fn hostile() {
        let got: Vec<_> = time_in_state_ms(
            b"state0\t1\n\
              0\t1\n\
              state\t1\n\
              State3\t1\n\
              state-1\t1\n\
              state4294967296\t1\n\
              state5\n\
              state6\t-1\n\
              state7\t1 2\n\
              state8 18446744073709551615\n\
              state9\t18446744073709551616\n\
              state10\t9",
        )
        .collect();
        assert_eq!(
            got,
            [
                Ok(StateTime { state: 0, ms: 1 }),
                Err(malformed(2, "state")),
                Err(malformed(3, "state")),
                Err(malformed(4, "state")),
                Err(malformed(5, "state")),
                Err(malformed(6, "state")),
                Err(malformed(7, "time")),
                Err(malformed(8, "time")),
                Err(malformed(9, "field count")),
                Ok(StateTime {
                    state: 8,
                    ms: u64::MAX
                }),
                Err(malformed(11, "time")),
                Err(ParseError::Incomplete),
            ]
        );
        assert_eq!(
            time_in_state_ms(b"state0\t\xff\n").collect::<Vec<_>>(),
            [Err(malformed(1, "UTF-8"))]
        );
        assert_eq!(time_in_state_ms(b"").count(), 0);
        assert_eq!(
            time_in_state_ms(b"\0state0\t1\n").collect::<Vec<_>>(),
            [Err(malformed(1, "state"))]
        );
    }
}
