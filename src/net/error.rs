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
    /// The TLS handshake with `host` failed (a certificate that is not trusted, expired or for
    /// another name; an alert from the server): rustls's error, kept whole.
    #[cfg(feature = "tls")]
    Tls { host: String, error: rustls::Error },
    /// The TLS trust store could not be built (`remote.ca_file` unreadable since start-up, no
    /// system roots): why.
    #[cfg(feature = "tls")]
    TlsSetup(String),
}

/// What failed, in one stable word for logs (`error_kind=`): the same classes for http and https.
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
            HttpError::Tls { .. } | HttpError::TlsSetup(_) => FailureKind::Tls,
        }
    }

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
            #[cfg(feature = "tls")]
            HttpError::Tls { host, error } => f.write_str(&describe_tls(error, host)),
            #[cfg(feature = "tls")]
            HttpError::TlsSetup(why) => write!(f, "https unavailable: {why}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Resolve { source, .. } | HttpError::Connect { source, .. } => Some(source),
            HttpError::Io(e) => Some(e),
            #[cfg(feature = "tls")]
            HttpError::Tls { error, .. } => Some(error),
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

/// A readable reason for a TLS failure with `host` (what the log and /health show).
#[cfg(feature = "tls")]
fn describe_tls(error: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a trusted CA (check remote.ca_file, \
                 or the system roots when it is not set)"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired (or this board's clock is wrong)")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => format!(
                "the certificate of {host} is not valid yet (or this board's clock is wrong)"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                let presented = match c {
                    C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                        let names: Vec<&str> = presented.iter().map(|p| bare_name(p)).collect();
                        format!(" (it is for {})", names.join(", "))
                    }
                    _ => String::new(),
                };
                format!("the certificate of {host} is not valid for the name {host}{presented}")
            }
            C::Revoked => format!("the certificate of {host} is revoked"),
            C::BadSignature => format!("the certificate of {host} has a bad signature"),
            other => format!("the certificate of {host} is not acceptable: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("TLS handshake with {host} refused by the server (alert {alert:?})")
        }
        other => format!("TLS with {host} failed: {other}"),
    }
}

/// `DnsName("vm.example")` (how rustls presents a certificate's names) as `vm.example`.
#[cfg(feature = "tls")]
fn bare_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|p| p.strip_suffix("\")"))
        .unwrap_or(presented)
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
    fn tls_errors_read_clearly() {
        use rustls::CertificateError as C;
        let tls = |c: C| HttpError::Tls {
            host: "vm.example".to_owned(),
            error: rustls::Error::InvalidCertificate(c),
        };
        let e = tls(C::UnknownIssuer);
        assert_eq!(e.kind(), FailureKind::Tls);
        assert!(!e.is_timeout());
        assert!(std::error::Error::source(&e).is_some());
        let text = e.to_string();
        assert!(text.contains("not signed by a trusted CA"), "{text}");
        assert!(text.contains("remote.ca_file"), "{text}");
        assert!(tls(C::Expired).to_string().contains("has expired"));
        let name = tls(C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("vm.example").unwrap(),
            presented: vec!["DnsName(\"other.example\")".to_owned()],
        })
        .to_string();
        assert!(name.contains("not valid for the name vm.example"), "{name}");
        assert!(name.ends_with("(it is for other.example)"), "{name}");
        assert!(
            tls(C::NotValidForName)
                .to_string()
                .contains("not valid for the name")
        );
        assert_eq!(HttpError::TlsSetup("x".into()).kind(), FailureKind::Tls);
    }
}
