//! One-value sysfs attributes of the SoC collectors: a number or a label per file.
//!
//! | file | printed as | units |
//! | --- | --- | --- |
//! | devfreq `cur_freq` | `%lu\n` | Hz |
//! | cpufreq `policy*/scaling_cur_freq` | `%u\n` | kHz |
//! | cpufreq `stats/total_trans`, cooling `stats/total_trans` | `%u\n` (old cpufreq: `%d\n`) | transitions |
//! | cooling `cur_state`, `max_state` | `%ld\n` | state index |
//! | power_supply `voltage_now` | `%d\n` | µV |
//! | iio ina3221x `in_voltageN_input`, `in_currentN_input`, `in_powerN_input` | `%d\n` | mV, mA, mW |
//! | hwmon ina3221 `inN_input`, `currN_input` | `%ld\n` | mV, mA |
//! | hwmon `currN_crit_alarm` | `%d\n` | 0 or 1 |
//! | hwmon `pwm1` | `%d\n` | 0–255 duty |
//! | hwmon `fan1_input`, L4T `pwm-fan/rpm_measured` | `%d\n` | RPM |
//! | L4T `pwm-fan/target_pwm` | `%d\n` | duty 0–`pwm_cap` (≤ the devicetree's `active_pwm_max`, 255) |
//! | `type`, `name`, `inN_label`, iio `rail_name_N` | `%s\n` | text |
//! | devicetree `of_node/name` | `name\0` (raw property) | text |
//!
//! Counters and frequencies read with [`parse_u64`]; measured electrical values with
//! [`parse_i64`], as the kernel prints them signed (a shunt reads negative when current
//! flows back). sysfs returns a whole value in one read, so no trailing `'\n'` is
//! required and these parsers never return `Incomplete`; anything else (spaces, a
//! sign on a counter, overflow, NUL bytes, a second line) is Malformed on line 1.
//!
//! Format: drivers/thermal/thermal_sysfs.c (`cur_state_show` `"%ld\n"`,
//! `total_trans_show` `"%u\n"`, mainline via code search); torvalds/linux
//! drivers/cpufreq/cpufreq_stats.c:57-64 at commit 00d0b294 (`show_total_trans`,
//! `"%d\n"`); armbian/linux-rockchip drivers/devfreq/devfreq.c (`cur_freq_show`
//! `"%lu\n"`, commit 2a81e649); rbonghi/jetson_stats jtop/core/power.py (`list_all_i2c_ports`:
//! `inN_label`, `inN_input`, `currN_input`, `currN_crit_alarm`, `rail_name_N`,
//! `in_powerN_input`), jtop/core/fan.py (`target_pwm`, `rpm_measured`, `pwm_cap`),
//! jtop/core/gpu.py (`find_igpu`: `device/of_node/name`).

use crate::ParseError;
use crate::fields::{self, malformed};

/// An unsigned number (frequency, counter, state, RPM): digits only, with an optional
/// trailing `'\n'`. No sign: an old kernel's `%d` `total_trans` past 2^31 prints
/// negative and is Malformed `value`, not a wrapped count.
pub fn parse_u64(buf: &[u8]) -> Result<u64, ParseError> {
    fields::sysfs_number(buf, "value", fields::parse_u64)
}

/// A signed number (voltage, current, power): an optional leading `-`, then digits,
/// with an optional trailing `'\n'`; Malformed `value` otherwise.
pub fn parse_i64(buf: &[u8]) -> Result<i64, ParseError> {
    fields::sysfs_number(buf, "value", fields::parse_i64)
}

/// An hwmon `pwm1` duty cycle: 0 (off) to 255 (full), the register's 8-bit full
/// scale. A larger number is Malformed `pwm`. L4T's `pwm-fan/target_pwm` is on the
/// same scale: `pwm_cap` only caps it, and the duty is `target_pwm` over the
/// devicetree's `active_pwm_max` (255 on Jetson boards; L4T drivers/thermal/pwm_fan.c,
/// `precision_multiplier`), so it parses here too.
pub fn parse_pwm(buf: &[u8]) -> Result<u8, ParseError> {
    fields::sysfs_number(buf, "pwm", |s| {
        fields::parse_u16(s).and_then(|v| u8::try_from(v).ok())
    })
}

/// An hwmon alarm flag (`currN_crit_alarm`): exactly `0` or `1`, else Malformed `alarm`.
pub fn parse_alarm(buf: &[u8]) -> Result<bool, ParseError> {
    fields::sysfs_number(buf, "alarm", |s| match s {
        b"0" => Some(false),
        b"1" => Some(true),
        _ => None,
    })
}

/// A label, type or name (`inN_label`, `rail_name_N`, `type`, hwmon `name`): trimmed
/// of trailing whitespace, non-empty, printable ASCII (inner spaces allowed, as in
/// "sum of shunt voltages"); else Malformed `label`.
pub fn parse_label(buf: &[u8]) -> Result<&str, ParseError> {
    fields::sysfs_text(buf, "label")
}

