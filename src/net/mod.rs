//! HTTP for the uploader and the clock-skew check: one shared [`Client`].
//!
//! One HTTP stack for both schemes: a small hand-rolled async HTTP/1.1 client on
//! `smol::net::TcpStream` — no thread of its own, at most one idle keep-alive connection,
//! whole-exchange timeout, one retry when a reused connection turned out closed. Host names are
//! resolved on a short-lived thread ([`resolve`]).
//! - `https://`: the same client over rustls (ring provider) behind the default-on cargo feature
//!   `tls` (src/net/tls.rs): system roots, or only the CAs of `remote.ca_file`; certificate failures are
//!   [`HttpError::Tls`] with a readable reason. Without the feature an https URL is refused
//!   ([`HttpError::TlsUnavailable`]) and the binary holds no TLS code.
//!
//! Pure pieces (no I/O, fuzzed): [`url`], [`head`] (the one HTTP/1.x head parser, httparse, and
//! its limits), [`response`] (response heads and framing), [`chunked`] (body decoder), [`date`]
//! (HTTP-date). See docs/architecture.md.

mod base64;
pub(crate) mod chunked;
mod client;
mod conn;
pub(crate) mod date;
mod error;
pub(crate) mod head;
mod message;
mod plain;
mod resolve;
pub(crate) mod response;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_provider;

/// Checks a PEM CA bundle (`remote.ca_file`): readable, at least one certificate. `Err`: why,
/// naming the file. Without the `tls` feature only the PEM markers are counted.
pub fn check_ca_file(path: &std::path::Path) -> Result<usize, String> {
    #[cfg(feature = "tls")]
    return tls::read_pem_certificates(path).map(|c| c.len());
    #[cfg(not(feature = "tls"))]
    {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let marker = b"-----BEGIN CERTIFICATE-----";
        let n = text.windows(marker.len()).filter(|w| w == marker).count();
        if n == 0 {
            return Err(format!(
                "{}: no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
                path.display()
            ));
        }
        Ok(n)
    }
}
pub(crate) mod url;

pub use client::{Client, check_supported, valid_header_value};
pub use date::parse_http_date;
pub use error::{FailureKind, HttpError};
pub use head::Method;
pub use message::{
    IDLE_TIMEOUT, MAX_BODY_BYTES, MAX_IDLE_CONNECTIONS, Request, Response, SNIPPET_BYTES,
    USER_AGENT,
};
pub use url::{Url, UrlError};
