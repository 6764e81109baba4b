//! Why a request produced no response.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::chunked::ChunkedError;
use super::response::HeadError;

#[derive(Debug)]
pub enum HttpError {
    /// The host name could not be resolved (or resolved to nothing).
    Resolve { host: String, source: io::Error },
    /// No resolved address accepted a connection; `addr` is the last one tried.
    Connect { addr: SocketAddr, source: io::Error },
    /// Writing the request or reading the response failed (reset, EOF in the middle, …).
    Io(io::Error),
    /// The whole exchange took longer than the request's timeout.
    Timeout,
    /// The answer is not a valid HTTP/1.x response, or the request could not be written
    /// (a header holding CR/LF); what is wrong.
    Malformed(&'static str),
    /// The response head is larger than [`super::response::MAX_HEAD`].
    TooLarge,
    /// An `https://` URL in a build without the `tls` feature.
    TlsUnavailable,
    /// The https client (isahc/curl) failed; its message.
    Tls(String),
}

impl HttpError {
    pub fn is_timeout(&self) -> bool {
        match self {
            HttpError::Timeout => true,
            HttpError::Io(e) => e.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Resolve { host, source } => write!(f, "cannot resolve {host}: {source}"),
            HttpError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            HttpError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("connection closed before the response was complete")
            }
            HttpError::Io(e) => write!(f, "connection error: {e}"),
            HttpError::Timeout => f.write_str("request timed out"),
            HttpError::Malformed(what) => write!(f, "malformed response: {what}"),
            HttpError::TooLarge => write!(
                f,
                "response head larger than {} bytes",
                super::response::MAX_HEAD
            ),
            HttpError::TlsUnavailable => f.write_str(
                "https:// needs a build with the `tls` feature (cargo build --features tls); \
                 or use an http:// URL",
            ),
            HttpError::Tls(e) => write!(f, "https request failed: {e}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Resolve { source, .. } | HttpError::Connect { source, .. } => Some(source),
            HttpError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        HttpError::Io(e)
    }
}

impl From<HeadError> for HttpError {
    fn from(e: HeadError) -> HttpError {
        match e {
            HeadError::TooLarge => HttpError::TooLarge,
            HeadError::Malformed(what) => HttpError::Malformed(what),
        }
    }
}

impl From<ChunkedError> for HttpError {
    fn from(e: ChunkedError) -> HttpError {
        HttpError::Malformed(e.0)
    }
}