/// A devicetree string property (`device/of_node/name`): the raw bytes end in exactly
/// one NUL and hold no `'\n'`: "gpu\0" is "gpu". What precedes the NUL follows
/// [`parse_label`]'s rules, without trailing whitespace; else Malformed `dt string`.
pub fn parse_dt_string(buf: &[u8]) -> Result<&str, ParseError> {
    match buf.strip_suffix(b"\0") {
        Some(name) if name.last().is_some_and(u8::is_ascii_graphic) => {
            fields::sysfs_text(name, "dt string")
        }
        _ => Err(malformed(1, "dt string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! soc {
        ($path:literal) => {
            include_bytes!(concat!("../../tests/fixtures/soc/", $path)).as_slice()
        };
    }

    #[test]
    fn rk3588_values() {
        assert_eq!(
            parse_u64(soc!(
                "rk3588-vendor/sys/class/devfreq/fb000000.gpu/cur_freq"
            )),
            Ok(600_000_000)
        );
        assert_eq!(
            parse_u64(soc!(
                "rk3588-vendor/sys/class/devfreq/fdab0000.npu/cur_freq"
            )),
            Ok(1_000_000_000)
        );
        let cpu = [
            soc!("rk3588-vendor/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"),
            soc!("rk3588-vendor/sys/devices/system/cpu/cpufreq/policy0/stats/total_trans"),
            soc!("rk3588-vendor/sys/devices/system/cpu/cpufreq/policy4/scaling_cur_freq"),
            soc!("rk3588-vendor/sys/devices/system/cpu/cpufreq/policy4/stats/total_trans"),
        ];
        assert_eq!(
            cpu.map(|f| parse_u64(f).unwrap()),
            [1_800_000, 8211, 2_208_000, 2876]
        );
        let fan = [
            soc!("rk3588-vendor/sys/class/thermal/cooling_device0/cur_state"),
            soc!("rk3588-vendor/sys/class/thermal/cooling_device0/max_state"),
            soc!("rk3588-vendor/sys/class/thermal/cooling_device0/stats/total_trans"),
        ];
        assert_eq!(fan.map(|f| parse_u64(f).unwrap()), [2, 4, 386]);
        assert_eq!(
            parse_label(soc!("rk3588-vendor/sys/class/thermal/cooling_device0/type")),
            Ok("pwm-fan")
        );
        assert_eq!(
            parse_label(soc!("rk3588-vendor/sys/class/hwmon/hwmon8/name")),
            Ok("pwmfan")
        );
        // 120 / 255 of full duty.
        assert_eq!(
            parse_pwm(soc!("rk3588-vendor/sys/class/hwmon/hwmon8/pwm1")),
            Ok(120)
        );
        // 12 V from USB-PD, in µV.
        assert_eq!(
            parse_i64(soc!(
                "rk3588-vendor/sys/class/power_supply/tcpm-source-psy-4-0022/voltage_now"
            )),
            Ok(12_000_000)
        );
    }

    #[test]
    fn jetson_nano_values() {
        assert_eq!(
            parse_u64(soc!("jetson-nano/sys/class/devfreq/57000000.gpu/cur_freq")),
            Ok(76_800_000)
        );
        assert_eq!(
            parse_dt_string(soc!(
                "jetson-nano/sys/class/devfreq/57000000.gpu/device/of_node/name"
            )),
            Ok("gpu")
        );
        let iio = [
            (
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_0"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_voltage0_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_current0_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_power0_input"),
            ),
            (
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_1"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_voltage1_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_current1_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_power1_input"),
            ),
            (
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_2"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_voltage2_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_current2_input"),
                soc!("jetson-nano/sys/bus/i2c/devices/6-0040/iio:device0/in_power2_input"),
            ),
        ];
        let rails: Vec<_> = iio
            .iter()
            .map(|&(name, mv, ma, mw)| {
                (
                    parse_label(name).unwrap(),
                    parse_i64(mv).unwrap(),
                    parse_i64(ma).unwrap(),
                    parse_i64(mw).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rails,
            [
                ("POM_5V_IN", 5048, 1104, 5576),
                ("POM_5V_GPU", 5024, 80, 401),
                ("POM_5V_CPU", 5000, 399, 1995),
            ]
        );
        // The driver samples power on its own: 5048 mV × 1104 mA = 5573 mW, not 5576.
        assert_eq!(5048 * 1104 / 1000, 5572);
        assert_eq!(
            parse_u64(soc!("jetson-nano/sys/devices/pwm-fan/target_pwm")),
            Ok(77)
        );
        assert_eq!(
            parse_u64(soc!("jetson-nano/sys/devices/pwm-fan/rpm_measured")),
            Ok(2160)
        );
        let cpu = [
            soc!("jetson-nano/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"),
            soc!("jetson-nano/sys/devices/system/cpu/cpufreq/policy0/stats/total_trans"),
        ];
        assert_eq!(cpu.map(|f| parse_u64(f).unwrap()), [1_479_000, 48_213]);
    }

    #[test]
    fn jetson_orin_values() {
        assert_eq!(
            parse_u64(soc!(
                "jetson-orin/sys/class/devfreq/17000000.ga10b/cur_freq"
            )),
            Ok(624_750_000)
        );
        assert_eq!(
            parse_dt_string(soc!(
                "jetson-orin/sys/class/devfreq/17000000.ga10b/device/of_node/name"
            )),
            Ok("ga10b")
        );
        let hwmon = [
            (
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_label"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_input"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input"),
                soc!(
                    "jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_crit_alarm"
                ),
            ),
            (
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in2_label"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in2_input"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr2_input"),
                soc!(
                    "jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr2_crit_alarm"
                ),
            ),
            (
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in3_label"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in3_input"),
                soc!("jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr3_input"),
                soc!(
                    "jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr3_crit_alarm"
                ),
            ),
        ];
        let rails: Vec<_> = hwmon
            .iter()
            .map(|&(label, mv, ma, alarm)| {
                (
                    parse_label(label).unwrap(),
                    parse_i64(mv).unwrap(),
                    parse_i64(ma).unwrap(),
                    parse_alarm(alarm).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rails,
            [
                ("VDD_IN", 5064, 1488, false),
                ("VDD_CPU_GPU_CV", 5056, 472, false),
                ("VDD_SOC", 5064, 352, false),
            ]
        );
        assert_eq!(
            parse_label(soc!(
                "jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in7_label"
            )),
            Ok("sum of shunt voltages")
        );
        assert_eq!(
            parse_label(soc!(
                "jetson-orin/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/name"
            )),
            Ok("ina3221")
        );
        assert_eq!(
            parse_pwm(soc!("jetson-orin/sys/class/hwmon/hwmon2/pwm1")),
            Ok(104)
        );
        assert_eq!(
            parse_u64(soc!("jetson-orin/sys/class/hwmon/hwmon3/fan1_input")),
            Ok(2203)
        );
        let state = [
            soc!("jetson-orin/sys/class/thermal/cooling_device0/cur_state"),
            soc!("jetson-orin/sys/class/thermal/cooling_device0/max_state"),
            soc!("jetson-orin/sys/class/thermal/cooling_device0/stats/total_trans"),
            soc!("jetson-orin/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"),
            soc!("jetson-orin/sys/devices/system/cpu/cpufreq/policy4/scaling_cur_freq"),
        ];
        assert_eq!(
            state.map(|f| parse_u64(f).unwrap()),
            [1, 3, 12, 1_510_400, 729_600]
        );
    }

    #[test]
    fn numbers_hostile() {
        assert_eq!(parse_u64(b"18446744073709551615\n"), Ok(u64::MAX));
        assert_eq!(parse_u64(b"0"), Ok(0));
        assert_eq!(parse_i64(b"-352\n"), Ok(-352));
        // Found by the fuzzer: a signed zero is 0 signed, and no unsigned value.
        assert_eq!(parse_i64(b"-00000"), Ok(0));
        assert_eq!(parse_u64(b"-00000"), Err(malformed(1, "value")));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        let value = malformed(1, "value");
        for bad in [
            &b""[..],
            b"\n",
            b"18446744073709551616\n",
            b"-1\n",
            b"+1\n",
            b" 1\n",
            b"1 \n",
            b"1\n\n",
            b"1\r\n",
            b"1\0",
            b"0x10\n",
            b"1.5\n",
            b"\xff1\n",
            b"warn 32760 ma\n",
        ] {
            assert_eq!(parse_u64(bad), Err(value), "{bad:?}");
        }
        for bad in [&b"-"[..], b"--1", b"9223372036854775808\n", b"-\n", b"1-"] {
            assert_eq!(parse_i64(bad), Err(value), "{bad:?}");
        }
        assert_eq!(parse_pwm(b"255\n"), Ok(255));
        assert_eq!(parse_pwm(b"0"), Ok(0));
        for bad in [
            &b"256\n"[..],
            b"65536\n",
            b"-1\n",
            b"",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_pwm(bad), Err(malformed(1, "pwm")), "{bad:?}");
        }
        assert_eq!(parse_alarm(b"1\n"), Ok(true));
        assert_eq!(parse_alarm(b"0"), Ok(false));
        for bad in [&b"2\n"[..], b"00\n", b"", b"true\n", b"1 \n"] {
            assert_eq!(parse_alarm(bad), Err(malformed(1, "alarm")), "{bad:?}");
        }
    }

    #[test]
    fn text_hostile() {
        assert_eq!(parse_label(b"VDD_IN"), Ok("VDD_IN"));
        for bad in [
            &b""[..],
            b"\n",
            b"  \n",
            b"a\tb\n",
            b"a\0b\n",
            b"gpu\0",
            b"\xff\n",
        ] {
            assert_eq!(parse_label(bad), Err(malformed(1, "label")), "{bad:?}");
        }
        assert_eq!(parse_dt_string(b"gv11b\0"), Ok("gv11b"));
        for bad in [
            &b""[..],
            b"\0",
            b"gpu",
            b"gpu\n",
            b"gpu\n\0",
            b"gpu \0",
            b"gpu\0\0",
            b"g\0u\0",
            b"\xff\0",
        ] {
            assert_eq!(
                parse_dt_string(bad),
                Err(malformed(1, "dt string")),
                "{bad:?}"
            );
        }
    }
}
