//! Clock skew: the server's `Date` header against the local clock.
//!
//! At start and every `monitoring.clock_skew_interval` the agent sends `GET monitoring.clock_skew_url`
//! and computes `skew = server time − midpoint(local send, local receive)`, in ms (positive: the
//! local clock is behind). "Send" is when the request's last byte was written, after DNS, TCP and
//! TLS set-up ([`crate::net::Response::sent_at`]), and "receive" when the response head was
//! complete, so a slow handshake does not bias the midpoint. The result goes to [`TimeState`] (shown in `/health` as `time.skew_ms`
//! and in `/metrics` as `time_skew_seconds`).
//!
//! Resolution: `Date` has one-second resolution and servers write the current second truncated,
//! so the true server time lies in `[Date, Date + 1 s)`. The agent adds [`DATE_CENTER_MS`] (500 ms)
//! to center that interval: the quantisation error is then ±500 ms instead of 0…+1000 ms, plus at
//! most half the round-trip time. Thresholds under ~1000 ms therefore flap.
//!
//! Each success also records the server's time as an offset from the boot clock
//! ([`Measurement::boot_offset_ms`]): the "trusted time known" input of
//! [`crate::monitor::clock::judge`], which re-stamps samples taken while the wall clock was
//! untrusted and corrects a wall clock that is off.
//!
//! Any answer with a valid `Date` is a measurement, whatever its status (a 404 from a
//! Prometheus-style receiver's `/health` carries the server's time as well as a 200). A failed
//! check (connection error, timeout, no or invalid `Date`) marks the time component degraded
//! and keeps the last measured skew. The skew shown (`/health`, `/metrics`) is kept current by
//! the collection loop ([`refresh_current`]): the server's time from the boot-clock offset
//! against the wall clock now, so a wall clock that stepped since the check shows its real
//! error within a tick, not at the next check. |skew| > `clock_skew_warn_ms` logs a
//! warning at most once an hour.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use smol::Timer;
use smol::future::or;

use crate::config::Config;
use crate::model::state::{AgentState, TimeState};
use crate::model::time::now_ms;
use crate::monitor::clock;
use crate::net::{self, Client, Method, Request, Url};

/// Added to the `Date` value to center its one-second truncation.
pub const DATE_CENTER_MS: i64 = 500;
/// Whole-request timeout of one check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one skew warning per this period.
pub const WARN_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkewConfig {
    /// Probed URL (http or https).
    pub url: String,
    pub interval: Duration,
    /// Warn when |skew| exceeds this.
    pub warn_ms: u64,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl SkewConfig {
    /// `None` when the check is disabled (no `[remote]` and no explicit URL, or `"off"`).
    pub fn from_config(config: &Config) -> Option<SkewConfig> {
        let m = &config.monitoring;
        m.clock_skew_url.as_ref().map(|url| SkewConfig {
            url: url.clone(),
            interval: m.clock_skew_interval,
            warn_ms: m.clock_skew_warn_ms,
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// Why a check produced no skew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkewError {
    /// `monitoring.clock_skew_url` is not a usable URL (or https without the `tls` feature).
    Url(String),
    /// Connection, DNS, TLS or protocol failure.
    Request(String),
    Timeout,
    /// The server answered with this status (≥ 400) and no `Date`.
    Status(u16),
    NoDate,
    /// The `Date` header is not an HTTP-date (IMF-fixdate, RFC 850 or asctime).
    BadDate,
    /// The local clock went backwards between send and receive.
    ClockStepped,
}

impl SkewError {
    /// The `error_type` of its log line.
    pub fn kind(&self) -> &'static str {
        match self {
            SkewError::Url(_) => "config",
            SkewError::Request(_) => "request",
            SkewError::Timeout => "timeout",
            SkewError::Status(_) => "http_status",
            SkewError::NoDate => "no_date",
            SkewError::BadDate => "bad_date",
            SkewError::ClockStepped => "clock_stepped",
        }
    }
}

impl fmt::Display for SkewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkewError::Url(e) => write!(f, "invalid URL: {e}"),
            SkewError::Request(e) => write!(f, "request failed: {e}"),
            SkewError::Timeout => f.write_str("request timed out"),
            SkewError::Status(s) => write!(f, "server answered HTTP {s} without a Date header"),
            SkewError::NoDate => f.write_str("response has no Date header"),
            SkewError::BadDate => f.write_str("Date header is not an HTTP-date"),
            SkewError::ClockStepped => f.write_str("local clock stepped back during the request"),
        }
    }
}

impl std::error::Error for SkewError {}

/// One successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Server − local, ms.
    pub skew_ms: i64,
    /// Request sent → response head received, ms (connection set-up excluded when known).
    pub rtt_ms: i64,
    /// Server time − boot clock (`CLOCK_BOOTTIME`), ms: the server's time as an offset that no
    /// later wall-clock step changes ([`crate::monitor::clock`]).
    pub boot_offset_ms: i64,
}

