//! One body's attempts ([`Uploader::send_with_retries`]) until the policy
//! ([`crate::upload::policy::RetryPolicy::decide`]) settles it, the backoff sleeps between them
//! and between cycles (cut short by a stop, or by a reload that changes `[remote]`), and the
//! wait /health shows ([`wait_reason`]).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use belabox_store::Uuid;
use smol::Timer;
use smol::future::FutureExt as _;

use super::{Uploader, read_token};
use crate::config::UploadFormat;
use crate::model::state::{Refused, WaitReason};
use crate::model::time::now_ms;
use crate::net::{HttpError, Method, Url};
use crate::upload::policy::{
    Attempt, Decision, Evidence, Failure, Reply, Stale, classify_auth, classify_stale,
};
use crate::upload::retry_after::parse_retry_after;

/// The result of sending one body, with its retries.
pub(super) enum Sent {
    Accepted,
    /// Refused as a whole (a specific refusal, or 413) with more than one sample: send the
    /// halves.
    Bisect,
    /// Refused before anything of the chunk was accepted: send one sample alone.
    Probe {
        status: u16,
        snippet: String,
    },
    /// Refused on one sample while others of the chunk were accepted: quarantine it.
    Quarantine {
        status: u16,
        snippet: String,
    },
    /// One sample the receiver says it has (mark it) or can never take (quarantine it).
    Stale {
        stale: Stale,
        snippet: String,
    },
    /// Everything refused, the probes included: the chunk stays pending.
    Refused,
    /// Attempts exhausted on transient failures, or one sample still too large.
    Failed,
    Stopped,
}

/// How a backoff sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slept {
    Elapsed,
    Stopped,
    /// A reload changed `[remote]`: the wait is cancelled.
    Reconfigured,
}

/// Why the uploader waits `wait` after `reply` and `decision`: the server's `Retry-After` when
/// it is what sets the wait (it is at least as long as the backoff), else the rule that does.
fn wait_reason(reply: &Reply, wait: Duration, decision: &Decision) -> WaitReason {
    let retry_after = match reply {
        Reply::Http {
            retry_after: Some(ra),
            ..
        } => Some((*ra).min(crate::upload::MAX_RETRY_AFTER)),
        _ => None,
    };
    if retry_after.is_some_and(|ra| ra >= wait) {
        return WaitReason::RetryAfter;
    }
    match decision {
        Decision::ServerRefuses { .. } => WaitReason::ServerRefuses,
        d if auth_failure(d) => WaitReason::AuthFailure,
        _ => WaitReason::ErrorBackoff,
    }
}

/// The decision blames the credentials (a retry or a give-up on 401/403).
fn auth_failure(decision: &Decision) -> bool {
    matches!(
        decision,
        Decision::Retry {
            failure: Failure::Auth,
            ..
        } | Decision::GiveUp {
            failure: Failure::Auth,
            ..
        }
    )
}

/// The log line of a failed attempt: level, message and `error_type` (`error_kind`: the network
/// error's class, "none" for an HTTP answer). `last`: no retry follows in this cycle.
fn failure_line(
    failure: Failure,
    last: bool,
    error_kind: &'static str,
) -> (log::Level, &'static str, &'static str) {
    let (lvl, msg) = match (failure, last) {
        (Failure::Auth, _) => (
            log::Level::Error,
            "upload refused: authentication failed (check remote.token_file)",
        ),
        (Failure::Transient, false) => (log::Level::Warn, "chunk upload failed; retrying"),
        (Failure::Transient, true) => (
            log::Level::Warn,
            "chunk upload failed; it stays pending until the next cycle",
        ),
    };
    // The network error's class, or the answer's.
    let error_type = match failure {
        Failure::Auth => "auth",
        Failure::Transient if error_kind == "none" => "http_status",
        Failure::Transient => error_kind,
    };
    (lvl, msg, error_type)
}

/// `body` with the bearer token (`auth` = `Bearer <token>`) replaced by `***`: vmauth echoes
/// a token it does not know in its answer, and the answer goes to the log and /health.
fn redact_token(body: &str, auth: Option<&[u8]>) -> String {
    let token = auth
        .and_then(|a| a.strip_prefix(b"Bearer ".as_slice()))
        .and_then(|t| std::str::from_utf8(t).ok())
        .filter(|t| !t.is_empty());
    match token {
        Some(t) => body.replace(t, "***"),
        None => body.to_owned(),
    }
}

