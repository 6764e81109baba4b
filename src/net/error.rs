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
    /// The https client (isahc/curl) failed: its error, kept whole ([`isahc::Error::kind`] says
    /// which stage; [`HttpError::kind`] folds it into the same classes as the plain client's).
    #[cfg(feature = "tls")]
    Tls(isahc::Error),
}

/// What failed, in one stable word for logs (`error_kind=`): the same classes whichever client
/// (plain or isahc) made the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Name lookup.
    Resolve,
    /// TCP connect.
    Connect,
    /// Reading or writing an established connection (reset, closed early).
    Io,
    Timeout,
    /// The answer is not valid HTTP/1.x, or too large.
    Protocol,
    /// TLS handshake or certificate.
    Tls,
    /// https in a build without TLS.
    Unsupported,
    /// The request could not be built or sent (bad header, client set-up).
    Client,
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Resolve => "resolve",
            FailureKind::Connect => "connect",
            FailureKind::Io => "io",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::Tls => "tls",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Client => "client",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HttpError {
    pub fn kind(&self) -> FailureKind {
        match self {
            HttpError::Resolve { .. } => FailureKind::Resolve,
            HttpError::Connect { .. } => FailureKind::Connect,
            HttpError::Io(_) => FailureKind::Io,
            HttpError::Timeout => FailureKind::Timeout,
            HttpError::Malformed(_) | HttpError::TooLarge => FailureKind::Protocol,
            HttpError::TlsUnavailable => FailureKind::Unsupported,
            #[cfg(feature = "tls")]
            HttpError::Tls(e) => isahc_kind(e.kind()),
        }
    }

    pub fn is_timeout(&self) -> bool {
        match self {
            HttpError::Timeout => true,
            HttpError::Io(e) => e.kind() == io::ErrorKind::TimedOut,
            #[cfg(feature = "tls")]
            HttpError::Tls(e) => e.is_timeout(),
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
            #[cfg(feature = "tls")]
            HttpError::Tls(e) => write!(f, "https request failed ({}): {e}", self.kind()),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Resolve { source, .. } | HttpError::Connect { source, .. } => Some(source),
            HttpError::Io(e) => Some(e),
            #[cfg(feature = "tls")]
            HttpError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "tls")]
fn isahc_kind(kind: &isahc::error::ErrorKind) -> FailureKind {
    use isahc::error::ErrorKind as K;
    match kind {
        K::NameResolution => FailureKind::Resolve,
        K::ConnectionFailed => FailureKind::Connect,
        K::Io => FailureKind::Io,
        K::Timeout => FailureKind::Timeout,
        K::ProtocolViolation | K::InvalidContentEncoding | K::TooManyRedirects => {
            FailureKind::Protocol
        }
        K::BadServerCertificate
        | K::BadClientCertificate
        | K::TlsEngine
        | K::InvalidTlsConfiguration => FailureKind::Tls,
        K::ClientInitialization | K::InvalidRequest | K::RequestBodyNotRewindable => {
            FailureKind::Client
        }
        _ => FailureKind::Other,
    }
}

#[cfg(feature = "tls")]
impl From<isahc::Error> for HttpError {
    /// A timeout is [`HttpError::Timeout`] whichever client timed out.
    fn from(e: isahc::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout
        } else {
            HttpError::Tls(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = HttpError::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(e.kind(), FailureKind::Io);
        assert_eq!(
            e.to_string(),
            "connection closed before the response was complete"
        );
        assert_eq!(HttpError::TooLarge.kind().as_str(), "protocol");
        assert_eq!(HttpError::TlsUnavailable.kind(), FailureKind::Unsupported);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn isahc_errors_keep_their_source() {
        use isahc::error::ErrorKind as K;
        let e = HttpError::from(isahc::Error::from(K::BadServerCertificate));
        assert!(matches!(&e, HttpError::Tls(inner) if *inner.kind() == K::BadServerCertificate));
        assert_eq!(e.kind(), FailureKind::Tls);
        let text = e.to_string();
        assert!(text.starts_with("https request failed (tls): "), "{text}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            HttpError::from(isahc::Error::from(K::NameResolution)).kind(),
            FailureKind::Resolve
        );
        assert!(matches!(
            HttpError::from(isahc::Error::from(K::Timeout)),
            HttpError::Timeout
        ));
    }
}