/// Parses an HTTP-date into seconds since the Unix epoch, through the agent's one HTTP-date
/// parser ([`net::parse_http_date`]: IMF-fixdate, RFC 850, asctime; weekday checked).
pub fn parse_http_date(value: &[u8]) -> Result<i64, SkewError> {
    net::parse_http_date(value).ok_or(SkewError::BadDate)
}

/// `server − midpoint(send, recv)` in ms, with the `Date` value centered by [`DATE_CENTER_MS`].
/// `send_ms`/`recv_ms` are local wall-clock ms when the request was sent and when the response
/// head arrived.
pub fn compute_skew_ms(send_ms: i64, recv_ms: i64, date_header: &[u8]) -> Result<i64, SkewError> {
    if recv_ms < send_ms {
        return Err(SkewError::ClockStepped);
    }
    let server_ms = parse_http_date(date_header)?
        .saturating_mul(1000)
        .saturating_add(DATE_CENTER_MS);
    let mid = send_ms + (recv_ms - send_ms) / 2;
    Ok(server_ms.saturating_sub(mid))
}

/// One check: `GET url` (no redirect followed: a redirect's `Date` is as good), then the skew
/// from its `Date` header. `timeout` bounds the whole request.
pub async fn measure(
    client: &Client,
    url: &Url,
    timeout: Duration,
) -> Result<Measurement, SkewError> {
    // The wall clock once, then monotonic offsets from it: the midpoint cannot be bent by a
    // clock step during the request.
    let (t0, wall0, boot0) = (Instant::now(), now_ms(), clock::boot_ms());
    let request = Request {
        method: Method::Get,
        url,
        headers: &[],
        body: &[],
        timeout,
    };
    let response = client.send(&request).await.map_err(|e| {
        if e.is_timeout() {
            SkewError::Timeout
        } else {
            SkewError::Request(e.to_string())
        }
    })?;
    let wall = |at: Instant| {
        let since = i64::try_from(at.saturating_duration_since(t0).as_millis()).unwrap_or(0);
        wall0.saturating_add(since)
    };
    let (send_ms, recv_ms) = (wall(response.sent_at), wall(response.head_at));
    // Any answer's `Date` is the server's time, whatever its status: a Prometheus-style
    // `remote.url` derives `/health`, which answers 404 — with a `Date`. Only an answer
    // without one is a failure (named by its status when it is an error).
    let date = match response.date.as_deref() {
        Some(d) => d,
        None if response.status >= 400 => return Err(SkewError::Status(response.status)),
        None => return Err(SkewError::NoDate),
    };
    let skew_ms = compute_skew_ms(send_ms, recv_ms, date.as_bytes())?;
    // Wall and boot readings advance by the same monotonic offsets from t0, so
    // server − boot = skew + (wall0 − boot0).
    Ok(Measurement {
        skew_ms,
        rtt_ms: recv_ms - send_ms,
        boot_offset_ms: skew_ms.saturating_add(wall0.saturating_sub(boot0)),
    })
}

/// The skew now (server − local, ms): the server's time from the last check's boot-clock offset
/// against the wall clock read now. Unlike the figure of the check itself, it follows a wall
/// clock that stepped since (an hour off after the check shows an hour now, not the old
/// figure until the next check). Meaningful once `time.measured`.
pub fn current_skew_ms(time: &TimeState) -> i64 {
    clock::boot_ms()
        .saturating_add(time.server_offset_ms.load(Ordering::Relaxed))
        .saturating_sub(now_ms())
}

/// Brings `time.skew_ms` (what /health and /metrics show) to the current skew
/// ([`current_skew_ms`]) once a check measured one. The collection loop calls it every
/// iteration, beside the clock judgment, so the figure shown is never older than one tick.
pub fn refresh_current(time: &TimeState) {
    if time.measured.load(Ordering::Relaxed) {
        time.skew_ms.store(current_skew_ms(time), Ordering::Relaxed);
    }
}

/// Stores one check's outcome; a failure keeps the last measured skew.
pub fn record(time: &TimeState, now_ms: i64, result: &Result<Measurement, SkewError>) {
    match result {
        Ok(m) => {
            time.skew_ms.store(m.skew_ms, Ordering::Relaxed);
            time.server_offset_ms
                .store(m.boot_offset_ms, Ordering::Relaxed);
            time.measured.store(true, Ordering::Relaxed);
            time.last_check_failed.store(false, Ordering::Relaxed);
            time.last_success_ms.store(now_ms, Ordering::Relaxed);
        }
        Err(_) => time.last_check_failed.store(true, Ordering::Relaxed),
    }
    time.last_check_ms.store(now_ms, Ordering::Relaxed);
}

/// Lets one warning through per period (the first one at once).
#[derive(Debug)]
pub struct WarnLimiter {
    every: Duration,
    last: Option<Instant>,
}

