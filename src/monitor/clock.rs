//! Clock trust: whether the wall clock can stamp samples, and if not, what time can.
//!
//! A board without a battery-backed RTC boots in 1970 (or at the last shutdown time) until NTP
//! syncs. Samples stamped with that clock are refused by VictoriaMetrics (too old) or land at
//! the wrong time, so every collection tick asks [`judge`] how to stamp:
//!
//! 1. **Server date** (the clock-skew check, [`crate::monitor::skew`]): once a check succeeded,
//!    the server's time is known as an offset from the *boot clock* (`CLOCK_BOOTTIME`, which
//!    no clock step moves), so it stays right when the wall clock steps later. If the wall
//!    clock agrees with it within `clock_skew_warn_ms` (and is not before the build floor),
//!    samples carry the wall clock; otherwise they carry the corrected time `boot + offset`.
//! 2. **NTP** (no server measurement yet): the kernel's own state (adjtimex(2), read-only, through
//!    [`belabox_sys::ntp`]): synchronised → trusted, whichever client (timesyncd, chrony, ntpd)
//!    did it. The kernel's "unsynchronised" is no reliable no (a board with an RTC and no NTP
//!    client reads it forever), so then systemd-timesyncd's files decide: its runtime directory
//!    without the `synchronized` flag → timesyncd runs and has not synced → untrusted. Neither
//!    → unknown.
//! 3. **Build floor**: a wall clock earlier than [`build_floor_ms`] is never trusted; later than
//!    it with NTP state unknown, it is only when nothing says the boot clock came from a saved
//!    file ([`BootWall`]): a board with a real RTC that set the clock needs no NTP, but a board
//!    without one (`<sysfs>/class/rtc` empty, or no RTC with `hctosys` 1) or with fake-hwclock's
//!    saved shutdown time boots hours or days in the past, later than the floor. chrony and
//!    ntpd leave no timesyncd files, so there the NTP state reads unknown until the kernel's
//!    says synchronised: such a clock waits for the kernel or a server `Date`.
//!
//! Untrusted → samples are stamped on the boot clock and kept apart in the store
//! ([`belabox_store::Store::insert_unstamped`]); as soon as a verdict gives an offset
//! (trusted time − boot clock) the agent re-stamps them ([`belabox_store::Store::restamp`]).
//!
//! Everything reads its clocks through [`TimeSource`], so unit tests drive wall, boot and NTP
//! state by hand.

use std::path::{Path, PathBuf};

use crate::model::time::now_ms;

/// 2026-01-01T00:00:00Z: no build of this agent is older, so no wall clock before it is right.
pub const MIN_BUILD_FLOOR_MS: i64 = 1_767_225_600_000;

/// The earliest wall time this binary trusts: `SOURCE_DATE_EPOCH` (seconds) at compile time
/// when set — reproducible builds set it to the source's commit time — else, and never below,
/// [`MIN_BUILD_FLOOR_MS`]. No build script: `option_env!` is tracked by cargo, so a changed
/// `SOURCE_DATE_EPOCH` rebuilds.
pub fn build_floor_ms() -> i64 {
    let sde = option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |s| s.saturating_mul(1000));
    sde.max(MIN_BUILD_FLOOR_MS)
}

/// The clocks and the NTP state, behind a trait so that tests control them.
pub trait TimeSource {
    /// Wall clock, ms since the Unix epoch (what `SystemTime::now` says; libfaketime fakes it).
    fn wall_ms(&self) -> i64;
    /// `CLOCK_BOOTTIME` in ms: monotonic, counts suspend, starts near 0 at boot.
    fn boot_ms(&self) -> i64;
    /// `Some(true)`: the kernel clock is NTP-synchronised; `Some(false)`: an NTP client runs
    /// and has not synchronised; `None`: unknown.
    fn ntp_synced(&self) -> Option<bool>;
}

/// `CLOCK_BOOTTIME` in ms (rustix: a vDSO call, no allocation).
pub fn boot_ms() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec
        .saturating_mul(1000)
        .saturating_add(t.tv_nsec / 1_000_000)
}

