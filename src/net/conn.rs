//! A connection of the HTTP client: plain TCP, or (feature `tls`) rustls over it
//! ([`super::tls`]), and how a new one is opened ([`Connector`]: name lookup, connect, the TLS
//! handshake). All the client's TLS switching is here; [`super::plain`] reads and writes a
//! [`Conn`] whatever the scheme.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;

use super::error::HttpError;
use super::resolve::resolve;
use super::url::Url;

/// One connection: plain TCP, or TLS over TCP (boxed: rustls's state is a few KiB).
#[derive(Debug)]
pub(super) enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// How new connections are opened: TCP, then (feature `tls`, `https://`) the rustls handshake
/// with this set-up.
#[derive(Debug, Default)]
pub(super) struct Connector {
    #[cfg(feature = "tls")]
    tls: super::tls::TlsSetup,
}

impl Connector {
    /// https connections trust `ca_file`'s CAs (`None`: the system roots).
    #[cfg(feature = "tls")]
    pub(super) fn with_ca_file(ca_file: Option<std::path::PathBuf>) -> Connector {
        Connector {
            tls: super::tls::TlsSetup::new(ca_file),
        }
    }

    /// A new connection to `url` (with its TLS handshake for https; without the `tls` feature
    /// an https URL is [`HttpError::TlsUnavailable`]).
    pub(super) async fn connect(&self, url: &Url) -> Result<Conn, HttpError> {
        let tcp = connect_tcp(url).await?;
        if url.is_https() {
            #[cfg(feature = "tls")]
            return Ok(Conn::Tls(Box::new(
                super::tls::handshake(&self.tls, url, tcp).await?,
            )));
            #[cfg(not(feature = "tls"))]
            return Err(HttpError::TlsUnavailable);
        }
        Ok(Conn::Plain(tcp))
    }
}

/// A new TCP connection: the IP literal, or each resolved address in turn.
async fn connect_tcp(url: &Url) -> Result<TcpStream, HttpError> {
    let addrs = match url.ip() {
        Some(ip) => vec![SocketAddr::new(ip, url.port())],
        None => resolve(url.host(), url.port()).await?,
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Head and body are written whole; no need to wait for more.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(source) => last = Some((addr, source)),
        }
    }
    Err(match last {
        Some((addr, source)) => HttpError::Connect { addr, source },
        None => HttpError::Resolve {
            host: url.host().to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        },
    })
}
