//! The retry policy of one chunk: what to do after one attempt. Pure: no I/O, no clock, no
//! random generator (the jitter draw is an input), so every rule is a table-driven unit test.
//!
//! The task ([`super::task`]) does the I/O around it: it sends, feeds the reply here, then
//! counts, logs, sleeps, marks or bisects as the [`Plan`] says. Durations in a plan are relative
//! to the instant the reply was received.
//!
//! Rules (docs/upload.md):
//! - 2xx: accepted.
//! - 400/404/405/415/422 (a refusal: either the body holds something the server refuses, or the
//!   server refuses everything: a wrong URL path, an auth proxy answering 400, a misrouted load
//!   balancer). Which one it is depends on [`Evidence`], what the server did with the rest of the
//!   chunk since its first refusal:
//!   - it accepted other samples: the refusal is specific; bisect while the chunk has more than
//!     one sample, quarantine a single refused sample;
//!   - nothing accepted yet: send one sample alone ([`Decision::Probe`]), at most
//!     [`MAX_PROBES`] per chunk;
//!   - nothing accepted and the probes refused too: the server refuses everything
//!     ([`Decision::ServerRefuses`]); nothing is quarantined, the chunk stays pending, and the
//!     next request waits the maximum backoff. So a server-wide refusal costs at most
//!     1 + [`MAX_PROBES`] requests per cycle, and a poison sample is still isolated in
//!     O(log n) requests.
//! - 400 (or 409, Thanos Receive) whose body says the receiver already has the sample or can
//!   never take it ([`Stale`], read by [`classify_stale`]: "out of order sample", "duplicate
//!   sample for timestamp", "out of bounds" / "too old"). Prometheus answers that for a chunk it
//!   stored once already (a resend after a lost answer, or after a restart) and rolls the whole
//!   request back, so such a refusal is specific to some samples of the body, never a server
//!   that refuses everything, and no probe is needed: bisect (left first, keeping timestamp
//!   order) while the body has more than one sample; a single sample is [`Decision::Stale`]:
//!   out of order / duplicate ⇒ treated as delivered (marked uploaded: it is there, or an
//!   older value for that timestamp is), too old ⇒ quarantined as `too_old`. Nothing else of
//!   the chunk is ever quarantined for it.
//! - 413 (too large): bisect while the chunk has more than one sample; a single sample that is
//!   still too large fails the round (it stays pending).
//! - 401/403: retried at the maximum backoff (jittered); after the last attempt that backoff is
//!   also kept as the earliest next request, so the next cycle does not hammer the server.
//! - Anything else (429, 5xx, other 4xx, network errors): exponential backoff with jitter, up to
//!   `max_attempts`; then the chunk stays pending until the next cycle.
//! - A `Retry-After` (capped at [`MAX_RETRY_AFTER`]) on any failure delays the next request by at
//!   least that much, whatever comes next (retry, bisected half, or next cycle).
//! - 401/403 are never a refusal of the body: no probe, no bisection, no quarantine, whatever
//!   the evidence (a probe answered 401 is an auth failure like any other request).
//!
//! When rounds start (a fleet's rules, docs/fleet.md):
//! - Each board's rounds fall on its own grid, `phase + k × upload_interval` on the wall clock
//!   ([`upload_phase`], [`until_next_round`]); the phase is a hash of `device.id`, so it is the
//!   same across restarts and boards powered up in the same second upload apart, spread
//!   evenly over the interval. After an outage, every board's first retry comes at its own
//!   phase, so the recovery is spread the same way.
//! - A backlog (batches back to back) is drained at most at `remote.max_drain_rate` samples/s,
//!   or twice what the board collects if that is more ([`drain_rate`]): a batch holds at most
//!   one second's worth of it, and after each batch the task pauses [`drain_pause`].

use std::time::Duration;

use super::MAX_RETRY_AFTER;
use super::backoff::Backoff;
use crate::config::RemoteConfig;

/// What one attempt got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP answer; `retry_after` already parsed (see `parse_retry_after`).
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No HTTP answer: connect, TLS, timeout or I/O error.
    Network,
}

impl Reply {
    /// The status code, 0 for a network error (the `last_http_status` convention).
    pub fn status(self) -> u16 {
        match self {
            Reply::Http { status, .. } => status,
            Reply::Network => 0,
        }
    }

