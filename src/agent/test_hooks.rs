//! The integration tests' hooks into the agent, read from `BELABOX_METRICS_TEST_*` environment
//! variables. Compiled only with the cargo feature `test-hooks` (every test build has it, through the
//! package's dev-dependency on itself; `cargo build --release` and the packages never do):
//! without it no build reads or even names these variables, so a shipped binary cannot be made
//! to stall, panic or distrust its clock sources by its environment.
//!
//! - `BELABOX_METRICS_TEST_STALL_AFTER=N`: the collection loop hangs after N iterations, so a
//!   test can prove that watchdog pings stop with it (tests/run_agent.rs).
//! - `BELABOX_METRICS_TEST_PANIC_AFTER=N`: the loop panics after N iterations, so a test can
//!   check the panic's JSON line (tests/panic_line.rs).
//! - `BELABOX_METRICS_TEST_IGNORE_KERNEL_NTP=1`: the kernel's NTP state (adjtimex) is not read:
//!   libfaketime fakes the wall clock but not adjtimex, so a synchronised test machine would
//!   vouch for a faked clock (tests/clock_untrusted.rs).
//! - `BELABOX_METRICS_TEST_TIMESYNC_DIR=dir`: systemd-timesyncd's runtime directory is `dir`
//!   instead of [`SystemClock::TIMESYNC_DIR`], so a test can sync "NTP" by hand.
//! - `BELABOX_METRICS_TEST_OPEN_DELAY_MS=N`: the store's open takes N ms longer, as a large
//!   store's verification after a crash does, so a test can show that the tick runs meanwhile
//!   (tests/agent/run_agent.rs).

use std::path::PathBuf;
use std::time::Duration;

use crate::monitor::clock::SystemClock;

/// The loop's hooks: the iteration counts after which it stalls or panics.
#[derive(Debug)]
pub(super) struct LoopHooks {
    stall_after: Option<u64>,
    panic_after: Option<u64>,
    /// Loop iterations completed.
    iterations: u64,
}

impl LoopHooks {
    /// Reads `BELABOX_METRICS_TEST_STALL_AFTER` and `..._PANIC_AFTER` (unset or not a number:
    /// no hook).
    pub(super) fn from_env() -> LoopHooks {
        LoopHooks {
            stall_after: env_u64("BELABOX_METRICS_TEST_STALL_AFTER"),
            panic_after: env_u64("BELABOX_METRICS_TEST_PANIC_AFTER"),
            iterations: 0,
        }
    }

    /// Called at the end of each loop iteration: stalls or panics once the count is reached.
    pub(super) fn iteration_done(&mut self) {
        self.iterations += 1;
        let n = self.iterations;
        if self.stall_after.is_some_and(|after| n >= after) {
            stall();
        }
        if self.panic_after.is_some_and(|after| n >= after) {
            panic!("BELABOX_METRICS_TEST_PANIC_AFTER reached after {n} iterations");
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// The loop hangs (`BELABOX_METRICS_TEST_STALL_AFTER`), so watchdog pings must stop.
fn stall() -> ! {
    log::warn!(error_type = "test_hook"; "BELABOX_METRICS_TEST_STALL_AFTER reached: the collection loop stalls");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Holds the store's open `BELABOX_METRICS_TEST_OPEN_DELAY_MS` longer (unset: not at all).
pub(super) fn delay_open() {
    if let Some(ms) = env_u64("BELABOX_METRICS_TEST_OPEN_DELAY_MS") {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// The real clocks, with `BELABOX_METRICS_TEST_TIMESYNC_DIR` and
/// `BELABOX_METRICS_TEST_IGNORE_KERNEL_NTP` applied.
pub(super) fn system_clock() -> SystemClock {
    let dir = std::env::var_os("BELABOX_METRICS_TEST_TIMESYNC_DIR")
        .map_or_else(|| PathBuf::from(SystemClock::TIMESYNC_DIR), PathBuf::from);
    let clock = SystemClock::new(dir);
    if std::env::var_os("BELABOX_METRICS_TEST_IGNORE_KERNEL_NTP").is_some() {
        clock.ignoring_kernel_ntp()
    } else {
        clock
    }
}
