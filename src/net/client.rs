//! The client: one per process, cloned into the uploader and the clock-skew task.
//!
//! Both schemes go through the hand-rolled HTTP/1.1 client in [`super::plain`] (no extra thread,
//! at most one idle connection); `https://` adds a rustls handshake after the connect when the
//! `tls` feature is on ([`super::tls`]).

use std::path::PathBuf;
use std::sync::Arc;

use smol::Timer;
use smol::future::FutureExt as _;

use super::error::HttpError;
use super::head::is_tchar;
use super::message::{Request, Response};
use super::plain::Pool;
use super::url::Url;

/// `Ok` when this build can send to `url` (an https URL needs the `tls` feature).
pub fn check_supported(url: &Url) -> Result<(), HttpError> {
    if url.is_https() && !cfg!(feature = "tls") {
        return Err(HttpError::TlsUnavailable);
    }
    Ok(())
}

/// A header value may hold visible ASCII, spaces, tabs and obs-text, never CR, LF or NUL.
pub fn valid_header_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(is_tchar)
}

/// The HTTP client. Cheap to clone (an `Arc`); clones share the idle connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client whose https requests trust the system roots.
    pub fn new() -> Client {
        Client::with_ca_file(None)
    }

    /// A client whose https requests trust only the CAs of the PEM bundle `ca_file`
    /// (`remote.ca_file`, already validated at config load); `None`: the system roots. Without
    /// the `tls` feature the file is ignored (https is refused anyway).
    pub fn with_ca_file(ca_file: Option<PathBuf>) -> Client {
        #[cfg(feature = "tls")]
        let pool = Pool::with_ca_file(ca_file);
        #[cfg(not(feature = "tls"))]
        let pool = {
            let _ = ca_file;
            Pool::default()
        };
        Client {
            inner: Arc::new(Inner { pool }),
        }
    }

    /// Sends `req` and reads the whole response, within `req.timeout`.
    pub async fn send(&self, req: &Request<'_>) -> Result<Response, HttpError> {
        let timeout = async {
            Timer::after(req.timeout).await;
            Err(HttpError::Timeout)
        };
        self.dispatch(req).or(timeout).await
    }

    async fn dispatch(&self, req: &Request<'_>) -> Result<Response, HttpError> {
        for (name, value) in req.headers {
            if !valid_header_name(name) || !valid_header_value(value) {
                return Err(HttpError::Malformed("invalid request header"));
            }
        }
        check_supported(req.url)?;
        super::plain::send(&self.inner.pool, req).await
    }
}
