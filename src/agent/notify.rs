//! systemd notification protocol (sd_notify) over the `NOTIFY_SOCKET` datagram socket, with rustix.
//!
//! `READY=1` once the store is open, `WATCHDOG=1` every WatchdogSec/2 — sent by the collection loop
//! itself, so a hung loop stops the pings and systemd restarts the service — and `STOPPING=1` on
//! shutdown. Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketType};

#[derive(Debug)]
pub struct Notifier {
    socket: Option<(OwnedFd, SocketAddrUnix)>,
    /// Half of WatchdogSec, when systemd asked for pings (WATCHDOG_USEC, for this PID).
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. Errors are logged once and disable
    /// notification (the agent still runs).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                Some(abstract_name) => SocketAddrUnix::new_abstract_name(abstract_name),
                None => SocketAddrUnix::new(bytes),
            };
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            );
            match (fd, addr) {
                (Ok(fd), Ok(addr)) => Some((fd, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!(error = e.to_string().as_str(), error_type = "systemd"; "NOTIFY_SOCKET unusable; systemd notification disabled");
                    None
                }
            }
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_ok && socket.is_some())
            .map(|us| Duration::from_micros(us / 2));
        Notifier {
            socket,
            watchdog_every,
            last_ping: None,
        }
    }

    pub fn send(&self, msg: &str) {
        if let Some((fd, addr)) = &self.socket {
            if let Err(e) = rustix::net::sendto(fd, msg.as_bytes(), SendFlags::empty(), addr) {
                log::debug!(error = e.to_string().as_str(); "sd_notify failed");
            }
        }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=collecting\n");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\n");
    }

    /// Called by the collection loop on each iteration: pings when half the watchdog period has
    /// passed since the last ping.
    pub fn loop_progressed(&mut self, now: Instant) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        if self
            .last_ping
            .is_none_or(|t| now.duration_since(t) >= every)
        {
            self.send("WATCHDOG=1\n");
            self.last_ping = Some(now);
        }
    }

    /// How long the loop may sleep before it must wake to ping (None: no watchdog).
    pub fn next_ping_in(&self, now: Instant) -> Option<Duration> {
        let every = self.watchdog_every?;
        Some(match self.last_ping {
            Some(t) => every.saturating_sub(now.duration_since(t)),
            None => Duration::ZERO,
        })
    }
}