/// When neither timesyncd's flag nor its directory exists (no timesyncd: chrony, ntpd, a board
/// without NTP), they are looked for again only after this long (ms of boot clock): two failed
/// path lookups every tick cost about 5 % of the agent's CPU (docs/benchmarks.md, issue 30).
/// A directory that exists is looked at every tick, so timesyncd's sync shows at once; the
/// kernel's own NTP state (adjtimex, no path) is read every tick.
pub const TIMESYNC_ABSENT_RECHECK_MS: i64 = 5_000;

/// Whether the timesyncd files are due a look at boot time `now`, the last look having found
/// neither at `absent_at` (`None`: it found one, or there was none yet).
pub fn timesync_due(now_boot_ms: i64, absent_at: Option<i64>) -> bool {
    absent_at.is_none_or(|t| {
        // A boot clock behind the last look cannot be (it is monotonic): look.
        now_boot_ms < t || now_boot_ms.saturating_sub(t) >= TIMESYNC_ABSENT_RECHECK_MS
    })
}

/// The real clocks. `timesync_dir` is systemd-timesyncd's runtime directory.
#[derive(Debug, Clone)]
pub struct SystemClock {
    flag: PathBuf,
    dir: PathBuf,
    /// Boot time of the last look that found neither file ([`timesync_due`]).
    absent_at: std::cell::Cell<Option<i64>>,
    /// Read the kernel's NTP state (adjtimex). Off only under the test hook
    /// `BELABOX_METRICS_TEST_IGNORE_KERNEL_NTP` (src/agent/test_hooks.rs, feature `test-hooks`).
    kernel: bool,
}

impl SystemClock {
    pub const TIMESYNC_DIR: &'static str = "/run/systemd/timesync";

    pub fn new(timesync_dir: PathBuf) -> SystemClock {
        SystemClock {
            flag: timesync_dir.join("synchronized"),
            dir: timesync_dir,
            absent_at: std::cell::Cell::new(None),
            kernel: true,
        }
    }

    /// Does not read the kernel's NTP state (adjtimex): libfaketime fakes the wall clock but not
    /// adjtimex, so on a synchronised test machine the kernel would vouch for a faked clock.
    #[cfg(feature = "test-hooks")]
    pub fn ignoring_kernel_ntp(self) -> SystemClock {
        SystemClock {
            kernel: false,
            ..self
        }
    }
}

impl Default for SystemClock {
    /// [`SystemClock::TIMESYNC_DIR`], the kernel's NTP state read.
    fn default() -> Self {
        SystemClock::new(PathBuf::from(Self::TIMESYNC_DIR))
    }
}

impl TimeSource for SystemClock {
    fn wall_ms(&self) -> i64 {
        now_ms()
    }
    fn boot_ms(&self) -> i64 {
        boot_ms()
    }
    fn ntp_synced(&self) -> Option<bool> {
        if self.kernel
            && belabox_sys::ntp::kernel_ntp() == Some(belabox_sys::ntp::KernelNtp::Synced)
        {
            return Some(true);
        }
        // The boot clock is read only while the files are known absent (a syscall on musl).
        let absent_at = self.absent_at.get();
        if absent_at.is_some() && !timesync_due(boot_ms(), absent_at) {
            return None;
        }
        // Paths are short: std builds their C strings on the stack (no allocation per tick).
        let found = if rustix::fs::access(&self.flag, rustix::fs::Access::EXISTS).is_ok() {
            Some(true)
        } else if rustix::fs::access(&self.dir, rustix::fs::Access::EXISTS).is_ok() {
            Some(false)
        } else {
            None
        };
        self.absent_at.set(found.is_none().then(boot_ms));
        found
    }
}

/// Where trust came from (`/health` `time.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    /// Nothing vouches for the wall clock.
    None = 0,
    /// Later than the build floor; NTP state unknown.
    BuildFloor = 1,
    Ntp = 2,
    ServerDate = 3,
    /// Not trusted: the wall clock is outside the receiver's window around the `Date` of the
    /// uploader's answers (days ahead after a bad step).
    ReceiverWindow = 4,
    /// Not trusted: no NTP state and the boot clock came from no RTC ([`BootWall::Saved`]):
    /// later than the build floor proves nothing.
    NoRtc = 5,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::BuildFloor => "build_time_floor",
            Source::Ntp => "ntp",
            Source::ServerDate => "server_date",
            Source::ReceiverWindow => "outside_receiver_window",
            Source::NoRtc => "no_rtc_unsynced",
        }
    }

    pub fn from_u8(v: u8) -> Source {
        match v {
            1 => Source::BuildFloor,
            2 => Source::Ntp,
            3 => Source::ServerDate,
            4 => Source::ReceiverWindow,
            5 => Source::NoRtc,
            _ => Source::None,
        }
    }
}

