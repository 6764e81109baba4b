//! `Retry-After` (RFC 9110 §10.2.3): `delay-seconds` or an HTTP-date.
//!
//! The date goes through the agent's one HTTP-date parser ([`crate::net::parse_http_date`]: all
//! three forms, weekday checked); anything else counts as garbage and the caller falls back to
//! its own backoff. A date in the past means "now" (zero wait).

use std::time::Duration;

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

/// An HTTP-date → ms since the epoch (the shared parser, in ms). The name predates the other two
/// forms and is kept for the `upload` re-export.
pub fn parse_imf_fixdate(s: &[u8]) -> Option<i64> {
    crate::net::parse_http_date(s)?.checked_mul(1000)
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
            parse_imf_fixdate(b"Tue, 29 Feb 2000 23:59:59 GMT"),
            Some(951_868_799_000)
        );
        // The obsolete forms too (RFC 9110: a recipient must accept all three).
        for old in [
            &b"Sunday, 06-Nov-94 08:49:37 GMT"[..],
            b"Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(old, RFC_EXAMPLE_MS), Some(Duration::ZERO));
        }
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
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Mon, 06 Nov 1994 08:49:37 GMT",
            b"Tue, 29 Feb 2000 23:59:60 GMT",
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
