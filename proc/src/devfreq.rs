//! GPU and NPU load: the devfreq `load` attribute of the Rockchip vendor kernel and the
//! nvgpu `device/load` attribute of Jetson boards.
//!
//! | board | file | printed as | units |
//! | --- | --- | --- | --- |
//! | RK3588 vendor BSP | `/sys/class/devfreq/fb000000.gpu/load`, `fdab0000.npu/load` | `%lu@%luHz\n`, or nothing | percent busy @ Hz |
//! | Jetson (L4T 32–36) | `/sys/class/devfreq/<gpu>/device/load` (`of_node/name` `gpu`, `gp10b`, `gv11b`, `ga10b`) | `%u\n` | per mille busy |
//!
//! The vendor devfreq file is EMPTY when the governor has no busy/total window yet
//! (`total_time == 0`: the device has not been sampled since it last went idle or
//! since boot); that is [`DevfreqLoad::Idle`], 0 ‰ busy. Its frequency then comes
//! from `cur_freq` ([`crate::sysfs::parse_u64`]). The load is `busy * 100 / total` of
//! the last window and is not clamped: a window read mid-update may exceed 100.
//! nvgpu prints 0 for a rail-gated GPU and normally 0–1000 otherwise, also unclamped.
//!
//! One value per file, whole in one read: no trailing `'\n'` is required and this is
//! never `Incomplete`. Anything else is Malformed on line 1: `load` (the busy figure),
//! `frequency` (what follows `@`, which must end in `Hz`).
//!
//! Format: armbian/linux-rockchip drivers/devfreq/devfreq.c `load_show` (commit
//! 2a81e649, `if (!stat.total_time) return 0;` then `"%lu"` and `"@%luHz\n"`);
//! NVIDIA nvgpu `os/linux/sysfs.c` `gk20a_load_show` (`"%u\n"` of
//! `nvgpu_pmu_load_norm`, 0 when powered off; read through code search, which did
//! not name the repository); rbonghi/jetson_stats jtop/core/gpu.py
//! (`igpu_read_status`: `load / 10.0` percent; `find_igpu`: the `of_node/name` list).

use crate::ParseError;
use crate::fields::{self, malformed};

/// One reading of a `load` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevfreqLoad {
    /// Rockchip vendor devfreq: `NN@FFFFHz`.
    Percent { percent: u32, freq_hz: u64 },
    /// Jetson nvgpu: busy time in tenths of a percent.
    PerMille(u32),
    /// An empty vendor devfreq file: no sampling window, the device is idle.
    Idle,
}

impl DevfreqLoad {
    /// The load in per mille, whatever the form: `Percent` × 10, `Idle` = 0.
    #[must_use]
    pub fn permille(&self) -> u64 {
        match *self {
            Self::Percent { percent, .. } => u64::from(percent) * 10,
            Self::PerMille(permille) => u64::from(permille),
            Self::Idle => 0,
        }
    }

    /// The frequency the vendor kernel printed with the load, if it did.
    #[must_use]
    pub fn freq_hz(&self) -> Option<u64> {
        match *self {
            Self::Percent { freq_hz, .. } => Some(freq_hz),
            Self::PerMille(_) | Self::Idle => None,
        }
    }
}