    fn retry_after(self) -> Option<Duration> {
        match self {
            Reply::Http { retry_after, .. } => retry_after.map(|ra| ra.min(MAX_RETRY_AFTER)),
            Reply::Network => None,
        }
    }
}

/// One attempt, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub reply: Reply,
    /// 1-based.
    pub attempt: u32,
    /// Samples in the chunk (>= 1).
    pub samples: usize,
    /// The random draw for the jitter, in [0, 1).
    pub jitter: f64,
    pub evidence: Evidence,
    /// What the answer's body says, when it names a per-sample reason ([`classify_stale`]).
    pub stale: Option<Stale>,
    /// The answer's body blames the credentials ([`classify_auth`]): an auth failure whatever
    /// the status.
    pub auth_body: bool,
}

/// A per-sample refusal a remote_write receiver explains in its answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Older than the newest sample the receiver has for that series.
    OutOfOrder,
    /// Same timestamp as a stored sample (with another value; an identical sample is accepted).
    Duplicate,
    /// Older than the receiver's window (Prometheus: "out of bounds", the head block's start;
    /// Mimir: "too old").
    TooOld,
}

impl Stale {
    /// The `reason` label of `uploader_samples_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Stale::OutOfOrder => "out_of_order",
            Stale::Duplicate => "duplicate",
            Stale::TooOld => "too_old",
        }
    }
}

/// Reads a refusal's body (Prometheus, Mimir/Cortex, Thanos Receive wording). `None`: the body
/// names no per-sample reason; the refusal goes through the probe rules.
pub fn classify_stale(status: u16, body: &str) -> Option<Stale> {
    if status != 400 && status != 409 {
        return None;
    }
    let b = body.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| b.contains(w));
    if has(&["too old", "too-old", "out of bounds", "out-of-bounds"]) {
        Some(Stale::TooOld)
    } else if has(&[
        "duplicate sample",
        "duplicate-timestamp",
        "repeated timestamp",
    ]) {
        Some(Stale::Duplicate)
    } else if has(&["out of order", "out-of-order"]) {
        Some(Stale::OutOfOrder)
    } else {
        None
    }
}

/// Reads a refusal's body for an auth proxy that answers a token it does not know with 400
/// instead of 401 (vmauth: `cannot find the provided auth token … in config`; also
/// "unauthorized", "invalid token"). Such an answer is an auth failure: retried at the maximum
/// backoff, never probed, bisected or quarantined.
pub fn classify_auth(status: u16, body: &str) -> bool {
    if status != 400 {
        return false;
    }
    let b = body.to_ascii_lowercase();
    [
        "auth token",
        "unauthorized",
        "invalid token",
        "authorization",
    ]
    .iter()
    .any(|w| b.contains(w))
}

/// Why a failed attempt failed, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 401/403: the token is missing, wrong or lacks rights.
    Auth,
    /// Anything worth trying again: 429, 5xx, other 4xx, network errors.
    Transient,
}

/// Single-sample probes per chunk before a refusal counts as server-wide.
pub const MAX_PROBES: u32 = 2;

/// What the server did with the rest of the chunk since the chunk was first refused; decides
/// whether a refusal is specific to the refused body. Ignored for any reply but a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// It accepted other samples of this chunk: the refusal is specific to what it refused.
    Accepted,
    /// Nothing accepted yet, and another sample can still be probed alone.
    CanProbe,
    /// Nothing accepted, and no probe is left (the probes were refused too, or there is no
    /// other sample to probe with).
    Exhausted,
}

/// Why the server refused the chunk as such (retrying it unchanged cannot help).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400/404/405/415/422: something in the body, or everything, is refused.
    Rejected,
    /// 413: the body is too large for a proxy or the server.
    TooLarge,
    /// 400/409 whose body names a per-sample reason ([`Stale`]).
    Stale(Stale),
}