/// One HTTP answer.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    bytes_rcvd: u64,
    snippet: String,
}

enum Outcome {
    Answer(Answer),
    Error(HttpError),
    Stopped,
}

/// One attempt that got to an end (an answer or a network error).
struct Done {
    reply: Reply,
    bytes_sent: u64,
    bytes_rcvd: u64,
    elapsed: Duration,
    /// The response snippet, or the network error.
    detail: String,
    /// The network error's class (`net::FailureKind`), "none" for an answer.
    error_kind: &'static str,
}

/// The log lines of one attempt (all with the same keys, so that they can be grepped alike).
struct AttemptLog<'a> {
    batch_id: Uuid,
    index: u32,
    attempt: u32,
    samples: usize,
    done: &'a Done,
}

impl AttemptLog<'_> {
    fn duration_ms(&self) -> u64 {
        self.done.elapsed.as_millis() as u64
    }

    /// Info after a failure (the uploader recovered), debug otherwise.
    fn uploaded(&self, recovered: bool) {
        let lvl = if recovered {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        let d = self.done;
        log::log!(lvl,
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = 0u64, http_status = d.reply.status(), samples = self.samples,
            bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms();
            "chunk uploaded"
        );
    }

    fn refused(&self, next: &str) {
        let d = self.done;
        log::warn!(
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = 0u64, http_status = d.reply.status(), samples = self.samples,
            bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), response = d.detail.as_str(),
            error_type = "refused";
            "chunk refused; {next}"
        );
    }

    /// Everything refused, single-sample probes included: says what to check.
    fn server_refuses(&self, url: &str, wait: Duration) {
        let d = self.done;
        log::error!(
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = wait.as_millis() as u64, http_status = d.reply.status(),
            samples = self.samples, bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), error_type = "server_refuses_all", url = url,
            response = d.detail.as_str();
            "the server refuses every upload, so nothing is quarantined and the samples stay \
             pending; check remote.url and remote.format (VictoriaMetrics imports at \
             /api/v1/import; remote_write receivers take /api/v1/write or /api/v1/push), an \
             auth proxy in front of it (some answer 400 to a bad token), remote.token_file and \
             remote.headers"
        );
    }

    /// `wait`: before the retry, or (`last`) before the next cycle.
    fn failed(&self, failure: Failure, last: bool, wait: Duration) {
        let d = self.done;
        let (lvl, msg, error_type) = failure_line(failure, last, d.error_kind);
        log::log!(lvl,
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = wait.as_millis() as u64, http_status = d.reply.status(),
            samples = self.samples, bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), error = d.detail.as_str(),
            error_kind = d.error_kind, error_type = error_type;
            "{msg}"
        );
    }
}