/// How this tick's samples are stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// The wall clock, trusted.
    Wall(i64),
    /// The wall clock is wrong; the server's time (boot clock + measured offset).
    Corrected(i64),
    /// No trusted time: the boot clock, for [`belabox_store::Store::insert_unstamped`].
    Boot(i64),
}

impl Stamp {
    /// The timestamp to give a sample (wall ms, or boot ms for [`Stamp::Boot`]).
    pub fn ts_ms(self) -> i64 {
        match self {
            Stamp::Wall(t) | Stamp::Corrected(t) | Stamp::Boot(t) => t,
        }
    }
    pub fn is_unstamped(self) -> bool {
        matches!(self, Stamp::Boot(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub stamp: Stamp,
    pub source: Source,
    /// Trusted time − boot clock, when a trusted time is known: what re-stamps this boot's
    /// unstamped samples.
    pub offset_ms: Option<i64>,
}

impl Verdict {
    pub fn trusted(&self) -> bool {
        !self.stamp.is_unstamped()
    }
}

/// The inputs of [`judge`] besides the clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub floor_ms: i64,
    /// Wall and server time within this: the wall clock is used as is.
    pub warn_ms: u64,
    /// The receiver's window around its own clock, ms: it drops samples more than
    /// `max_ahead_ms` ahead (VictoriaMetrics: 2 days) or `max_behind_ms` behind
    /// (`remote.max_sample_age`, its retention). A wall clock outside it is not trusted.
    pub max_ahead_ms: u64,
    pub max_behind_ms: u64,
    /// What set the wall clock at boot: whether the build floor alone may vouch for it.
    pub boot_wall: BootWall,
}

/// What set the wall clock at boot, as the board shows it (read once at start: it cannot
/// change within a boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootWall {
    /// An RTC set it (`hctosys` 1), and no fake-hwclock file: a wall clock later than the build
    /// floor is trusted with no NTP state (RTC boards need no NTP).
    Rtc,
    /// `<sysfs>/class/rtc` is absent (a fixture tree, or a kernel without the RTC class):
    /// nothing known, treated as [`BootWall::Rtc`] (the behaviour before the evidence existed).
    Unknown,
    /// No RTC set it (`class/rtc` empty, or every RTC's `hctosys` 0), or fake-hwclock's saved
    /// file exists: the wall clock is 1970 or the last shutdown time until a sync, so the build
    /// floor alone never vouches for it.
    Saved,
}

impl BootWall {
    /// The pure decision. `rtcs`: `None` when `class/rtc` is absent, else each RTC's `hctosys`
    /// (`None` when unreadable: an RTC that may have set the clock). `fake_hwclock`: its saved
    /// file exists.
    pub fn decide(rtcs: Option<&[Option<bool>]>, fake_hwclock: bool) -> BootWall {
        if fake_hwclock {
            // It restores the saved time whenever that is later than the RTC's (a dead coin
            // cell): from here nobody can tell which one set the clock.
            return BootWall::Saved;
        }
        match rtcs {
            None => BootWall::Unknown,
            Some(r) if r.iter().any(|h| *h != Some(false)) => BootWall::Rtc,
            Some(_) => BootWall::Saved,
        }
    }

    /// Reads `<sysfs>/class/rtc/*/hctosys` and whether `fake_hwclock` exists.
    pub fn read(sysfs: &Path, fake_hwclock: &Path) -> BootWall {
        let rtcs: Option<Vec<Option<bool>>> =
            std::fs::read_dir(sysfs.join("class/rtc")).ok().map(|dir| {
                dir.flatten()
                    .map(|e| {
                        std::fs::read_to_string(e.path().join("hctosys"))
                            .ok()
                            .map(|s| s.trim() == "1")
                    })
                    .collect()
            });
        BootWall::decide(rtcs.as_deref(), fake_hwclock.exists())
    }

