//! Host-name resolution off the executor.
//!
//! `getaddrinfo` blocks, so it runs on a short-lived `std::thread` that sends its answer through
//! a `smol::channel::bounded(1)` and ends. Not `smol::unblock`: the blocking pool keeps idle
//! threads that wake every 500 ms, and a lookup happens only when a new connection is needed.
//! If the request times out first, the thread finishes its lookup alone and its answer is
//! dropped.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::error::HttpError;

/// The addresses of `host` (a name, not an IP literal) with `port`, in the resolver's order.
pub(super) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
    let err = |source| HttpError::Resolve {
        host: host.to_owned(),
        source,
    };
    let (tx, rx) = smol::channel::bounded(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("bbm-resolve".into())
        .spawn(move || {
            let addrs = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            let _ = tx.try_send(addrs);
        })
        .map_err(err)?;
    match rx.recv().await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(err(io::Error::new(
            io::ErrorKind::NotFound,
            "no address for this name",
        ))),
        Ok(Err(source)) => Err(err(source)),
        Err(_) => Err(err(io::Error::other(
            "the resolver thread ended without an answer",
        ))),
    }
}