impl Uploader {
    /// Sends `self.gz` (a chunk of `samples` samples) until [`RetryPolicy::decide`] settles it.
    pub(super) async fn send_with_retries(
        &mut self,
        samples: usize,
        batch_id: Uuid,
        index: u32,
        evidence: Evidence,
    ) -> Sent {
        let mut attempt = 1u32;
        loop {
            if let Some(at) = self.not_before.take() {
                match self.sleep_until(at, self.not_before_reason).await {
                    Slept::Elapsed => {}
                    Slept::Stopped => return Sent::Stopped,
                    // The run loop applies the new settings; the chunk goes again with them.
                    Slept::Reconfigured => return Sent::Failed,
                }
            }
            let Some(done) = self.attempt().await else {
                return Sent::Stopped;
            };
            let stale = match done.reply {
                Reply::Http { status, .. } if self.codec.format() == UploadFormat::RemoteWrite => {
                    classify_stale(status, &done.detail)
                }
                _ => None,
            };
            let auth_body = match done.reply {
                Reply::Http { status, .. } => classify_auth(status, &done.detail),
                Reply::Network => false,
            };
            let plan = self.policy.decide(&Attempt {
                reply: done.reply,
                attempt,
                samples,
                jitter: self.rng.rand_float(),
                evidence,
                stale,
                auth_body,
            });
            self.count(&done, &plan.decision);
            self.not_before = plan.not_before.map(|d| Instant::now() + d);
            if let Some(d) = plan.not_before {
                self.not_before_reason = wait_reason(&done.reply, d, &plan.decision);
                self.publish_wait(Some((d, self.not_before_reason)));
            }
            let log = AttemptLog {
                batch_id,
                index,
                attempt,
                samples,
                done: &done,
            };
            match plan.decision {
                Decision::Accept => {
                    let recovered = std::mem::replace(&mut self.failing, false);
                    log.uploaded(recovered);
                    self.state.upload.set_refused(None);
                    return Sent::Accepted;
                }
                Decision::Bisect(_) => {
                    log.refused("bisecting");
                    return Sent::Bisect;
                }
                Decision::Probe => {
                    log.refused("probing with one sample alone");
                    return Sent::Probe {
                        status: done.reply.status(),
                        snippet: done.detail,
                    };
                }
                Decision::Quarantine => {
                    log.refused("the server accepted the others; quarantining this sample");
                    return Sent::Quarantine {
                        status: done.reply.status(),
                        snippet: done.detail,
                    };
                }
                Decision::ServerRefuses { next_cycle_in } => {
                    let url = self.url.redacted();
                    log.server_refuses(&url, next_cycle_in);
                    self.state.upload.set_refused(Some(Refused::new(
                        done.reply.status(),
                        &done.detail,
                        &url,
                    )));
                    self.failing = true;
                    return Sent::Refused;
                }
                Decision::Stale(stale) => {
                    log.refused(match stale {
                        Stale::TooOld => "older than the receiver's window; quarantining it",
                        _ => "the receiver already has it; marking it delivered",
                    });
                    return Sent::Stale {
                        stale,
                        snippet: done.detail,
                    };
                }
                Decision::Unsendable => {
                    log.refused("one sample is still too large; it stays pending");
                    return Sent::Failed;
                }
                Decision::Retry { after, failure } => {
                    self.note_tls_refusal(&done);
                    self.note_auth_failure(&done, failure);
                    log.failed(failure, false, after);
                    match self
                        .sleep(after, wait_reason(&done.reply, after, &plan.decision))
                        .await
                    {
                        Slept::Elapsed => {}
                        Slept::Stopped => return Sent::Stopped,
                        Slept::Reconfigured => return Sent::Failed,
                    }
                    attempt += 1;
                }
                Decision::GiveUp {
                    failure,
                    next_cycle_in,
                } => {
                    self.note_tls_refusal(&done);
                    self.note_auth_failure(&done, failure);
                    log.failed(failure, true, next_cycle_in);
                    self.failing = true;
                    return Sent::Failed;
                }
            }
        }
    }

    /// A TLS failure (untrusted, expired or wrong-name certificate) will not heal by retrying:
    /// /health shows it as a refusal (HTTP status 0) until an upload succeeds.
    fn note_tls_refusal(&self, done: &Done) {
        if done.error_kind == crate::net::FailureKind::Tls.as_str() {
            let url = self.url.redacted();
            self.state
                .upload
                .set_refused(Some(Refused::new(0, &done.detail, &url)));
        }
    }

    /// 401/403 (a revoked or unknown token, or one without rights) will not heal by retrying
    /// either: /health shows the uploader as `error`, "unauthorized" with the status, until an
    /// upload succeeds. Nothing is refused for it: everything stays pending (docs/fleet.md).
    fn note_auth_failure(&self, done: &Done, failure: Failure) {
        if failure == Failure::Auth {
            let url = self.url.redacted();
            self.state.upload.set_refused(Some(Refused::new(
                done.reply.status(),
                &done.detail,
                &url,
            )));
        }
    }

