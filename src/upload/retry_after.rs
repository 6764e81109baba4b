//! `Retry-After` (RFC 9110 §10.2.3): `delay-seconds` or an IMF-fixdate HTTP-date.
//!
//! Only the IMF-fixdate form of HTTP-date is accepted (`Sun, 06 Nov 1994 08:49:37 GMT`), the
//! one every current server sends; the obsolete RFC 850 and asctime forms count as garbage and
//! the caller falls back to its own backoff. A date in the past means "now" (zero wait).

use std::time::Duration;

use crate::model::time::days_from_civil;

const DAY_NAMES: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The wait a `Retry-After` value asks for, measured from `now_ms` (ms since the epoch).
/// `None` for anything that is neither form. Surrounding whitespace is ignored. A huge
/// `delay-seconds` saturates rather than failing; the caller caps it.
pub fn parse_retry_after(value: &[u8], now_ms: i64) -> Option<Duration> {
    let v = value.trim_ascii();
    if v.is_empty() {
        return None;
    }
    if v.iter().all(u8::is_ascii_digit) {
        let secs = v.iter().fold(0u64, |acc, &b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    let at_ms = parse_imf_fixdate(v)?;
    let wait = at_ms.saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → ms since the epoch. Exactly 29 bytes, case-sensitive
/// names (as RFC 9110 specifies), fields range-checked (second 60 allowed for a leap second).
/// The day name is checked to be a day name but not against the date.
pub fn parse_imf_fixdate(s: &[u8]) -> Option<i64> {
    if s.len() != 29 {
        return None;
    }
    let day_name = s.get(0..3)?;
    if !DAY_NAMES.contains(&day_name) || s.get(3..5)? != b", " {
        return None;
    }
    let day = digits(s.get(5..7)?)?;
    let month = MONTHS.iter().position(|m| Some(*m) == s.get(8..11))? as u32 + 1;
    let year = digits(s.get(12..16)?)?;
    let hour = digits(s.get(17..19)?)?;
    let minute = digits(s.get(20..22)?)?;
    let second = digits(s.get(23..25)?)?;
    if s.get(7) != Some(&b' ')
        || s.get(11) != Some(&b' ')
        || s.get(16) != Some(&b' ')
        || s.get(19) != Some(&b':')
        || s.get(22) != Some(&b':')
        || s.get(25..29)? != b" GMT"
    {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(secs * 1000)
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z
    const RFC_EXAMPLE_MS: i64 = 784_111_777_000;

    #[test]
    fn delay_seconds() {
        assert_eq!(parse_retry_after(b"120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(b"0", 5), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(b" 7 ", 0), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", 0),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_date() {
        assert_eq!(
            parse_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RFC_EXAMPLE_MS)
        );
        assert_eq!(parse_imf_fixdate(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate(b"Tue, 29 Feb 2000 23:59:60 GMT"),
            Some(951_868_800_000)
        );
        let now = RFC_EXAMPLE_MS - 2_500;
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_millis(2_500))
        );
        // A date agrees with the time module's formatter.
        let ms = 1_795_824_323_000;
        assert_eq!(
            crate::model::time::rfc3339(ms).as_str(),
            "2026-11-28T00:05:23.000Z"
        );
        assert_eq!(
            parse_imf_fixdate(b"Sat, 28 Nov 2026 00:05:23 GMT"),
            Some(ms)
        );
    }

    #[test]
    fn past_dates_mean_now() {
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS + 60_000),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(b"Thu, 01 Jan 1970 00:00:00 GMT", i64::MAX),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_none() {
        for bad in [
            &b""[..],
            b"   ",
            b"-5",
            b"+5",
            b"1.5",
            b"5s",
            b"soon",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"sun, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 nov 1994 08:49:37 GMT",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 29 Feb 1900 08:49:37 GMT",
            b"Sun, 00 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 23:60:00 GMT",
            b"Sun, 06 Nov 1994 23:59:61 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMTX",
            b"Sun, 06 Nov 1994 08-49-37 GMT",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3\u{e9} GMT".as_bytes(),
        ] {
            assert_eq!(
                parse_retry_after(bad, 0),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
