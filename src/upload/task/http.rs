//! The requests to `remote.url` ([`Uploader::request`]: the configured headers, on the stack)
//! and the server's time their answers carry: every answer's `Date` is kept as an offset from
//! the boot clock, which the filter's window and the clock judgment read.

use std::sync::atomic::Ordering::Relaxed;

use smol::future::FutureExt as _;

use super::Uploader;
use crate::model::time::now_ms;
use crate::net::{self, HttpError, Method, Request};
use crate::upload::chunk::receiver_now_ms;

impl Uploader {
    /// The server's clock as best known: the boot clock plus the server − boot offset of the
    /// last skew check, else of the last answer's `Date` (a wall-clock step since, e.g. a jump
    /// of days, does not bend it); the local clock only when neither is known.
    pub(super) fn server_now_ms(&self) -> i64 {
        let t = &self.state.time;
        receiver_now_ms(
            now_ms(),
            crate::monitor::clock::boot_ms(),
            t.measured
                .load(Relaxed)
                .then(|| t.server_offset_ms.load(Relaxed)),
            t.answer_known
                .load(Relaxed)
                .then(|| t.answer_offset_ms.load(Relaxed)),
        )
    }

    /// One request to `remote.url` with the configured headers; every answer's `Date` becomes
    /// the server's time ([`Self::note_server_time`]).
    pub(super) async fn request(
        &self,
        method: Method,
        body: &[u8],
    ) -> Result<net::Response, HttpError> {
        // Format headers (≤ 3), Authorization, remote.headers (≤ MAX_REMOTE_HEADERS): on the
        // stack, no allocation per request.
        let mut headers: heapless::Vec<(&str, &[u8]), { 4 + crate::config::MAX_REMOTE_HEADERS }> =
            heapless::Vec::new();
        let extra = self.remote.headers.iter().map(|(n, v)| (n, v.as_bytes()));
        let auth = self.auth.as_deref().map(|a| ("Authorization", a));
        // The body's headers (type, encoding) only with a body.
        let format: &[(&str, &[u8])] = if body.is_empty() {
            &[]
        } else {
            self.codec.headers()
        };
        for h in format.iter().copied().chain(auth).chain(extra) {
            // Capacity covers every header the config allows; a surplus would be a bug there.
            let _ = headers.push(h);
        }
        let request = Request {
            method,
            url: &self.url,
            headers: &headers,
            body,
            timeout: self.remote.timeout,
        };
        let response = self.client.send(&request).await?;
        if response.body_cut {
            log::warn!(http_status = response.status, bytes_rcvd = response.wire_bytes,
                cap_bytes = net::MAX_BODY_BYTES, error_type = "large_answer";
                "the answer's body is longer than the cap; read up to it and closed the connection (its status counts)");
        }
        self.note_server_time(&response);
        Ok(response)
    }

    /// Keeps the server's time from an answer's `Date` (any status) as an offset from the boot
    /// clock, which no wall-clock step moves: the window of [`Self::filter`] and the clock
    /// judgment's veto read it. An answer without a valid `Date` changes nothing.
    fn note_server_time(&self, response: &net::Response) {
        let Some(secs) = response
            .date
            .as_deref()
            .and_then(|d| net::parse_http_date(d.as_bytes()))
        else {
            return;
        };
        let server_ms = secs
            .saturating_mul(1000)
            .saturating_add(crate::monitor::skew::DATE_CENTER_MS);
        let since_head = i64::try_from(response.head_at.elapsed().as_millis()).unwrap_or(0);
        let boot_at_head = crate::monitor::clock::boot_ms().saturating_sub(since_head);
        let t = &self.state.time;
        t.answer_offset_ms
            .store(server_ms.saturating_sub(boot_at_head), Relaxed);
        t.answer_known.store(true, Relaxed);
    }

    /// Before the first send with no server time known (the skew check off or not through
    /// yet, and no answer so far): one `GET remote.url`, whose answer — any status — carries
    /// the server's `Date`. Without an answer the cycle goes on (see below), judged on the local
    /// clock. A server whose answers carry no `Date` is judged on the local clock (logged
    /// once). `false`: stopped.
    pub(super) async fn learn_server_time(&mut self) -> bool {
        if self.server_time_known() || self.no_date {
            return true;
        }
        let got = async {
            let _ = self.rx.stop.recv().await;
            None
        }
        .or(async { Some(self.request(Method::Get, &[]).await) })
        .await;
        match got {
            None => false,
            Some(Ok(r)) => {
                self.state
                    .upload
                    .bytes_received_total
                    .fetch_add(r.wire_bytes, Relaxed);
                if !self.server_time_known() {
                    self.no_date = true;
                    log::warn!(http_status = r.status, url = self.url.redacted().as_str(), error_type = "no_date";
                        "the server's answer has no valid Date header; samples are checked against the local clock");
                }
                true
            }
            Some(Err(e)) => {
                // No answer: the upload that follows gets the same error, logged, backed off
                // and shown as usual. It still goes: a server (or proxy) that fails GETs must
                // not stop uploads, and its first answer gives the server's time.
                log::debug!(error:% = e; "uploader: asking the server's time failed");
                true
            }
        }
    }

    fn server_time_known(&self) -> bool {
        let t = &self.state.time;
        t.measured.load(Relaxed) || t.answer_known.load(Relaxed)
    }
}
