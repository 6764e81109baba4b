//! Human-readable durations (`"1m30s"`) and byte sizes (`"64MiB"`) as written in the config file.
//!
//! Both parsers take an unsigned integer per component (no fractions, no signs) and use checked
//! arithmetic throughout: any input, however long, yields a value or an error, never a panic.
//! `format_*` produce text that the matching parser turns back into the same value.

use std::fmt;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

/// Largest accepted duration: 100 years (36500d). Keeps `Instant + d` and millisecond arithmetic
/// in the rest of the agent far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Duration units, largest first, in nanoseconds. `us` and `µs` are the same unit.
const DURATION_UNITS: [(&str, u128); 8] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

/// Size units, largest first (so `format_size` picks the largest exact one); matched
/// case-insensitively when parsing. Single letters (`K`, `M`) are rejected as ambiguous.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("kB", 1_000),
    ("B", 1),
];

/// Why a duration or size string was rejected. `Display` gives a phrase that follows a key name:
/// `storage.max_size: expected a size like "64MiB", got "lots" (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// Not `<integer><unit>` (durations: one or more such components).
    MalformedDuration { input: String },
    /// Larger than [`MAX_DURATION`] (including arithmetic overflow).
    DurationTooLarge { input: String },
    /// Not `<integer>[<unit>]`.
    MalformedSize { input: String },
    /// More than `u64::MAX` bytes.
    SizeTooLarge { input: String },
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedDuration { input } => write!(
                f,
                "expected a duration like \"30s\", got {input:?} \
                 (an integer and a unit: ms, s, m, h, d; combine as \"1m30s\")"
            ),
            Self::DurationTooLarge { input } => {
                write!(f, "duration {input:?} is too large (maximum 36500d)")
            }
            Self::MalformedSize { input } => write!(
                f,
                "expected a size like \"64MiB\", got {input:?} \
                 (an integer and a unit: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB; no unit = bytes)"
            ),
            Self::SizeTooLarge { input } => {
                write!(f, "size {input:?} is too large (maximum 2^64-1 bytes)")
            }
        }
    }
}

impl std::error::Error for UnitError {}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"24h"`, `"30d"` and sums of them such as `"1m30s"`.
/// Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d`. Surrounding whitespace is ignored; a unit
/// is required (also for zero: `"0s"`). At most [`MAX_DURATION`].
///
/// # Errors
/// `MalformedDuration` for anything else, `DurationTooLarge` above [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let malformed = || UnitError::MalformedDuration {
        input: s.to_owned(),
    };
    let too_large = || UnitError::DurationTooLarge {
        input: s.to_owned(),
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(malformed());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(malformed());
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let factor = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|&(_, factor)| factor)
            .ok_or_else(malformed)?;
        let count = parse_decimal(digits).ok_or_else(too_large)?;
        total = count
            .checked_mul(factor)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(too_large)?;
        rest = after;
    }
    if total > MAX_DURATION.as_nanos() {
        return Err(too_large());
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_large())?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| too_large())?;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration as the sum of its non-zero components, largest unit first: `"1m30s"`,
/// `"250ms"`, `"0s"`. Days are used only for whole multiples of at least two days, so `24h`
/// stays `"24h"` and 30 days is `"30d"`. [`parse_duration`] reads the result back exactly.
pub fn format_duration(d: Duration) -> String {
    const DAY: u128 = 86_400 * NANOS_PER_SEC;
    let mut rest = d.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let use_days = rest % DAY == 0 && rest >= 2 * DAY;
    let mut out = String::new();
    for &(name, factor) in &DURATION_UNITS {
        if (name == "d" && !use_days) || name == "µs" {
            continue;
        }
        let count = rest / factor;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            rest %= factor;
        }
    }
    out
}

/// Parses `"512B"`, `"256KiB"`, `"64MiB"`, `"1GiB"`, `"48MB"`, or a plain integer (bytes).
/// Binary (`KiB` = 1024) and decimal (`kB` = 1000) units; unit names are case-insensitive and
/// may follow the number after spaces (`"64 MiB"`).
///
/// # Errors
/// `MalformedSize` for anything else, `SizeTooLarge` above `u64::MAX` bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let malformed = || UnitError::MalformedSize {
        input: s.to_owned(),
    };
    let too_large = || UnitError::SizeTooLarge {
        input: s.to_owned(),
    };
    let text = s.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(malformed());
    }
    let unit = unit.trim_start();
    let factor = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, factor)| factor)
            .ok_or_else(malformed)?
    };
    let count = parse_decimal(digits).ok_or_else(too_large)?;
    u64::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(too_large)
}

/// Formats a byte count with the largest unit that divides it exactly (binary preferred over
/// decimal at the same scale): `"64MiB"`, `"48MB"`, `"1000B"` is `"1kB"`, `"1023B"`.
pub fn format_size(n: u64) -> String {
    if n == 0 {
        return "0B".to_owned();
    }
    SIZE_UNITS
        .iter()
        .find(|&&(_, factor)| n % factor == 0)
        .map_or_else(
            || format!("{n}B"),
            |&(name, factor)| format!("{}{name}", n / factor),
        )
}

/// A duration option of at least `MIN_NS` nanoseconds, written as a string (`"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dur<const MIN_NS: u64>(pub Duration);

/// A duration option that must be greater than 0.
pub(super) type Positive = Dur<1>;

impl<const MIN_NS: u64> From<Dur<MIN_NS>> for Duration {
    fn from(d: Dur<MIN_NS>) -> Duration {
        d.0
    }
}