    /// One POST of `self.gz`, abandoned when the uploader is stopped (then `None`).
    async fn attempt(&mut self) -> Option<Done> {
        self.state.upload.last_attempt_ms.store(now_ms(), Relaxed);
        let bytes_sent = self.gz.len() as u64;
        let started = Instant::now();
        let outcome = async {
            let _ = self.rx.stop.recv().await;
            Outcome::Stopped
        }
        .or(async {
            match self.post().await {
                Ok(a) => Outcome::Answer(a),
                Err(e) => Outcome::Error(e),
            }
        })
        .await;
        let elapsed = started.elapsed();
        let (reply, bytes_rcvd, detail, error_kind) = match outcome {
            Outcome::Stopped => return None,
            Outcome::Answer(a) => (
                Reply::Http {
                    status: a.status,
                    retry_after: a.retry_after,
                },
                a.bytes_rcvd,
                a.snippet,
                "none",
            ),
            Outcome::Error(e) => (Reply::Network, 0, e.to_string(), e.kind().as_str()),
        };
        Some(Done {
            reply,
            bytes_sent,
            bytes_rcvd,
            elapsed,
            detail,
            error_kind,
        })
    }

    /// The upload counters of one attempt.
    fn count(&self, done: &Done, decision: &Decision) {
        let up = &self.state.upload;
        up.bytes_sent_total.fetch_add(done.bytes_sent, Relaxed);
        up.bytes_received_total.fetch_add(done.bytes_rcvd, Relaxed);
        up.duration.observe(done.elapsed.as_secs_f64());
        up.last_http_status
            .store(u32::from(done.reply.status()), Relaxed);
        if let Reply::Http { .. } = done.reply {
            up.auth_failing.store(auth_failure(decision), Relaxed);
        }
        if let Decision::Accept = decision {
            up.last_success_ms.store(now_ms(), Relaxed);
        } else {
            up.failures_total.fetch_add(1, Relaxed);
        }
    }