/// Parses either form: `NN@FFFFHz` (vendor devfreq), `NNN` (nvgpu per mille) or an
/// empty buffer ([`DevfreqLoad::Idle`]), each with an optional trailing `'\n'` (a lone
/// `"\n"` is Malformed: the kernel prints nothing or a number).
pub fn parse_load(buf: &[u8]) -> Result<DevfreqLoad, ParseError> {
    if buf.is_empty() {
        return Ok(DevfreqLoad::Idle);
    }
    let value = buf.strip_suffix(b"\n").unwrap_or(buf);
    let Some(at) = fields::find_byte::<b'@'>(value) else {
        return fields::parse_u32(value)
            .map(DevfreqLoad::PerMille)
            .ok_or(malformed(1, "load"));
    };
    let (percent, freq) = value.split_at_checked(at).ok_or(malformed(1, "load"))?;
    let percent = fields::parse_u32(percent).ok_or(malformed(1, "load"))?;
    // `freq` starts with the '@'.
    let freq_hz = freq
        .get(1..)
        .and_then(|f| f.strip_suffix(b"Hz"))
        .and_then(fields::parse_u64)
        .ok_or(malformed(1, "frequency"))?;
    Ok(DevfreqLoad::Percent { percent, freq_hz })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK_GPU: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/rk3588-vendor/sys/class/devfreq/fb000000.gpu/load"
    );
    const RK_NPU: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/rk3588-vendor/sys/class/devfreq/fdab0000.npu/load"
    );
    const NANO: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/jetson-nano/sys/class/devfreq/57000000.gpu/device/load"
    );
    const ORIN: &[u8] = include_bytes!(
        "../../tests/fixtures/soc/jetson-orin/sys/class/devfreq/17000000.ga10b/device/load"
    );

    #[test]
    fn fixtures() {
        let gpu = parse_load(RK_GPU).unwrap();
        assert_eq!(
            gpu,
            DevfreqLoad::Percent {
                percent: 37,
                freq_hz: 600_000_000
            }
        );
        assert_eq!((gpu.permille(), gpu.freq_hz()), (370, Some(600_000_000)));
        // The NPU has not been sampled: the file is empty.
        assert!(RK_NPU.is_empty());
        let npu = parse_load(RK_NPU).unwrap();
        assert_eq!(
            (npu, npu.permille(), npu.freq_hz()),
            (DevfreqLoad::Idle, 0, None)
        );
        // 318 ‰ = 31.8 %, 452 ‰ = 45.2 %.
        let nano = parse_load(NANO).unwrap();
        assert_eq!((nano, nano.permille()), (DevfreqLoad::PerMille(318), 318));
        assert_eq!(parse_load(ORIN), Ok(DevfreqLoad::PerMille(452)));
        assert_eq!(nano.freq_hz(), None);
    }

    #[test]
    fn forms_and_limits() {
        assert_eq!(
            parse_load(b"0@300000000Hz"),
            Ok(DevfreqLoad::Percent {
                percent: 0,
                freq_hz: 300_000_000
            })
        );
        assert_eq!(
            parse_load(b"4294967295@18446744073709551615Hz\n"),
            Ok(DevfreqLoad::Percent {
                percent: u32::MAX,
                freq_hz: u64::MAX
            })
        );
        assert_eq!(
            DevfreqLoad::Percent {
                percent: u32::MAX,
                freq_hz: 0
            }
            .permille(),
            42_949_672_950
        );
        assert_eq!(parse_load(b"1000"), Ok(DevfreqLoad::PerMille(1000)));
        assert_eq!(parse_load(b"0\n"), Ok(DevfreqLoad::PerMille(0)));
        assert_eq!(parse_load(b"1234\n"), Ok(DevfreqLoad::PerMille(1234)));
    }

    #[test]
    fn hostile() {
        let load = Err(malformed(1, "load"));
        let freq = Err(malformed(1, "frequency"));
        for bad in [
            &b"\n"[..],
            b"\n\n",
            b" 37@600Hz\n",
            b"-1\n",
            b"+5\n",
            b"31.8\n",
            b"4294967296\n",
            b"4294967296@600Hz\n",
            b"@600Hz\n",
            b"37 @600Hz\n",
            b"\xff@600Hz\n",
            b"3\x007@600Hz\n",
            b"37\n\n",
        ] {
            assert_eq!(parse_load(bad), load, "{bad:?}");
        }
        for bad in [
            &b"37@\n"[..],
            b"37@Hz\n",
            b"37@600\n",
            b"37@600hz\n",
            b"37@600 Hz\n",
            b"37@600Hz \n",
            b"37@600Hz\n\n",
            b"37@600Hz\r\n",
            b"37@@600Hz\n",
            b"37@600@700Hz\n",
            b"37@18446744073709551616Hz\n",
            b"37@-600Hz\n",
            b"37@600Hz\0",
            b"37@600Hz\xff",
        ] {
            assert_eq!(parse_load(bad), freq, "{bad:?}");
        }
    }
}
