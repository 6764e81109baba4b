//! How long the collection loop sleeps: a pure rule over its deadlines, with its table test.
//! (The collectors' deadlines are the ticker's, [`super::ticker`], not the loop's.)
//!
//! The loop must sleep until the next deadline it will *act on*, whatever the store does. Two
//! deadlines stop being acted on and must then not shorten the sleep (issue 26: either one,
//! once passed, made the wait 0 and the loop spin on a whole core):
//! - the flush deadline during a store outage: flushes then wait for the recovery's retry
//!   ([`super::recover`]), so `next_flush` is not advanced and stays in the past;
//! - the watchdog ping while the agent is not live: the loop withholds pings on purpose
//!   ([`crate::health::status::liveness`]), so the ping stays due.

use std::time::Duration;

/// The recovery's steps (probe, free-space check, retry) are looked at about this often
/// during an outage.
pub(super) const OUTAGE_STEP: Duration = Duration::from_secs(1);

/// The loop's deadlines, as durations from now (zero: due now or passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadlines {
    /// Until the next flush.
    pub flush_in: Duration,
    /// Until the next systemd watchdog ping (`None`: no watchdog).
    pub ping_in: Option<Duration>,
    /// The store takes no flush: the recovery decides when to try again.
    pub in_outage: bool,
    /// The agent can make progress (pings are sent).
    pub alive: bool,
}

/// The sleep before the next iteration. Pure.
pub(super) fn wait(d: &Deadlines) -> Duration {
    // The ticks are not a deadline here: the ticker runs them on its own thread and wakes the
    // loop when its ring is half full (`super::ticker`).
    let mut wait = if d.in_outage { OUTAGE_STEP } else { d.flush_in };
    if d.alive {
        if let Some(ping) = d.ping_in {
            wait = wait.min(ping);
        }
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_loop_sleeps_until_the_next_deadline_it_acts_on() {
        let healthy = Deadlines {
            flush_in: MS(5000),
            ping_in: None,
            in_outage: false,
            alive: true,
        };
        let table: [(&str, Deadlines, Duration); 8] = [
            ("flush next", healthy, MS(5000)),
            (
                "flush soon",
                Deadlines {
                    flush_in: MS(50),
                    ..healthy
                },
                MS(50),
            ),
            (
                "flush overdue: flushed this iteration, so due now",
                Deadlines {
                    flush_in: MS(0),
                    ..healthy
                },
                MS(0),
            ),
            (
                "outage: the passed flush deadline is the recovery's step",
                Deadlines {
                    flush_in: MS(0),
                    in_outage: true,
                    ..healthy
                },
                OUTAGE_STEP,
            ),
            (
                "ping due",
                Deadlines {
                    ping_in: Some(MS(0)),
                    ..healthy
                },
                MS(0),
            ),
            (
                "ping before the flush",
                Deadlines {
                    ping_in: Some(MS(700)),
                    ..healthy
                },
                MS(700),
            ),
            (
                "not live: pings withheld, their deadline ignored",
                Deadlines {
                    ping_in: Some(MS(0)),
                    alive: false,
                    ..healthy
                },
                MS(5000),
            ),
            (
                "not live in an outage",
                Deadlines {
                    ping_in: Some(MS(0)),
                    flush_in: MS(0),
                    in_outage: true,
                    alive: false,
                },
                OUTAGE_STEP,
            ),
        ];
        for (what, d, want) in table {
            assert_eq!(wait(&d), want, "{what}");
        }
    }
}
