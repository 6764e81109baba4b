//! The health responder: hand-rolled HTTP/1.1 on smol serving `/health`, `/health/live`,
//! `/health/ready` and `/metrics`. See docs/health-monitoring.md for the semantics.
//!
//! - [`status`]: the rules, a pure function over a plain snapshot;
//! - [`render`]: the `/health` JSON ([`render::json`]), the `/metrics` text ([`render::prom`])
//!   and the self-metric values over the catalogue ([`render::self_metrics`], one source);
//! - [`http`]: the bounded request-head parser;
//! - [`respond`]: request → response into a reused buffer (no allocation after warm-up);
//! - [`server`]: the listener, a fixed pool of 16 connection slots, timeouts and eviction.
//!
//! GET and HEAD only; every response closes the connection.

pub mod http;
pub mod render;
pub mod respond;
pub(crate) mod server;
pub mod status;

use std::io;
use std::net::SocketAddr;

pub use render::self_metric_rows;
pub use server::{MAX_CONNECTIONS, serve};
pub use status::{HealthRules, Level, Report, Snapshot, evaluate};

/// Binds the health listener. Errors name the option and say what went wrong, e.g.
/// `health.address 127.0.0.1:9100: address in use`; the `io::ErrorKind` is kept.
pub fn bind(addr: SocketAddr) -> io::Result<smol::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| bind_error(addr, &e))?;
    smol::net::TcpListener::try_from(listener).map_err(|e| bind_error(addr, &e))
}

fn bind_error(addr: SocketAddr, e: &io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_owned(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_owned()
        }
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("health.address {addr}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_name_the_option() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let e = bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!("health.address {addr}: address in use")
        );
        // TEST-NET-1 is not assigned to this host.
        let e = bind("192.0.2.1:9100".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "health.address 192.0.2.1:9100: address not available on this host"
        );
    }
}