impl WarnLimiter {
    pub fn new(every: Duration) -> WarnLimiter {
        WarnLimiter { every, last: None }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Checks at start and every `cfg.interval` until `stop` completes (its output is ignored), or
/// until the future is dropped. `client` is the process's HTTP client (shared with the
/// uploader).
pub async fn skew_task(cfg: SkewConfig, client: Client, state: Arc<AgentState>, stop: impl Future) {
    or(checks(cfg, client, state), async {
        stop.await;
    })
    .await;
}

async fn checks(cfg: SkewConfig, client: Client, state: Arc<AgentState>) {
    let url = cfg.url.as_str();
    let parsed = Url::parse(url).map_err(|e| e.to_string()).and_then(|u| {
        net::check_supported(&u)
            .map(|()| u)
            .map_err(|e| e.to_string())
    });
    let target = match parsed {
        Ok(u) => u,
        Err(e) => {
            let e = SkewError::Url(e);
            log::error!(url = url, error:% = e, error_type = "config"; "clock-skew check disabled");
            record(&state.time, now_ms(), &Err(e));
            return;
        }
    };
    // Logged without userinfo or query.
    let redacted = target.redacted();
    let url = redacted.as_str();
    let mut warn = WarnLimiter::new(WARN_EVERY);
    let mut failing = false;
    let mut measured = false;
    loop {
        let result = measure(&client, &target, cfg.timeout).await;
        record(&state.time, now_ms(), &result);
        match &result {
            Ok(m) => {
                let high = m.skew_ms.unsigned_abs() > cfg.warn_ms;
                if high && warn.allow(Instant::now()) {
                    log::warn!(
                        skew_ms = m.skew_ms, threshold_ms = cfg.warn_ms, rtt_ms = m.rtt_ms, url = url,
                        error_type = "clock_skew";
                        "local clock differs from the server's (positive: local clock behind)"
                    );
                } else if failing {
                    log::info!(skew_ms = m.skew_ms, rtt_ms = m.rtt_ms, url = url; "clock-skew check recovered");
                } else if !measured {
                    log::info!(skew_ms = m.skew_ms, rtt_ms = m.rtt_ms, url = url; "clock skew measured");
                } else {
                    log::debug!(skew_ms = m.skew_ms, rtt_ms = m.rtt_ms, url = url; "clock skew measured");
                }
                failing = false;
                measured = true;
            }
            Err(e) => {
                if failing {
                    log::debug!(url = url, error:% = e; "clock-skew check failed");
                } else {
                    log::warn!(url = url, error:% = e, error_type = e.kind(); "clock-skew check failed");
                }
                failing = true;
            }
        }
        Timer::after(cfg.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_6_1994: i64 = 784_111_777; // 1994-11-06T08:49:37Z

    #[test]
    fn three_date_forms() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Ok(NOV_6_1994)
        );
        assert_eq!(
            parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            Ok(NOV_6_1994)
        );
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Ok(NOV_6_1994));
        assert_eq!(parse_http_date(b" Thu, 01 Jan 1970 00:00:00 GMT "), Ok(0));
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2028 23:59:59 GMT"),
            Ok(1_835_481_599)
        );
        assert_eq!(parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"), Ok(0));
        assert_eq!(
            parse_http_date(b"Saturday, 01-Jan-00 00:00:00 GMT"),
            Ok(946_684_800)
        );
    }

    #[test]
    fn bad_dates() {
        for bad in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 CET",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 94 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 29 Feb 1900 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:60:00 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT extra",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 94",
            b"Sun, 06 Nov +994 08:49:37 GMT",
            b"\xff\xfe",
        ] {
            assert_eq!(
                parse_http_date(bad),
                Err(SkewError::BadDate),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn skew_arithmetic() {
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        let server = NOV_6_1994 * 1000 + DATE_CENTER_MS;
        // Equal clocks, 200 ms round trip centered on the server time.
        assert_eq!(compute_skew_ms(server - 100, server + 100, date), Ok(0));
        // Local clock 3 s ahead of the server: negative skew.
        assert_eq!(
            compute_skew_ms(server + 2900, server + 3100, date),
            Ok(-3000)
        );
        // Local clock 1 h behind: positive skew; odd round trip truncates toward the sender.
        assert_eq!(
            compute_skew_ms(server - 3_600_000, server - 3_599_999, date),
            Ok(3_600_000)
        );
        assert_eq!(compute_skew_ms(10, 9, date), Err(SkewError::ClockStepped));
        assert_eq!(compute_skew_ms(0, 0, b"nope"), Err(SkewError::BadDate));
    }

    #[test]
    fn warnings_at_most_once_per_period() {
        let mut w = WarnLimiter::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        assert!(w.allow(t0));
        assert!(!w.allow(t0 + Duration::from_secs(1)));
        assert!(!w.allow(t0 + Duration::from_secs(3599)));
        assert!(w.allow(t0 + Duration::from_secs(3600)));
        assert!(!w.allow(t0 + Duration::from_secs(3601)));
    }
}