    /// fake-hwclock's saved file under the root that holds `sysfs` (`/sys` →
    /// `/etc/fake-hwclock.data`; a test's `<dir>/sys` → `<dir>/etc/fake-hwclock.data`).
    pub fn fake_hwclock_file(sysfs: &Path) -> PathBuf {
        sysfs
            .parent()
            .unwrap_or(Path::new("/"))
            .join("etc/fake-hwclock.data")
    }

    /// Whether a wall clock later than the build floor may be trusted with no NTP state.
    fn floor_suffices(self) -> bool {
        self != BootWall::Saved
    }
}

/// Decides how to stamp now (module docs). `server_offset_ms`: server time − boot clock from
/// the last successful skew check. `answer_offset_ms`: the same from the uploader's last
/// answer's `Date` (known even with the skew check off).
///
/// The uploader's answers only ever *veto* the wall clock, never stamp: with the skew check
/// off (`clock_skew_url = "off"`, e.g. behind a proxy whose `Date` is not to be trusted for
/// stamping) a wall clock that the receiver's window would refuse (days ahead after a bad
/// step) makes samples wait on the boot clock, and the usual re-stamp gives them their real
/// time once the wall clock is back in the window (NTP, a fixed RTC). So no sample is stamped
/// with a time the receiver would drop in silence, and none is stamped from a `Date` the
/// operator chose not to use.
pub fn judge(
    clock: &dyn TimeSource,
    policy: Policy,
    server_offset_ms: Option<i64>,
    answer_offset_ms: Option<i64>,
) -> Verdict {
    let wall = clock.wall_ms();
    let boot = clock.boot_ms();
    let wall_ok = wall >= policy.floor_ms;
    let trusted_wall = |source| Verdict {
        stamp: Stamp::Wall(wall),
        source,
        offset_ms: Some(wall.saturating_sub(boot)),
    };
    if let Some(off) = server_offset_ms {
        let server_now = boot.saturating_add(off);
        if wall_ok && wall.abs_diff(server_now) <= policy.warn_ms {
            return trusted_wall(Source::ServerDate);
        }
        return Verdict {
            stamp: Stamp::Corrected(server_now),
            source: Source::ServerDate,
            offset_ms: Some(off),
        };
    }
    let in_window = answer_offset_ms.is_none_or(|off| {
        let receiver_now = boot.saturating_add(off);
        let ahead = wall.saturating_sub(receiver_now);
        ahead <= i64::try_from(policy.max_ahead_ms).unwrap_or(i64::MAX)
            && ahead.saturating_neg() <= i64::try_from(policy.max_behind_ms).unwrap_or(i64::MAX)
    });
    let untrusted = |source| Verdict {
        stamp: Stamp::Boot(boot),
        source,
        offset_ms: None,
    };
    // The veto only takes trust away; an already untrusted clock keeps its own reason.
    match clock.ntp_synced() {
        Some(true) | None if wall_ok && !in_window => untrusted(Source::ReceiverWindow),
        Some(true) if wall_ok => trusted_wall(Source::Ntp),
        None if wall_ok && policy.boot_wall.floor_suffices() => trusted_wall(Source::BuildFloor),
        None if wall_ok => untrusted(Source::NoRtc),
        _ => untrusted(Source::None),
    }
}

/// The boot id (`/proc/sys/kernel/random/boot_id`): names the boot whose clock unstamped
/// samples use. `None` when unreadable; the caller then uses a random id for this process, so
/// its samples are re-stamped only within this run (never with another boot's offset).
pub fn read_boot_id(procfs: &std::path::Path) -> Option<uuid::Uuid> {
    let s = std::fs::read_to_string(procfs.join("sys/kernel/random/boot_id")).ok()?;
    uuid::Uuid::parse_str(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Wall, boot and NTP state set by the test.
    struct FakeClock {
        wall: Cell<i64>,
        boot: Cell<i64>,
        ntp: Cell<Option<bool>>,
    }

    impl TimeSource for FakeClock {
        fn wall_ms(&self) -> i64 {
            self.wall.get()
        }
        fn boot_ms(&self) -> i64 {
            self.boot.get()
        }
        fn ntp_synced(&self) -> Option<bool> {
            self.ntp.get()
        }
    }

    const REAL: i64 = 1_795_824_323_000; // 2026-11-28
    const DAY: i64 = 86_400_000;
    const POLICY: Policy = Policy {
        floor_ms: MIN_BUILD_FLOOR_MS,
        warn_ms: 2000,
        max_ahead_ms: 2 * DAY as u64,
        max_behind_ms: 30 * DAY as u64,
        boot_wall: BootWall::Rtc,
    };

    fn clock(wall: i64, boot: i64, ntp: Option<bool>) -> FakeClock {
        FakeClock {
            wall: Cell::new(wall),
            boot: Cell::new(boot),
            ntp: Cell::new(ntp),
        }
    }

    /// Neither timesyncd file: looked for again only after the recheck time; a file found (or
    /// no look yet): every tick.
    #[test]
    fn timesync_files_are_looked_for_again_after_the_recheck_time() {
        let r = TIMESYNC_ABSENT_RECHECK_MS;
        for (now, absent_at, due) in [
            (10_000, None, true),
            (10_000, Some(10_000), false),
            (10_000 + r - 1, Some(10_000), false),
            (10_000 + r, Some(10_000), true),
            (9_999, Some(10_000), true),
            (i64::MAX, Some(i64::MIN), true),
        ] {
            assert_eq!(timesync_due(now, absent_at), due, "{now} {absent_at:?}");
        }
    }

    /// The real clock: with no timesyncd directory, a directory made later is seen once the
    /// recheck time has passed, and the flag in an existing directory at the next look.
    #[test]
    fn system_clock_sees_timesyncd_files_appear() {
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("timesync");
        let mut c = SystemClock::new(ts.clone());
        c.kernel = false;
        assert_eq!(c.ntp_synced(), None);
        std::fs::create_dir(&ts).unwrap();
        // Within the recheck time the absence is remembered…
        assert_eq!(c.ntp_synced(), None);
        // …after it (pretend the last look was that long ago) the directory is found.
        c.absent_at
            .set(Some(boot_ms().saturating_sub(TIMESYNC_ABSENT_RECHECK_MS)));
        assert_eq!(c.ntp_synced(), Some(false));
        std::fs::write(ts.join("synchronized"), "").unwrap();
        assert_eq!(
            c.ntp_synced(),
            Some(true),
            "the flag, at the very next look"
        );
    }

    #[test]
    fn floor_is_at_least_2026() {
        assert!(build_floor_ms() >= MIN_BUILD_FLOOR_MS);
    }

    #[test]
    fn rtc_less_boot_then_ntp_sync() {
        // 1970, NTP client running but not synced: boot clock, no offset.
        let c = clock(86_400_000, 5_000, Some(false));
        let v = judge(&c, POLICY, None, None);
        assert_eq!(v.stamp, Stamp::Boot(5_000));
        assert_eq!(
            (v.source, v.offset_ms, v.trusted()),
            (Source::None, None, false)
        );
        // 1970 and NTP claims synced (cannot be right: before the build) — still untrusted.
        c.ntp.set(Some(true));
        assert!(!judge(&c, POLICY, None, None).trusted());
        // NTP stepped the clock: trusted, offset maps boot time to real time.
        c.wall.set(REAL);
        c.boot.set(65_000);
        let v = judge(&c, POLICY, None, None);
        assert_eq!(v.stamp, Stamp::Wall(REAL));
        assert_eq!((v.source, v.offset_ms), (Source::Ntp, Some(REAL - 65_000)));
        // A sample taken at boot 5 000 re-stamps to 60 s before now.
        assert_eq!(5_000 + v.offset_ms.unwrap_or(0), REAL - 60_000);
    }

    #[test]
    fn restored_shutdown_time_is_untrusted_while_ntp_unsynced() {
        // After the floor, but timesyncd has not synced: untrusted.
        let c = clock(REAL - 3 * 86_400_000, 4_000, Some(false));
        assert!(!judge(&c, POLICY, None, None).trusted());
        // No NTP client known: the floor is all there is.
        c.ntp.set(None);
        let v = judge(&c, POLICY, None, None);
        assert_eq!(
            (v.stamp, v.source),
            (Stamp::Wall(REAL - 3 * 86_400_000), Source::BuildFloor)
        );
        c.wall.set(0);
        assert!(!judge(&c, POLICY, None, None).trusted());
    }

    #[test]
    fn server_date_corrects_and_survives_a_wall_step() {
        // 1970 under libfaketime; the skew check measured server − boot.
        let boot = 10_000;
        let off = REAL - boot;
        let c = clock(86_400_000, boot, Some(true));
        let v = judge(&c, POLICY, Some(off), None);
        assert_eq!(v.stamp, Stamp::Corrected(REAL));
        assert_eq!((v.source, v.offset_ms), (Source::ServerDate, Some(off)));
        // 3 days ahead: corrected back.
        c.wall.set(REAL + 3 * 86_400_000);
        assert_eq!(
            judge(&c, POLICY, Some(off), None).stamp,
            Stamp::Corrected(REAL)
        );
        // The clock steps to real time 20 s later: the boot-based offset still holds and the
        // wall agrees with it (within the threshold), so the wall is used.
        c.boot.set(boot + 20_000);
        c.wall.set(REAL + 20_000 + 700);
        let v = judge(&c, POLICY, Some(off), None);
        assert_eq!(v.stamp, Stamp::Wall(REAL + 20_700));
        assert_eq!(v.source, Source::ServerDate);
        // Beyond the threshold the server wins.
        c.wall.set(REAL + 20_000 + 2_001);
        assert_eq!(
            judge(&c, POLICY, Some(off), None).stamp,
            Stamp::Corrected(REAL + 20_000)
        );
    }

    /// The uploader's answers (skew check off) veto a wall clock outside the receiver's window
    /// and nothing else; the skew check's measurement still wins when there is one.
    #[test]
    fn answer_date_vetoes_a_wall_clock_outside_the_receiver_window() {
        let boot = 50_000;
        let off = REAL - boot; // the receiver's now is REAL
        // (wall − receiver now, NTP state) → stamp
        let boot_stamp = Stamp::Boot(boot);
        let table: [(i64, Option<bool>, Stamp, Source); 8] = [
            (0, None, Stamp::Wall(REAL), Source::BuildFloor),
            (DAY, None, Stamp::Wall(REAL + DAY), Source::BuildFloor),
            (
                2 * DAY,
                Some(true),
                Stamp::Wall(REAL + 2 * DAY),
                Source::Ntp,
            ),
            (2 * DAY + 1, None, boot_stamp, Source::ReceiverWindow),
            (3 * DAY, Some(true), boot_stamp, Source::ReceiverWindow),
            (
                -30 * DAY,
                None,
                Stamp::Wall(REAL - 30 * DAY),
                Source::BuildFloor,
            ),
            (
                -30 * DAY - 1,
                Some(true),
                boot_stamp,
                Source::ReceiverWindow,
            ),
            (-2 * DAY, Some(false), boot_stamp, Source::None),
        ];
        for (ahead, ntp, stamp, source) in table {
            let c = clock(REAL + ahead, boot, ntp);
            let v = judge(&c, POLICY, None, Some(off));
            assert_eq!(
                (v.stamp, v.source),
                (stamp, source),
                "ahead {ahead} ms, ntp {ntp:?}"
            );
            // No answer yet: the wall clock is judged as before.
            let v = judge(&c, POLICY, None, None);
            assert_eq!(
                v.trusted(),
                ntp != Some(false),
                "ahead {ahead} ms without an answer"
            );
            // A skew measurement wins: corrected, never vetoed.
            let v = judge(&c, POLICY, Some(off), Some(off));
            assert_eq!(
                v.source,
                Source::ServerDate,
                "ahead {ahead} ms with a skew check"
            );
        }
        // A wall clock before the build floor keeps its own reason (the veto only takes trust
        // away).
        let c = clock(0, boot, Some(true));
        assert_eq!(judge(&c, POLICY, None, Some(off)).source, Source::None);
        // The clock comes back: trusted again, with the offset that re-stamps the boot-clock
        // samples of the vetoed period to their real time.
        let c = clock(REAL + 10_000, boot + 10_000, None);
        let v = judge(&c, POLICY, None, Some(off));
        assert_eq!(v.offset_ms, Some(off));
        assert_eq!(boot + v.offset_ms.unwrap_or(0), REAL);
    }

    /// What set the clock at boot, from the RTCs' `hctosys` and fake-hwclock's file.
    #[test]
    fn boot_wall_from_rtc_and_fake_hwclock() {
        let (y, n) = (Some(true), Some(false));
        type Row<'a> = (Option<&'a [Option<bool>]>, bool, BootWall);
        let table: [Row; 9] = [
            (None, false, BootWall::Unknown),
            (None, true, BootWall::Saved),
            (Some(&[]), false, BootWall::Saved),
            (Some(&[n]), false, BootWall::Saved),
            (Some(&[n, n]), false, BootWall::Saved),
            (Some(&[y]), false, BootWall::Rtc),
            (Some(&[n, y]), false, BootWall::Rtc),
            (Some(&[None]), false, BootWall::Rtc),
            (Some(&[y]), true, BootWall::Saved),
        ];
        for (rtcs, fake, want) in table {
            assert_eq!(BootWall::decide(rtcs, fake), want, "{rtcs:?} {fake}");
        }
        assert_eq!(
            BootWall::fake_hwclock_file(Path::new("/sys")),
            Path::new("/etc/fake-hwclock.data")
        );
        assert_eq!(
            BootWall::fake_hwclock_file(Path::new("/t/board/sys")),
            Path::new("/t/board/etc/fake-hwclock.data")
        );
    }

    /// Reads a tree like a board's: `class/rtc/rtc0/hctosys`, `etc/fake-hwclock.data`.
    #[test]
    fn boot_wall_reads_the_tree() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sys = dir.path().join("sys");
        let fake = BootWall::fake_hwclock_file(&sys);
        let write = |p: &Path, s: &str| {
            std::fs::create_dir_all(p.parent().unwrap_or(Path::new("/")))
                .and_then(|()| std::fs::write(p, s))
                .unwrap_or_else(|e| panic!("{e}"));
        };
        assert_eq!(BootWall::read(&sys, &fake), BootWall::Unknown);
        std::fs::create_dir_all(sys.join("class/rtc")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(BootWall::read(&sys, &fake), BootWall::Saved);
        write(&sys.join("class/rtc/rtc0/hctosys"), "0\n");
        assert_eq!(BootWall::read(&sys, &fake), BootWall::Saved);
        write(&sys.join("class/rtc/rtc0/hctosys"), "1\n");
        assert_eq!(BootWall::read(&sys, &fake), BootWall::Rtc);
        write(&fake, "2026-12-04 10:00:00\n");
        assert_eq!(BootWall::read(&sys, &fake), BootWall::Saved);
    }

    /// A wall clock later than the build floor with no NTP state: trusted only when an RTC (or
    /// nothing known) set it; a saved time waits for NTP or the server, whose time re-stamps.
    #[test]
    fn a_saved_boot_clock_needs_a_sync() {
        let boot = 30_000;
        let stale = REAL - 2 * DAY;
        // (boot wall, NTP state, skew offset) → (trusted, source)
        let table = [
            (BootWall::Rtc, None, None, true, Source::BuildFloor),
            (BootWall::Unknown, None, None, true, Source::BuildFloor),
            (BootWall::Saved, None, None, false, Source::NoRtc),
            (BootWall::Saved, Some(false), None, false, Source::None),
            (BootWall::Saved, Some(true), None, true, Source::Ntp),
            (
                BootWall::Saved,
                None,
                Some(REAL - boot),
                true,
                Source::ServerDate,
            ),
            (BootWall::Rtc, Some(false), None, false, Source::None),
        ];
        for (boot_wall, ntp, server, trusted, source) in table {
            let policy = Policy {
                boot_wall,
                ..POLICY
            };
            let v = judge(&clock(stale, boot, ntp), policy, server, None);
            assert_eq!(
                (v.trusted(), v.source),
                (trusted, source),
                "{boot_wall:?} ntp {ntp:?} server {server:?}"
            );
        }
        // The first server Date maps the waiting boot-clock samples to their real time.
        let policy = Policy {
            boot_wall: BootWall::Saved,
            ..POLICY
        };
        let v = judge(&clock(stale, boot, None), policy, Some(REAL - boot), None);
        assert_eq!(v.stamp, Stamp::Corrected(REAL));
        assert_eq!(10_000 + v.offset_ms.unwrap_or(0), REAL - 20_000);
        // Before the floor a saved clock is untrusted for that reason.
        let v = judge(&clock(0, boot, None), policy, None, None);
        assert_eq!(v.source, Source::None);
    }
}