/// The next step for the chunk. New cases are new variants; the task's `match` then names
/// every case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// 2xx: mark the chunk uploaded.
    Accept,
    /// Refused, more than one sample, and the refusal is specific ([`Evidence::Accepted`]) or
    /// for size (413): send each half on its own, left first.
    Bisect(Refusal),
    /// Refused before anything of the chunk was accepted: send one other sample alone to tell
    /// a poison sample from a server that refuses everything.
    Probe,
    /// Refused on a single sample while the server accepted others of the chunk: set it aside
    /// so that it no longer blocks the queue.
    Quarantine,
    /// Everything refused, the probes included: the server refuses every request (wrong URL
    /// path, auth proxy, misrouting). Nothing is quarantined, the chunk stays pending; the
    /// next request waits `next_cycle_in` (the maximum backoff, or a longer `Retry-After`).
    ServerRefuses { next_cycle_in: Duration },
    /// A single sample the receiver says it has (out of order, duplicate: mark it uploaded)
    /// or can never take (too old: quarantine it as `too_old`).
    Stale(Stale),
    /// 413 on a single sample: nothing smaller can be sent; the round fails, the sample stays
    /// pending.
    Unsendable,
    /// Try the same body again after `after`.
    Retry { after: Duration, failure: Failure },
    /// Attempts exhausted: the chunk stays pending. `next_cycle_in` is the earliest the next
    /// cycle can send (the upload interval, or longer when `not_before` says so); it is what the
    /// log reports as the backoff.
    GiveUp {
        failure: Failure,
        next_cycle_in: Duration,
    },
}

/// A decision and the earliest next request it leaves behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub decision: Decision,
    /// No request before this much time has passed (a `Retry-After`, or the maximum backoff
    /// after an auth failure gave up). Kept across chunks and cycles by the task. Always `None`
    /// for [`Decision::Retry`]: its `after` already includes it.
    pub not_before: Option<Duration>,
}

/// The retry settings of one uploader.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Attempts per chunk per cycle, including the first; >= 1 (1 when retries are disabled).
    pub max_attempts: u32,
    /// The wait between cycles (`remote.upload_interval`): the least a give-up waits.
    pub upload_interval: Duration,
}

impl RetryPolicy {
    pub fn from_config(remote: &RemoteConfig) -> RetryPolicy {
        let retry = &remote.retry;
        RetryPolicy {
            backoff: Backoff::from_config(retry),
            max_attempts: if retry.enabled {
                retry.max_attempts.max(1)
            } else {
                1
            },
            upload_interval: remote.upload_interval,
        }
    }

    pub fn decide(&self, a: &Attempt) -> Plan {
        let status = a.reply.status();
        let retry_after = a.reply.retry_after();
        if (200..300).contains(&status) {
            return Plan {
                decision: Decision::Accept,
                not_before: None,
            };
        }
        let auth = status == 401 || status == 403 || a.auth_body;
        let refusal = match (status, a.stale) {
            _ if auth => None,
            (400 | 409, Some(stale)) => Some(Refusal::Stale(stale)),
            (400 | 404 | 405 | 415 | 422, _) => Some(Refusal::Rejected),
            (413, _) => Some(Refusal::TooLarge),
            _ => None,
        };
        if let Some(refusal) = refusal {
            let decision = match (refusal, a.evidence) {
                (Refusal::Stale(_), _) if a.samples > 1 => Decision::Bisect(refusal),
                (Refusal::Stale(stale), _) => Decision::Stale(stale),
                (Refusal::TooLarge, _) if a.samples > 1 => Decision::Bisect(refusal),
                (Refusal::TooLarge, _) => Decision::Unsendable,
                (Refusal::Rejected, Evidence::Accepted) if a.samples > 1 => {
                    Decision::Bisect(refusal)
                }
                (Refusal::Rejected, Evidence::Accepted) => Decision::Quarantine,
                (Refusal::Rejected, Evidence::CanProbe) => Decision::Probe,
                (Refusal::Rejected, Evidence::Exhausted) => {
                    // Like an auth failure: the maximum backoff, kept across cycles.
                    let backoff = self.backoff.max_with_jitter(a.jitter);
                    let not_before = retry_after.map_or(backoff, |ra| ra.max(backoff));
                    return Plan {
                        decision: Decision::ServerRefuses {
                            next_cycle_in: not_before.max(self.upload_interval),
                        },
                        not_before: Some(not_before),
                    };
                }
            };
            return Plan {
                decision,
                not_before: retry_after,
            };
        }
        let failure = if auth {
            Failure::Auth
        } else {
            Failure::Transient
        };
        let backoff = match failure {
            Failure::Auth => self.backoff.max_with_jitter(a.jitter),
            Failure::Transient => self.backoff.with_jitter(a.attempt, a.jitter),
        };
        let waited = retry_after.unwrap_or_default();
        if a.attempt < self.max_attempts {
            return Plan {
                decision: Decision::Retry {
                    after: waited.max(backoff),
                    failure,
                },
                not_before: None,
            };
        }
        let not_before = match failure {
            // Keep the maximum backoff across cycles too.
            Failure::Auth => Some(retry_after.map_or(backoff, |ra| ra.max(backoff))),
            Failure::Transient => retry_after,
        };
        Plan {
            decision: Decision::GiveUp {
                failure,
                next_cycle_in: not_before.unwrap_or_default().max(self.upload_interval),
            },
            not_before,
        }
    }
}

