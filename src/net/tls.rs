//! `https://`: rustls (ring, [`super::tls_provider`]'s subset) under the same HTTP/1.1 exchange as `http://`
//! ([`super::plain`]), only with the `tls` feature.
//!
//! After the TCP connect, [`handshake`] wraps the `smol::net::TcpStream` in a rustls client
//! stream (futures-rustls: rustls's `read_tls`/`write_tls` driven over `futures-io`); from then
//! on the request, the response parsing, keep-alive, the stale-connection retry and the chunked
//! decoder are the plain client's. The whole exchange, handshake included, is bounded by the
//! request's timeout ([`super::Client::send`]).
//!
//! Trust: the PEM bundle of `remote.ca_file` when set (only those CAs: a fleet's private CA),
//! else the system roots ([`rustls_native_certs`]: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the
//! distribution's bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`). No roots are compiled in.
//! The rustls config (the parsed roots) is built on the first https request only, so an agent
//! that talks plain http holds no trust store.
//!
//! Memory: per connection, rustls's record buffers (one TLS record, ≤ 16 KiB + overhead each
//! way while a record is in flight); the root store is a few hundred bytes per CA.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use smol::net::TcpStream;

use super::error::HttpError;
use super::url::Url;

/// The rustls configuration, built once on the first https request.
#[derive(Debug, Default)]
pub(super) struct TlsSetup {
    /// `remote.ca_file`: trust only these CAs. `None`: the system roots.
    ca_file: Option<PathBuf>,
    config: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl TlsSetup {
    pub fn new(ca_file: Option<PathBuf>) -> TlsSetup {
        TlsSetup {
            ca_file,
            config: OnceLock::new(),
        }
    }

    fn config(&self) -> Result<Arc<ClientConfig>, HttpError> {
        self.config
            .get_or_init(|| build(self.ca_file.as_deref()))
            .clone()
            .map_err(HttpError::TlsSetup)
    }
}

/// The certificates of a PEM bundle; an error (for the log, naming the file) when it cannot be
/// read or holds no certificate. Shared with config validation (`remote.ca_file`).
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(c.map_err(|e| format!("{}: not a PEM bundle: {e}", path.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

fn build(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (_, ignored) = roots.add_parsable_certificates(read_pem_certificates(path)?);
            if roots.is_empty() {
                return Err(format!(
                    "{}: none of its {ignored} certificates is a usable CA",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::debug!(error:% = e; "tls: a system root could not be loaded");
            }
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no system root certificates found (install ca-certificates, set \
                     SSL_CERT_FILE, or set remote.ca_file)"
                        .to_owned(),
                );
            }
        }
    }
    let provider = Arc::new(super::tls_provider::provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The TLS handshake on a connected `tcp`, for `url`'s host (SNI and the name checked against
/// the certificate; an IP literal is checked against the certificate's IP addresses).
pub(super) async fn handshake(
    setup: &TlsSetup,
    url: &Url,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, HttpError> {
    let config = setup.config()?;
    let name = match url.ip() {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(url.host().to_owned())
            .map_err(|_| HttpError::Malformed("host name not valid for TLS"))?,
    };
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| match rustls_error(&e) {
            Some(error) => HttpError::Tls {
                host: url.host().to_owned(),
                error,
            },
            None => HttpError::Io(e),
        })
}

/// The rustls error inside an I/O error from the TLS stream, if that is what it is.
fn rustls_error(e: &io::Error) -> Option<rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}
