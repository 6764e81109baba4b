//! HTTP for the uploader and the clock-skew check: one shared [`Client`].
//!
//! - `http://`: a small hand-rolled async HTTP/1.1 client on `smol::net::TcpStream` — no thread
//!   of its own, at most one idle keep-alive connection, whole-exchange timeout. Host names are
//!   resolved on a short-lived thread ([`resolve`]).
//! - `https://`: isahc (libcurl + rustls) behind the default-on cargo feature `tls`; its client
//!   (and curl's agent thread) exists only once an https request was made. Without the feature
//!   an https URL is refused ([`HttpError::TlsUnavailable`]).
//!
//! Pure pieces (no I/O, fuzzed): [`url`], [`head`] (the one HTTP/1.x head parser, httparse, and
//! its limits), [`response`] (response heads and framing), [`chunked`] (body decoder), [`date`]
//! (HTTP-date). See docs/architecture.md.

mod base64;
pub(crate) mod chunked;
mod client;
pub(crate) mod date;
mod error;
pub(crate) mod head;
mod plain;
mod resolve;
pub(crate) mod response;
#[cfg(feature = "tls")]
mod tls;
pub(crate) mod url;

pub use client::{
    Client, IDLE_TIMEOUT, MAX_IDLE_CONNECTIONS, Request, Response, SNIPPET_BYTES, USER_AGENT,
    check_supported, valid_header_value,
};
pub use date::parse_http_date;
pub use error::{FailureKind, HttpError};
pub use head::Method;
pub use url::{Url, UrlError};
