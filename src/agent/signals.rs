//! Signals → flags plus a self-pipe the collection loop polls between ticks.
//!
//! Every signal whose default action would end the process is handled, so that nothing but
//! SIGKILL (and the watchdog's SIGABRT) ends the agent without its final flush:
//! - SIGTERM, SIGINT, SIGQUIT: stop (final flush, exit 0). SIGQUIT's core dump is not wanted on a
//!   board with a few MB of flash to spare.
//! - SIGHUP: reload the configuration file (`systemctl reload`, and a closed terminal).
//! - SIGUSR1: log one status line. SIGUSR2: logged and otherwise ignored (reserved).
//!
//! Each handler (signal-hook, async-signal-safe) sets its flag, then writes a byte to the pipe;
//! actions run in registration order, so a byte read means its flag is already set. The loop
//! notices in [`WakePipe::drain`] or is woken early from [`WakePipe::wait`]. Registered before
//! anything is opened, so a signal during start-up is acted on once the loop runs.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

/// What arrived since the last [`WakePipe::drain`]. Several signals of one kind coalesce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Signals {
    /// SIGTERM, SIGINT or SIGQUIT.
    pub stop: bool,
    /// SIGHUP.
    pub reload: bool,
    /// SIGUSR1.
    pub status: bool,
    /// SIGUSR2.
    pub ignored: bool,
}

/// The read end of the self-pipe and the flags; the write ends belong to the signal handlers
/// (and one to each [`Waker`]).
#[derive(Debug)]
pub(super) struct WakePipe {
    rx: UnixStream,
    tx: UnixStream,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    status: Arc<AtomicBool>,
    ignored: Arc<AtomicBool>,
}

impl WakePipe {
    /// Registers SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2.
    pub(super) fn install() -> io::Result<WakePipe> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        // Non-blocking: a full pipe means the loop is already woken, never a blocked writer.
        tx.set_nonblocking(true)?;
        let pipe = WakePipe {
            rx,
            tx: tx.try_clone()?,
            stop: Arc::default(),
            reload: Arc::default(),
            status: Arc::default(),
            ignored: Arc::default(),
        };
        let table = [
            (SIGTERM, &pipe.stop),
            (SIGINT, &pipe.stop),
            (SIGQUIT, &pipe.stop),
            (SIGHUP, &pipe.reload),
            (SIGUSR1, &pipe.status),
            (SIGUSR2, &pipe.ignored),
        ];
        for (sig, flag) in table {
            // Flag first: the byte must never be seen before its flag.
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(pipe)
    }

    /// What arrived since the last call; empties the pipe and clears the flags.
    pub(super) fn drain(&self) -> Signals {
        drain_wake(&self.rx);
        let take = |f: &AtomicBool| f.swap(false, Ordering::AcqRel);
        Signals {
            stop: take(&self.stop),
            reload: take(&self.reload),
            status: take(&self.status),
            ignored: take(&self.ignored),
        }
    }

    /// Sleeps up to `wait`, less when a signal arrives or a [`Waker`] wakes it.
    pub(super) fn wait(&self, wait: Duration) {
        wait_for_wake(&self.rx, wait);
    }

    /// A handle another thread wakes the loop with (no flag: the loop just runs an iteration).
    pub(super) fn waker(&self) -> io::Result<Waker> {
        Ok(Waker(self.tx.try_clone()?))
    }
}

/// Wakes the loop from another thread (the ticker, when its ring is half full).
#[derive(Debug)]
pub(super) struct Waker(UnixStream);

impl Waker {
    /// One byte into the self-pipe; a full pipe (EAGAIN) already wakes the loop.
    pub(super) fn wake(&self) {
        let _ = rustix::io::write(self.0.as_fd(), &[0u8]);
    }
}

/// True when the pipe had bytes; empties it.
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