/// This board's phase within `interval`: FNV-1a (64 bit) of `device_id`, mixed, scaled to
/// `[0, interval)` at millisecond resolution. Stable across restarts and builds (the hash is
/// fixed here, not `std`'s randomly keyed one); distinct ids spread uniformly.
pub fn upload_phase(device_id: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in device_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits barely change between ids that differ in their last bytes ("board-0001",
    // "board-0002"): murmur3's finaliser mixes every bit into every other.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    let interval_ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    // The high bits mix best; u128 keeps the product exact.
    let ms = (u128::from(h) * u128::from(interval_ms)) >> 64;
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// From `now_ms` (wall clock, ms since the epoch), the wait until this board's next round: the
/// next instant `t > now_ms` with `t ≡ phase (mod interval)`. In `(0, interval]`, so a wall
/// clock that jumps moves a round by at most one interval, never stalls it.
pub fn until_next_round(now_ms: i64, phase: Duration, interval: Duration) -> Duration {
    let interval_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let phase_ms = i64::try_from(phase.as_millis()).unwrap_or(0) % interval_ms;
    let into = (now_ms.wrapping_sub(phase_ms)).rem_euclid(interval_ms);
    Duration::from_millis(u64::try_from(interval_ms - into).unwrap_or(0))
}

/// The drain bound in force (samples/s; 0 = unbounded): `max_rate`, but never below twice what
/// the board collects (`inflow_per_s`), so that a board collecting faster than
/// `remote.max_drain_rate` (a 10 ms interval in a test, thousands of interfaces) still catches
/// up instead of falling behind for ever.
pub fn drain_rate(max_rate: u32, inflow_per_s: f64) -> u32 {
    if max_rate == 0 {
        return 0;
    }
    let floor = (2.0 * inflow_per_s.max(0.0))
        .ceil()
        .min(f64::from(u32::MAX)) as u32;
    max_rate.max(floor)
}

/// After a drained batch of `samples` that took `took`: the pause before the next batch so that
/// the drain stays at most `max_rate` samples/s (0 = unbounded: no pause). `jitter` in [0, 1)
/// lengthens it by up to 20 %, so boards that recovered together drift apart instead of
/// sending their batches in step; it never shortens it, so the bound holds.
pub fn drain_pause(samples: usize, took: Duration, max_rate: u32, jitter: f64) -> Duration {
    if max_rate == 0 || samples == 0 {
        return Duration::ZERO;
    }
    let least = samples as f64 / f64::from(max_rate);
    let pause = (least - took.as_secs_f64()).max(0.0) * (1.0 + 0.2 * jitter.clamp(0.0, 1.0));
    Duration::try_from_secs_f64(pause).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Default backoff (1 s doubling to 30 s), zero jitter so waits are exact, 3 attempts,
    /// 30 s between cycles.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff {
                initial: s(1),
                max: s(30),
                multiplier: 2.0,
                jitter: 0.0,
            },
            max_attempts: 3,
            upload_interval: s(30),
        }
    }

    fn http(status: u16, retry_after: Option<u64>) -> Reply {
        Reply::Http {
            status,
            retry_after: retry_after.map(s),
        }
    }

    fn plan(decision: Decision, not_before: Option<u64>) -> Plan {
        Plan {
            decision,
            not_before: not_before.map(s),
        }
    }

    use Decision::*;
    use Failure::*;

    #[test]
    fn decisions_table() {
        let retry = |after, failure| Retry {
            after: s(after),
            failure,
        };
        let give_up = |failure, next| GiveUp {
            failure,
            next_cycle_in: s(next),
        };
        // (reply, attempt, samples) → plan
        let table: &[(Reply, u32, usize, Plan)] = &[
            (http(200, None), 1, 10, plan(Accept, None)),
            (http(204, Some(60)), 3, 1, plan(Accept, None)),
            (http(299, None), 1, 1, plan(Accept, None)),
            // Refusals bisect down to one sample, whatever the attempt.
            (
                http(400, None),
                1,
                10,
                plan(Bisect(Refusal::Rejected), None),
            ),
            (http(422, None), 3, 2, plan(Bisect(Refusal::Rejected), None)),
            (http(413, None), 1, 2, plan(Bisect(Refusal::TooLarge), None)),
            (http(400, None), 1, 1, plan(Quarantine, None)),
            (http(422, None), 1, 1, plan(Quarantine, None)),
            (http(413, None), 1, 1, plan(Unsendable, None)),
            // A Retry-After on a refusal still delays the next request.
            (
                http(400, Some(5)),
                1,
                4,
                plan(Bisect(Refusal::Rejected), Some(5)),
            ),
            (http(413, Some(7)), 1, 1, plan(Unsendable, Some(7))),
            // Transient: exponential backoff, then give up until the next cycle.
            (http(500, None), 1, 10, plan(retry(1, Transient), None)),
            (http(503, None), 2, 10, plan(retry(2, Transient), None)),
            (http(429, None), 3, 10, plan(give_up(Transient, 30), None)),
            (Reply::Network, 1, 1, plan(retry(1, Transient), None)),
            (Reply::Network, 3, 1, plan(give_up(Transient, 30), None)),
            (http(404, None), 1, 1, plan(Quarantine, None)),
            (http(405, None), 1, 3, plan(Bisect(Refusal::Rejected), None)),
            (http(415, None), 1, 1, plan(Quarantine, None)),
            (http(410, None), 1, 1, plan(retry(1, Transient), None)),
            (http(302, None), 1, 1, plan(retry(1, Transient), None)),
            (http(100, None), 1, 1, plan(retry(1, Transient), None)),
            // Retry-After: the longer of it and the backoff; on give-up it outlives the cycle.
            (http(429, Some(10)), 1, 1, plan(retry(10, Transient), None)),
            (http(503, Some(0)), 2, 1, plan(retry(2, Transient), None)),
            (
                http(429, Some(90)),
                3,
                1,
                plan(give_up(Transient, 90), Some(90)),
            ),
            (
                http(429, Some(10)),
                3,
                1,
                plan(give_up(Transient, 30), Some(10)),
            ),
            // Retry-After is capped at an hour.
            (
                http(503, Some(86_400)),
                1,
                1,
                plan(retry(3600, Transient), None),
            ),
            (
                http(503, Some(86_400)),
                3,
                1,
                plan(give_up(Transient, 3600), Some(3600)),
            ),
            // Auth: maximum backoff from the first attempt, kept after the last.
            (http(401, None), 1, 1, plan(retry(30, Auth), None)),
            (http(403, None), 2, 5, plan(retry(30, Auth), None)),
            (http(401, None), 3, 5, plan(give_up(Auth, 30), Some(30))),
            (
                http(403, Some(120)),
                3,
                5,
                plan(give_up(Auth, 120), Some(120)),
            ),
            (http(401, Some(5)), 3, 5, plan(give_up(Auth, 30), Some(30))),
            (http(401, Some(50)), 1, 5, plan(retry(50, Auth), None)),
        ];
        let p = policy();
        for (i, &(reply, attempt, samples, want)) in table.iter().enumerate() {
            // Refusals here come after the server accepted part of the chunk (specific).
            let got = p.decide(&Attempt {
                reply,
                attempt,
                samples,
                jitter: 0.5,
                evidence: Evidence::Accepted,
                stale: None,
                auth_body: false,
            });
            assert_eq!(
                got, want,
                "row {i}: {reply:?} attempt {attempt} samples {samples}"
            );
        }
    }

    #[test]
    fn one_attempt_when_retries_are_disabled() {
        let mut remote = RemoteConfig::default();
        remote.retry.enabled = false;
        remote.retry.max_attempts = 5;
        let p = RetryPolicy::from_config(&remote);
        assert_eq!(p.max_attempts, 1);
        let got = p.decide(&Attempt {
            reply: Reply::Network,
            attempt: 1,
            samples: 3,
            jitter: 0.5,
            evidence: Evidence::CanProbe,
            stale: None,
            auth_body: false,
        });
        assert!(
            matches!(
                got.decision,
                GiveUp {
                    failure: Transient,
                    ..
                }
            ),
            "{got:?}"
        );
        remote.retry.enabled = true;
        remote.retry.max_attempts = 0;
        assert_eq!(RetryPolicy::from_config(&remote).max_attempts, 1);
    }

    #[test]
    fn jitter_draw_scales_the_backoff() {
        let mut p = policy();
        p.backoff.jitter = 0.2;
        let at = |reply, attempt, jitter| {
            p.decide(&Attempt {
                reply,
                attempt,
                samples: 1,
                jitter,
                evidence: Evidence::CanProbe,
                stale: None,
                auth_body: false,
            })
            .decision
        };
        let ms = Duration::from_millis;
        assert_eq!(
            at(http(500, None), 1, 0.0),
            Retry {
                after: ms(800),
                failure: Transient
            }
        );
        assert_eq!(
            at(http(500, None), 2, 1.0),
            Retry {
                after: ms(2400),
                failure: Transient
            }
        );
        // The auth backoff stays within [max × 0.8, max].
        assert_eq!(
            at(http(401, None), 1, 0.0),
            Retry {
                after: s(24),
                failure: Auth
            }
        );
        assert_eq!(
            at(http(401, None), 1, 1.0),
            Retry {
                after: s(30),
                failure: Auth
            }
        );
    }

    /// A refusal is specific only once the server accepted other samples of the chunk; before
    /// that the task probes, and after the probes the server refuses everything.
    #[test]
    fn refusals_depend_on_evidence() {
        use Evidence::*;
        let server_refuses = |next, nb| {
            plan(
                ServerRefuses {
                    next_cycle_in: s(next),
                },
                Some(nb),
            )
        };
        // (status, retry_after, samples, evidence) → plan
        let table: &[(u16, Option<u64>, usize, Evidence, Plan)] = &[
            (
                400,
                None,
                50,
                Accepted,
                plan(Bisect(Refusal::Rejected), None),
            ),
            (400, None, 1, Accepted, plan(Quarantine, None)),
            // Nothing accepted yet: probe, whatever the size, for every refusal status.
            (400, None, 50, CanProbe, plan(Probe, None)),
            (400, None, 1, CanProbe, plan(Probe, None)),
            (404, None, 50, CanProbe, plan(Probe, None)),
            (405, None, 1, CanProbe, plan(Probe, None)),
            (415, None, 2, CanProbe, plan(Probe, None)),
            (422, None, 2, CanProbe, plan(Probe, None)),
            (400, Some(3), 9, CanProbe, plan(Probe, Some(3))),
            // Probes exhausted: never a quarantine; the maximum backoff (30 s) before the next
            // request, or a longer Retry-After.
            (400, None, 1, Exhausted, server_refuses(30, 30)),
            (404, None, 50, Exhausted, server_refuses(30, 30)),
            (405, None, 1, Exhausted, server_refuses(30, 30)),
            (415, None, 1, Exhausted, server_refuses(30, 30)),
            (422, None, 1, Exhausted, server_refuses(30, 30)),
            (400, Some(5), 1, Exhausted, server_refuses(30, 30)),
            (400, Some(120), 1, Exhausted, server_refuses(120, 120)),
            // Size refusals and everything else ignore the evidence.
            (
                413,
                None,
                4,
                CanProbe,
                plan(Bisect(Refusal::TooLarge), None),
            ),
            (413, None, 1, Exhausted, plan(Unsendable, None)),
            (204, None, 1, Exhausted, plan(Accept, None)),
            (
                401,
                None,
                1,
                Exhausted,
                plan(
                    Retry {
                        after: s(30),
                        failure: Auth,
                    },
                    None,
                ),
            ),
            (
                503,
                None,
                1,
                CanProbe,
                plan(
                    Retry {
                        after: s(1),
                        failure: Transient,
                    },
                    None,
                ),
            ),
        ];
        let p = policy();
        for (i, &(status, ra, samples, evidence, want)) in table.iter().enumerate() {
            let got = p.decide(&Attempt {
                reply: http(status, ra),
                attempt: 1,
                samples,
                jitter: 0.5,
                evidence,
                stale: None,
                auth_body: false,
            });
            assert_eq!(
                got, want,
                "row {i}: {status} samples {samples} {evidence:?}"
            );
        }
        // The server-wide backoff is jittered within [max × (1 − jitter), max], never below
        // the upload interval for the next cycle.
        let mut p = policy();
        p.backoff.jitter = 0.2;
        p.upload_interval = s(60);
        let got = p.decide(&Attempt {
            reply: http(400, None),
            attempt: 1,
            samples: 1,
            jitter: 0.0,
            evidence: Exhausted,
            stale: None,
            auth_body: false,
        });
        assert_eq!(got, server_refuses(60, 24));
    }

    #[test]
    fn stale_refusals_bisect_then_settle_one_sample_without_probing() {
        let p = policy();
        for (body, stale) in [
            ("out of order sample", super::Stale::OutOfOrder),
            ("duplicate sample for timestamp", super::Stale::Duplicate),
            ("out of bounds", super::Stale::TooOld),
            (
                "err-mimir-sample-timestamp-too-old: ...",
                super::Stale::TooOld,
            ),
            (
                "err-mimir-sample-out-of-order: ...",
                super::Stale::OutOfOrder,
            ),
        ] {
            assert_eq!(classify_stale(400, body), Some(stale), "{body}");
            assert_eq!(classify_stale(409, body), Some(stale), "{body}");
            assert_eq!(classify_stale(500, body), None);
            for evidence in [Evidence::Accepted, Evidence::CanProbe, Evidence::Exhausted] {
                let a = |samples| Attempt {
                    reply: http(400, None),
                    attempt: 1,
                    samples,
                    jitter: 0.5,
                    evidence,
                    stale: classify_stale(400, body),
                    auth_body: false,
                };
                assert_eq!(p.decide(&a(10)), plan(Bisect(Refusal::Stale(stale)), None));
                assert_eq!(p.decide(&a(1)), plan(Decision::Stale(stale), None));
            }
        }
        assert_eq!(classify_stale(400, "unknown metric"), None);
        assert_eq!(classify_stale(400, ""), None);
    }

    #[test]
    fn phases_are_stable_and_spread() {
        let i = s(30);
        // Stable: the same id gives the same phase (across restarts: no random key).
        assert_eq!(upload_phase("board-7", i), upload_phase("board-7", i));
        assert!(upload_phase("", i) < i);
        assert_eq!(upload_phase("x", Duration::ZERO), Duration::ZERO);
        // 1000 boards named alike fill the interval: every tenth of it gets 100 ± 40.
        let mut bins = [0u32; 10];
        for n in 0..1000 {
            let p = upload_phase(&format!("board-{n:04}"), i);
            assert!(p < i, "{p:?}");
            bins[(p.as_millis() / 3000) as usize] += 1;
        }
        assert!(bins.iter().all(|&b| (60..=140).contains(&b)), "{bins:?}");
    }

    #[test]
    fn next_round_table() {
        let ms = Duration::from_millis;
        // (now_ms, phase, interval) → wait
        #[rustfmt::skip]
        let table: &[(i64, u64, u64, u64)] = &[
            (0,      0,     1000, 1000),
            (1,      0,     1000, 999),
            (999,    0,     1000, 1),
            (1000,   0,     1000, 1000),
            (1250,   300,   1000, 50),
            (1300,   300,   1000, 1000),
            (1301,   300,   1000, 999),
            // A phase of a whole interval or more wraps.
            (1250,   1300,  1000, 50),
            // Before the epoch (a clock set to 1969) still lands on the grid.
            (-1,     0,     1000, 1),
            (-1700,  300,   1000, 1000),
            (30_000_123, 12_000, 30_000, 11_877),
        ];
        for &(now, phase, interval, want) in table {
            assert_eq!(
                until_next_round(now, ms(phase), ms(interval)),
                ms(want),
                "now {now} phase {phase} interval {interval}"
            );
        }
        // Never zero, never more than the interval, for extreme clocks.
        for now in [i64::MIN, i64::MAX, 0, -5] {
            let w = until_next_round(now, ms(7), ms(1000));
            assert!(w > Duration::ZERO && w <= ms(1000), "{now}: {w:?}");
        }
        assert_eq!(until_next_round(5, ms(0), Duration::ZERO), ms(1));
    }

    #[test]
    fn drain_pause_bounds_the_rate() {
        let ms = Duration::from_millis;
        // (samples, took, max_rate, jitter) → pause
        #[rustfmt::skip]
        let table: &[(usize, u64, u32, f64, u64)] = &[
            (2500, 500,  1000, 0.0, 2000),
            (2500, 500,  1000, 1.0, 2400),
            (2500, 500,  1000, 0.5, 2200),
            (2500, 3000, 1000, 0.0, 0),
            (2500, 500,  0,    0.5, 0),
            (0,    0,    1000, 0.5, 0),
            (100,  0,    50,   0.0, 2000),
        ];
        for &(samples, took, rate, jitter, want) in table {
            assert_eq!(
                drain_pause(samples, ms(took), rate, jitter),
                ms(want),
                "{samples} in {took} ms at {rate}/s"
            );
        }
        // The bound holds whatever the draw: samples / (took + pause) <= rate.
        for j in [0.0, 0.3, 0.999] {
            let p = drain_pause(2500, ms(123), 700, j);
            assert!(2500.0 / (0.123 + p.as_secs_f64()) <= 700.0 + 1e-6, "{p:?}");
        }
    }

    #[test]
    fn drain_rate_keeps_up_with_the_board() {
        // (max_rate, inflow/s) → bound
        #[rustfmt::skip]
        let table: &[(u32, f64, u32)] = &[
            (1000, 15.0,    1000),
            (1000, 499.0,   1000),
            (1000, 600.0,   1200),
            (1000, 7500.0,  15000),
            (0,    7500.0,  0),
            (1000, -3.0,    1000),
            (1000, f64::NAN, 1000),
            (5,    1e30,    u32::MAX),
        ];
        for &(max, inflow, want) in table {
            assert_eq!(drain_rate(max, inflow), want, "{max} {inflow}");
        }
    }

    /// 401/403 are auth failures whatever the chunk's evidence: never a probe, a bisection or
    /// a quarantine, and the last attempt keeps the maximum backoff.
    #[test]
    fn auth_failures_never_refuse_the_body() {
        let p = policy();
        for status in [401, 403] {
            for evidence in [Evidence::Accepted, Evidence::CanProbe, Evidence::Exhausted] {
                for samples in [1, 2, 2500] {
                    for attempt in 1..=3 {
                        // vmauth answers an unknown token with 400 and says so in the body.
                        let (status, auth_body) = match status {
                            403 => (403, false),
                            _ if samples == 2 => (400, classify_auth(400, VMAUTH_UNKNOWN_TOKEN)),
                            s => (s, false),
                        };
                        let got = p.decide(&Attempt {
                            reply: http(status, None),
                            attempt,
                            samples,
                            jitter: 0.5,
                            evidence,
                            stale: None,
                            auth_body,
                        });
                        let want = if attempt < 3 {
                            plan(
                                Retry {
                                    after: s(30),
                                    failure: Auth,
                                },
                                None,
                            )
                        } else {
                            plan(
                                GiveUp {
                                    failure: Auth,
                                    next_cycle_in: s(30),
                                },
                                Some(30),
                            )
                        };
                        assert_eq!(got, want, "{status} {evidence:?} {samples} #{attempt}");
                    }
                }
            }
        }
    }

    const VMAUTH_UNKNOWN_TOKEN: &str =
        "cannot find the provided auth token \"Bearer ***\" in config";

    #[test]
    fn auth_bodies() {
        assert!(classify_auth(400, VMAUTH_UNKNOWN_TOKEN));
        assert!(classify_auth(400, "Unauthorized"));
        assert!(!classify_auth(500, VMAUTH_UNKNOWN_TOKEN));
        assert!(!classify_auth(400, "cannot parse json line"));
        assert!(!classify_auth(400, ""));
    }
}
