//! `/sys/class/thermal/thermal_zone*/{temp,type}`.
//!
//! sysfs returns a whole value in one read, so no trailing `'\n'` is required and
//! these parsers never return `Incomplete`. A missing or unreadable file is the
//! caller's I/O error; garbage is Malformed on line 1.

use crate::ParseError;
use crate::fields;

/// Millidegrees Celsius; may be negative. Accepts one integer (optional leading `-`)
/// with an optional trailing `'\n'`; nothing else, not even spaces.
pub fn parse_temp(buf: &[u8]) -> Result<i64, ParseError> {
    fields::sysfs_number(buf, "temp", fields::parse_i64)
}

/// Zone type (e.g. "soc-thermal"): trimmed of trailing whitespace, non-empty,
/// printable ASCII only (spaces inside are allowed: "INT3400 Thermal").
pub fn parse_type(buf: &[u8]) -> Result<&str, ParseError> {
    fields::sysfs_text(buf, "type")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::malformed;

    macro_rules! zone {
        ($board:literal, $zone:literal) => {
            (
                include_bytes!(concat!(
                    "../../tests/fixtures/",
                    $board,
                    "/sys/class/thermal/",
                    $zone,
                    "/type"
                ))
                .as_slice(),
                include_bytes!(concat!(
                    "../../tests/fixtures/",
                    $board,
                    "/sys/class/thermal/",
                    $zone,
                    "/temp"
                ))
                .as_slice(),
            )
        };
    }

    /// (type, millidegrees) of each (type, temp) file pair.
    fn readings<'a>(zones: &[(&'a [u8], &[u8])]) -> Vec<(&'a str, i64)> {
        zones
            .iter()
            .map(|&(ty, temp)| (parse_type(ty).unwrap(), parse_temp(temp).unwrap()))
            .collect()
    }

    #[test]
    fn rk3588_zones() {
        let zones = [
            zone!("rk3588-rock5b", "thermal_zone0"),
            zone!("rk3588-rock5b", "thermal_zone1"),
            zone!("rk3588-rock5b", "thermal_zone2"),
            zone!("rk3588-rock5b", "thermal_zone3"),
            zone!("rk3588-rock5b", "thermal_zone4"),
            zone!("rk3588-rock5b", "thermal_zone5"),
            zone!("rk3588-rock5b", "thermal_zone6"),
        ];
        assert_eq!(
            readings(&zones),
            [
                ("soc-thermal", 45230),
                ("bigcore0-thermal", 46153),
                ("bigcore1-thermal", 46153),
                ("littlecore-thermal", 45230),
                ("center-thermal", 44307),
                ("gpu-thermal", 44307),
                ("npu-thermal", 44307),
            ]
        );
        let fan = include_bytes!(
            "../../tests/fixtures/rk3588-rock5b/sys/class/thermal/cooling_device0/type"
        );
        assert_eq!(parse_type(fan), Ok("pwm-fan"));
    }

    #[test]
    fn jetson_zones() {
        let zones = [
            zone!("jetson-nano-l4t32", "thermal_zone0"),
            zone!("jetson-nano-l4t32", "thermal_zone1"),
            zone!("jetson-nano-l4t32", "thermal_zone2"),
            zone!("jetson-nano-l4t32", "thermal_zone3"),
            zone!("jetson-nano-l4t32", "thermal_zone4"),
            zone!("jetson-nano-l4t32", "thermal_zone5"),
        ];
        assert_eq!(
            readings(&zones),
            [
                ("AO-therm", 38500),
                ("CPU-therm", 41000),
                ("GPU-therm", 39500),
                ("PLL-therm", 38250),
                // The PMIC die "sensor" is a fixed 100 °C placeholder on L4T, not a reading.
                ("PMIC-Die", 100000),
                ("thermal-fan-est", 40250),
            ]
        );
    }

    #[test]
    fn temp_hostile() {
        assert_eq!(parse_temp(b"-5000\n"), Ok(-5000));
        assert_eq!(parse_temp(b"45230"), Ok(45230));
        assert_eq!(parse_temp(b"0\n"), Ok(0));
        assert_eq!(parse_temp(b"-9223372036854775808\n"), Ok(i64::MIN));
        assert_eq!(parse_temp(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"garbage",
            b"garbage\n",
            b"9223372036854775808",
            b"-9223372036854775809\n",
            b"99999999999999999999999999999999",
            b"+45230\n",
            b"-\n",
            b" 45230\n",
            b"45230 \n",
            b"45230\n\n",
            b"45230\r\n",
            b"45.2\n",
            b"45230\0",
            b"\xff45230",
            b"4523\n0",
        ] {
            assert_eq!(parse_temp(bad), Err(malformed(1, "temp")), "{bad:?}");
        }
    }

    #[test]
    fn type_hostile() {
        assert_eq!(parse_type(b"soc-thermal"), Ok("soc-thermal"));
        assert_eq!(parse_type(b"INT3400 Thermal\n"), Ok("INT3400 Thermal"));
        assert_eq!(parse_type(b"x86_pkg_temp \t\r\n\n"), Ok("x86_pkg_temp"));
        for bad in [
            &b""[..],
            b"\n",
            b" \n",
            b"a\tb\n",
            b"a\0b\n",
            b"\0\n",
            b"\xff\n",
            b"caf\xc3\xa9\n",
            b"a\nb\n",
            b"\x7f\n",
        ] {
            assert_eq!(parse_type(bad), Err(malformed(1, "type")), "{bad:?}");
        }
        let long = "t".repeat(1 << 20);
        assert_eq!(parse_type(long.as_bytes()), Ok(long.as_str()));
    }
}