impl<'de, const MIN_NS: u64> Deserialize<'de> for Dur<MIN_NS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN_NS: u64>;
        impl<const MIN_NS: u64> Visitor<'_> for V<MIN_NS> {
            type Value = Dur<MIN_NS>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"30s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                let d = parse_duration(s).map_err(E::custom)?;
                let min = Duration::from_nanos(MIN_NS);
                if d >= min {
                    return Ok(Dur(d));
                }
                let what = if MIN_NS <= 1 {
                    "a duration greater than 0".to_owned()
                } else {
                    format!("a duration of at least {}", format_duration(min))
                };
                Err(E::custom(format_args!(
                    "expected {what}, got \"{}\"",
                    format_duration(d)
                )))
            }
        }
        d.deserialize_str(V::<MIN_NS>)
    }
}

/// A size option of at least `MIN` bytes: a string (`"64MiB"`) or an integer number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Size<const MIN: u64>(pub u64);

impl<const MIN: u64> From<Size<MIN>> for u64 {
    fn from(s: Size<MIN>) -> u64 {
        s.0
    }
}

impl<'de, const MIN: u64> Deserialize<'de> for Size<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64>;
        impl<const MIN: u64> V<MIN> {
            fn check<E: de::Error>(n: u64) -> Result<Size<MIN>, E> {
                if n >= MIN {
                    return Ok(Size(n));
                }
                Err(E::custom(format_args!(
                    "expected a size of at least {}, got \"{}\"",
                    format_size(MIN),
                    format_size(n)
                )))
            }
        }
        impl<const MIN: u64> Visitor<'_> for V<MIN> {
            type Value = Size<MIN>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"64MiB\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Self::check(parse_size(s).map_err(E::custom)?)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                let n =
                    u64::try_from(n).map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))?;
                Self::check(n)
            }
        }
        d.deserialize_any(V::<MIN>)
    }
}

/// `serialize_with` for a duration option: the string [`parse_duration`] reads back.
pub(super) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `serialize_with` for a size option: the string [`parse_size`] reads back.
pub(super) fn ser_size<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_size(*n))
}

/// ASCII digits to a number; `None` on overflow (the caller has checked the digits are ASCII).
fn parse_decimal(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(u128::from(b.wrapping_sub(b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("24h"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("30d"), Ok(ms(30 * 86_400_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration(" 10s "), Ok(ms(10_000)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("7µs"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_duration("3ns"), Ok(Duration::from_nanos(3)));
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("007s"), Ok(ms(7000)));
    }

    #[test]
    fn durations_reject() {
        for bad in [
            "", " ", "10", "s", "lots", "10 s", "-5s", "+5s", "1.5s", "10S", "5min", "1m30",
            "ms10", "10sec", "1w", "1_000s", "٣s",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(UnitError::MalformedDuration {
                    input: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        for huge in [
            "99999999999999999999d",
            "36501d",
            "36500d1ns",
            "999999999999999999999999999999999999999999999999ns",
            "18446744073709551616s",
        ] {
            assert_eq!(
                parse_duration(huge),
                Err(UnitError::DurationTooLarge {
                    input: huge.to_owned()
                }),
                "{huge:?}"
            );
        }
    }

    #[test]
    fn duration_messages() {
        let e = parse_duration("lots").unwrap_err().to_string();
        assert!(
            e.starts_with("expected a duration like \"30s\", got \"lots\""),
            "{e}"
        );
        let e = parse_duration("99999999999999999999d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn durations_format_and_round_trip() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(10)), "10ms");
        assert_eq!(format_duration(ms(10_000)), "10s");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(300_000)), "5m");
        assert_eq!(format_duration(ms(86_400_000)), "24h");
        assert_eq!(format_duration(ms(36 * 3_600_000)), "36h");
        assert_eq!(format_duration(ms(30 * 86_400_000)), "30d");
        assert_eq!(format_duration(ms(1_500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_nanos(1_001)), "1us1ns");
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(123_456_789_012),
            ms(86_400_000),
            ms(2 * 86_400_000 + 1),
            MAX_DURATION,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("48MB"), Ok(48_000_000));
        assert_eq!(parse_size("3kB"), Ok(3_000));
        assert_eq!(parse_size("3KB"), Ok(3_000));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size(" 0 "), Ok(0));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_size("16777215TiB"), Ok(16_777_215 << 40));
    }

    #[test]
    fn sizes_reject() {
        for bad in [
            "", "lots", "MiB", "64M", "64K", "1.5MiB", "-1", "64 MiB B", "64MiBs", "0x10", "1e6",
        ] {
            assert_eq!(
                parse_size(bad),
                Err(UnitError::MalformedSize {
                    input: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        for huge in [
            "18446744073709551616",
            "16777216TiB",
            "99999999999999999999GiB",
            "999999999999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                parse_size(huge),
                Err(UnitError::SizeTooLarge {
                    input: huge.to_owned()
                }),
                "{huge:?}"
            );
        }
        let e = parse_size("lots").unwrap_err().to_string();
        assert!(
            e.starts_with("expected a size like \"64MiB\", got \"lots\""),
            "{e}"
        );
    }

    #[test]
    fn sizes_format_and_round_trip() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(1023), "1023B");
        assert_eq!(format_size(1000), "1kB");
        assert_eq!(format_size(256 * 1024), "256KiB");
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(48 << 20), "48MiB");
        assert_eq!(format_size(48_000_000), "48MB");
        assert_eq!(format_size(1 << 30), "1GiB");
        for n in [
            0,
            1,
            999,
            1000,
            1024,
            1536,
            48_000_000,
            1 << 40,
            u64::MAX,
            u64::MAX - 1,
        ] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
    }
}
