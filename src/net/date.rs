//! HTTP-date (RFC 9110 §5.6.7), the one parser for every date header the agent reads: the
//! clock-skew check's `Date` and the uploader's `Retry-After`.
//!
//! Parsing is the `httpdate` crate's: the three forms a recipient must accept (IMF-fixdate
//! `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` with 00–69 read as
//! 20xx, asctime `Sun Nov  6 08:49:37 1994`), surrounding whitespace ignored, case-sensitive
//! names, every field range-checked and the weekday checked against the date. Years 1970–9999
//! only; no leap second (`:60`). Chosen over the agent's two former parsers (one IMF-fixdate only,
//! one a `str::split` walk): it is the parser hyper and reqwest use, allocation-free, has no
//! dependency, and is the only one of the three that checks the weekday.

use std::time::UNIX_EPOCH;

/// Seconds since the Unix epoch of an HTTP-date, `None` for anything else (non-ASCII included).
pub fn parse_http_date(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let at = httpdate::parse_http_date(text).ok()?;
    let secs = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_refusals() {
        const NOV_6_1994: i64 = 784_111_777;
        for ok in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b" \tSun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse_http_date(ok), Some(NOV_6_1994), "{ok:?}");
        }
        for bad in [
            &b"Mon, 06 Nov 1994 08:49:37 GMT"[..], // wrong weekday
            b"Sun, 06 Nov 1994 08:49:60 GMT",
            b"Thu, 01 Jan 1960 00:00:00 GMT",
            b"Sun, 06 Nov 1994 08:49:37 \xff",
            b"",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
