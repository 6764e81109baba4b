//! SIGTERM/SIGINT → a self-pipe the collection loop polls between ticks.
//!
//! The handlers (signal-hook's pipe mode) only write a byte; the loop notices it in
//! [`WakePipe::drain`] or is woken early from [`WakePipe::wait`]. Registered before anything is
//! opened, so a SIGTERM during start-up still ends in a clean close.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The read end of the self-pipe; the write ends belong to the signal handlers.
#[derive(Debug)]
pub(super) struct WakePipe {
    rx: UnixStream,
}

impl WakePipe {
    /// Registers SIGTERM and SIGINT.
    pub(super) fn install() -> io::Result<WakePipe> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(WakePipe { rx })
    }

    /// True when a signal arrived (the pipe had bytes); empties the pipe.
    pub(super) fn drain(&self) -> bool {
        drain_wake(&self.rx)
    }

    /// Sleeps up to `wait`, less when a signal arrives.
    pub(super) fn wait(&self, wait: Duration) {
        wait_for_wake(&self.rx, wait);
    }
}

fn drain_wake(rx: &UnixStream) -> bool {
    let mut buf = [0u8; 16];
    let mut woke = false;
    while let Ok(n) = rustix::io::read(rx.as_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        woke = true;
    }
    woke
}

fn wait_for_wake(rx: &UnixStream, wait: Duration) {
    if wait.is_zero() {
        return;
    }
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let mut fds = [rustix::event::PollFd::new(rx, rustix::event::PollFlags::IN)];
    // EINTR or an error simply ends the wait early; the loop re-plans.
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn drain_reports_and_empties_the_pipe() {
        let (rx, mut tx) = UnixStream::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        assert!(!drain_wake(&rx));
        // More than one read's worth: drain loops until the pipe is empty.
        tx.write_all(&[1; 40]).unwrap();
        assert!(drain_wake(&rx));
        assert!(!drain_wake(&rx));
    }
}