    /// One POST of `self.gz`; the client reads (and counts) the response body up to its cap.
    async fn post(&self) -> Result<Answer, HttpError> {
        let response = self.request(Method::Post, &self.gz).await?;
        Ok(Answer {
            status: response.status,
            retry_after: response
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now_ms())),
            bytes_rcvd: response.wire_bytes,
            snippet: redact_token(
                String::from_utf8_lossy(&response.body_snippet).trim(),
                self.auth.as_deref(),
            ),
        })
    }

    /// Sleeps `d` (a backoff, shown in /health with `reason`) unless stopped first, or cut short
    /// by a reload that changes `[remote]`.
    async fn sleep(&mut self, d: Duration, reason: WaitReason) -> Slept {
        if self.rx.is_stopped() {
            return Slept::Stopped;
        }
        self.publish_wait(Some((d, reason)));
        let mut timer = Timer::after(d);
        let slept = loop {
            let woke = async {
                let _ = self.rx.stop.recv().await;
                Slept::Stopped
            }
            .or(async {
                // Never closes: the uploader holds a sender.
                let _ = self.rx.reconf.recv().await;
                Slept::Reconfigured
            })
            .or(async {
                (&mut timer).await;
                Slept::Elapsed
            })
            .await;
            if woke != Slept::Reconfigured || self.reload_changes_remote() {
                break woke;
            }
            log::debug!("uploader: a reload left [remote] as it is; the backoff goes on");
        };
        if slept == Slept::Reconfigured {
            self.cancelled_wait = true;
        }
        self.publish_wait(None);
        slept
    }

    async fn sleep_until(&mut self, at: Instant, reason: WaitReason) -> Slept {
        self.sleep(at.saturating_duration_since(Instant::now()), reason)
            .await
    }

    /// The reload waiting to be applied changes the URL, a `remote.*` key or the token, and
    /// [`Self::apply`] will take it (an unusable URL or token is refused there and the wait
    /// goes on).
    fn reload_changes_remote(&self) -> bool {
        let Some(new) = self.rx._tx.peek_reconfigure() else {
            return false;
        };
        if Url::parse(&new.url).is_err() {
            return false;
        }
        match new.token_file.as_deref().map(read_token).transpose() {
            Ok(token) => new != self.remote || token != self.auth,
            Err(_) => false,
        }
    }

    /// Publishes the wait before the next request for /health (`None`: no wait).
    pub(super) fn publish_wait(&self, wait: Option<(Duration, WaitReason)>) {
        let up = &self.state.upload;
        let (until, reason) = wait.map_or((0, 0), |(d, r)| {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            (now_ms().saturating_add(ms), r as u8)
        });
        up.backoff_reason.store(reason, Relaxed);
        up.backoff_until_ms.store(until, Relaxed);
    }

    /// The wait between cycles: `d`, cut short by a wake, but never before `not_before` unless a
    /// reload that changes `[remote]` cancels that.
    /// Returns false when stopped.
    pub(super) async fn idle(&mut self, d: Duration) -> bool {
        if self.rx.is_stopped() {
            return false;
        }
        let go = async {
            let _ = self.rx.stop.recv().await;
            false
        }
        .or(async {
            // The wake channel never closes (the uploader holds a sender).
            let _ = self.rx.wake.recv().await;
            true
        })
        .or(async {
            Timer::after(d).await;
            true
        })
        .await;
        if !go {
            return false;
        }
        match self.not_before.take() {
            // Cut short by a reload: the run loop applies it and starts a cycle.
            Some(at) => self.sleep_until(at, self.not_before_reason).await != Slept::Stopped,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (reply, wait, decision) → the reason /health gives for the wait.
    #[test]
    fn wait_reasons() {
        let s = Duration::from_secs;
        let http = |status, ra: Option<u64>| Reply::Http {
            status,
            retry_after: ra.map(s),
        };
        let retry = |failure| Decision::Retry {
            after: s(1),
            failure,
        };
        let give_up = |failure| Decision::GiveUp {
            failure,
            next_cycle_in: s(30),
        };
        let refuses = Decision::ServerRefuses {
            next_cycle_in: s(30),
        };
        #[rustfmt::skip]
        let table = [
            // Retry-After sets the wait (≥ the backoff), capped at 1 h like the policy.
            (http(429, Some(99_999)), s(3600), retry(Failure::Transient), WaitReason::RetryAfter),
            (http(503, Some(5)), s(5), give_up(Failure::Transient), WaitReason::RetryAfter),
            (http(401, Some(60)), s(30), retry(Failure::Auth), WaitReason::RetryAfter),
            // A shorter Retry-After than the backoff: the rule that set the wait.
            (http(503, Some(1)), s(4), retry(Failure::Transient), WaitReason::ErrorBackoff),
            (http(401, Some(1)), s(30), give_up(Failure::Auth), WaitReason::AuthFailure),
            (http(400, None), s(30), refuses, WaitReason::ServerRefuses),
            (Reply::Network, s(2), retry(Failure::Transient), WaitReason::ErrorBackoff),
            (http(403, None), s(30), retry(Failure::Auth), WaitReason::AuthFailure),
        ];
        for (reply, wait, decision, want) in table {
            assert_eq!(
                wait_reason(&reply, wait, &decision),
                want,
                "{reply:?} {wait:?}"
            );
        }
    }

    #[test]
    fn answers_never_hold_the_token() {
        let body = "cannot find the provided auth token \"Bearer s3cr3t\" in config";
        assert_eq!(
            redact_token(body, Some(b"Bearer s3cr3t")),
            "cannot find the provided auth token \"Bearer ***\" in config"
        );
        assert_eq!(redact_token(body, None), body);
        assert_eq!(redact_token("ok", Some(b"Bearer s3cr3t")), "ok");
    }

    #[test]
    fn failure_lines() {
        use log::Level::{Error, Warn};
        // (failure, last attempt of the cycle, network error class) → (level, error_type).
        #[rustfmt::skip]
        let table = [
            (Failure::Auth,      false, "none",    Error, "auth"),
            (Failure::Auth,      true,  "connect", Error, "auth"),
            (Failure::Transient, false, "none",    Warn,  "http_status"),
            (Failure::Transient, true,  "timeout", Warn,  "timeout"),
            (Failure::Transient, false, "tls",     Warn,  "tls"),
        ];
        for (failure, last, kind, level, error_type) in table {
            let (l, msg, t) = failure_line(failure, last, kind);
            assert_eq!((l, t), (level, error_type), "{failure:?} {last} {kind}");
            // Only the last attempt of a transient failure says the samples wait a cycle.
            assert_eq!(
                msg.contains("next cycle"),
                last && failure == Failure::Transient,
                "{msg}"
            );
        }
    }
}
