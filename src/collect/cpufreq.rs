//! cpufreq_*{policy="N"} per cpufreq policy (a cluster) from
//! /sys/devices/system/cpu/cpufreq/policyN.
//!
//! Policies are discovered once at open by enumerating `policy*` (never a guessed number: RK3588
//! has 0, 4, 6, Orin 0, 4, x86 one per CPU). Each tick reads, per policy:
//! - `scaling_cur_freq` kHz → `cpufreq_frequency_hertz`;
//! - `cpuinfo_max_freq` kHz → `cpufreq_max_frequency_hertz`;
//! - `stats/time_in_state` (10 ms units: the kernel converts jiffies with
//!   `jiffies_64_to_clock_t`, USER_HZ = 100) → `cpufreq_below_max_seconds_total`, the time at
//!   every frequency below `cpuinfo_max_freq` (below the highest listed when that file cannot be
//!   read). Below `cpuinfo_max_freq`, not below the highest listed: with boost off, the boost
//!   frequencies stay in the table and the top non-boost one is the maximum;
//! - `stats/total_trans` → `cpufreq_transitions_total`.
//!
//! `stats/` exists only with CONFIG_CPU_FREQ_STAT: without it those two series are absent (not
//! skipped). A value that cannot be read (an inactive policy answers EBUSY) or parsed is a counted
//! skip of that value; a `time_in_state` with any bad row gives no sample that tick (a partial
//! sum would make the counter go backwards). All files are kept open (`Source::watched`: the
//! stats files are recreated when a policy is re-initialised).

use std::path::Path;

use belabox_proc::ParseError;
use belabox_proc::cpufreq::time_in_state;
use belabox_proc::sysfs;

use super::{CollectError, Collector, OpenError, Outcome, Source, UnitLabels};
use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric};

/// More policies than this are ignored (a counted skip each tick). ARM boards have 1–4
/// (one per cluster: RK3588 3, Jetson 2–3); an x86 machine has one per CPU, and past 16 of
/// them the rest are left out. Small on purpose: every sample bound here is a slot of the
/// sample ring (the default ring stays at its minimum: `collect::sizing`).
pub const MAX_POLICIES: usize = 16;

/// `time_in_state` units per second (USER_HZ clock ticks of 10 ms).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
struct Policy {
    labels: UnitLabels,
    cur: Source,
    max: Source,
    /// `stats/time_in_state` and `stats/total_trans`, when the kernel keeps statistics.
    stats: Option<(Source, Source)>,
}

#[derive(Debug)]
pub struct CpufreqCollector {
    policies: Vec<Policy>,
    /// Policies found but not tracked (beyond [`MAX_POLICIES`], or a label that does not fit).
    ignored: u32,
}

impl CpufreqCollector {
    fn discover(dir: &Path) -> CpufreqCollector {
        let found = super::numbered(dir, "policy", "");
        let mut c = CpufreqCollector {
            policies: Vec::with_capacity(found.len().min(MAX_POLICIES)),
            ignored: 0,
        };
        for (n, name) in found {
            let mut number = LabelValue::new();
            if c.policies.len() >= MAX_POLICIES || write_u32(&mut number, n).is_err() {
                c.ignored += 1;
                continue;
            }
            let pdir = dir.join(&name);
            let stats = pdir.join("stats/time_in_state").is_file().then(|| {
                (
                    Source::watched(pdir.join("stats/time_in_state")),
                    Source::watched(pdir.join("stats/total_trans")),
                )
            });
            let mut labels = heapless::Vec::new();
            let _ = labels.push(Label {
                key: LabelKey::Policy,
                value: number,
            });
            c.policies.push(Policy {
                labels,
                cur: Source::watched(pdir.join("scaling_cur_freq")),
                max: Source::watched(pdir.join("cpuinfo_max_freq")),
                stats,
            });
        }
        c
    }
}

fn write_u32(v: &mut LabelValue, n: u32) -> core::fmt::Result {
    use core::fmt::Write as _;
    write!(v, "{n}")
}

/// USER_HZ ticks at every frequency below `max_khz` (below the highest listed when `None`);
/// `None` for an empty table (no statistics kept). Any bad row is the error: a sum without it
/// would be a counter that goes backwards.
fn below_max_ticks(data: &[u8], max_khz: Option<u64>) -> Result<Option<u64>, ParseError> {
    let top = match max_khz {
        Some(m) => m,
        None => {
            let mut top = None;
            for row in time_in_state(data) {
                top = top.max(Some(u64::from(row?.khz)));
            }
            match top {
                Some(t) => t,
                None => return Ok(None),
            }
        }
    };
    let mut sum = 0u64;
    let mut rows = 0usize;
    for row in time_in_state(data) {
        let row = row?;
        rows += 1;
        if u64::from(row.khz) < top {
            sum = sum.checked_add(row.ticks).ok_or(ParseError::Malformed {
                line: rows,
                what: "time (sum overflows)",
            })?;
        }
    }
    Ok((rows > 0).then_some(sum))
}

impl Collector for CpufreqCollector {
    /// Unavailable without a cpufreq policy (a VM, a kernel without cpufreq).
    fn open(config: &Config) -> Result<CpufreqCollector, OpenError> {
        let dir = config.paths.sysfs.join("devices/system/cpu/cpufreq");
        let c = CpufreqCollector::discover(&dir);
        if c.policies.is_empty() {
            return Err(OpenError::Unavailable(format!(
                "no cpufreq policy under {}",
                dir.display()
            )));
        }
        Ok(c)
    }

    fn max_samples(_: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Cpufreq, MAX_POLICIES)
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut outcome = Outcome::ignoring(self.ignored);
        for p in self.policies.iter_mut() {
            let labels = &p.labels;
            let mut push = |outcome: &mut Outcome, metric: Metric, value: f64| {
                outcome.push(out, ts_ms, labels, metric, value);
            };
            match p.cur.value(buf, sysfs::parse_u64) {
                Ok(khz) => push(
                    &mut outcome,
                    Metric::CpufreqFrequencyHertz,
                    khz as f64 * 1e3,
                ),
                Err(e) => outcome.skip(e),
            }
            let max_khz = match p.max.value(buf, sysfs::parse_u64) {
                Ok(khz) => {
                    push(
                        &mut outcome,
                        Metric::CpufreqMaxFrequencyHertz,
                        khz as f64 * 1e3,
                    );
                    Some(khz)
                }
                Err(e) => {
                    outcome.skip(e);
                    None
                }
            };
            let Some((table, trans)) = p.stats.as_mut() else {
                continue;
            };
            let below = match table.read(buf) {
                Ok(data) => below_max_ticks(data, max_khz).map_err(|e| table.parse_error(e)),
                Err(e) => Err(e),
            };
            match below {
                Ok(Some(ticks)) => push(
                    &mut outcome,
                    Metric::CpufreqBelowMaxSecondsTotal,
                    ticks as f64 / TICKS_PER_SECOND,
                ),
                Ok(None) => {}
                Err(e) => outcome.skip(e),
            }
            match trans.value(buf, sysfs::parse_u64) {
                Ok(n) => push(&mut outcome, Metric::CpufreqTransitionsTotal, n as f64),
                Err(e) => outcome.skip(e),
            }
        }
        if !self.policies.is_empty() && outcome.emitted == 0 {
            return Err(CollectError::AllFailed {
                what: "cpufreq policies",
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{collect_twice, soc_sysfs, sysfs_config};

    /// The second tick on `sysfs`: (metric, policy, value) and the outcome.
    fn collect(sysfs: &Path) -> (Vec<(Metric, String, f64)>, Outcome) {
        let (out, outcome) = collect_twice::<CpufreqCollector>(&sysfs_config(sysfs));
        let got = out
            .iter()
            .map(|s| (s.metric, s.labels[0].value.to_string(), s.value))
            .collect();
        (got, outcome)
    }

    use Metric::{
        CpufreqBelowMaxSecondsTotal as Below, CpufreqFrequencyHertz as Freq,
        CpufreqMaxFrequencyHertz as Max, CpufreqTransitionsTotal as Trans,
    };

    fn row(m: Metric, p: &str, v: f64) -> (Metric, String, f64) {
        (m, p.to_string(), v)
    }

    #[test]
    fn rk3588_vendor() {
        let (got, outcome) = collect(&soc_sysfs("rk3588-vendor"));
        assert_eq!((outcome.skipped, outcome.emitted), (0, 8));
        // policy0: max 1 800 000 kHz; below it: 1 523 421 + 20 311 + 9 870 + 7 211 + 5 532
        // + 4 109 + 3 377 = 1 573 831 ticks = 15 738.31 s.
        // policy4: max 2 400 000 kHz; below it every row but 2 400 000's 25 ticks:
        // 1 711 203 + 1 543 + 1 022 + 876 + 950 + 701 + 688 + 590 + 412 + 98 213
        // = 1 816 198 ticks = 18 161.98 s.
        assert_eq!(
            got,
            [
                row(Freq, "0", 1_800_000_000.0),
                row(Max, "0", 1_800_000_000.0),
                row(Below, "0", 15_738.31),
                row(Trans, "0", 8211.0),
                row(Freq, "4", 2_208_000_000.0),
                row(Max, "4", 2_400_000_000.0),
                row(Below, "4", 18_161.98),
                row(Trans, "4", 2876.0),
            ]
        );
    }

    #[test]
    fn jetson_nano() {
        let (got, outcome) = collect(&soc_sysfs("jetson-nano"));
        assert_eq!(outcome.skipped, 0);
        // Max 1 479 000 kHz; below it every row but the last (912 334 ticks): the file's
        // 956 938 ticks in all − 912 334 = 44 604 ticks = 446.04 s.
        assert_eq!(
            got,
            [
                row(Freq, "0", 1_479_000_000.0),
                row(Max, "0", 1_479_000_000.0),
                row(Below, "0", 446.04),
                row(Trans, "0", 48_213.0),
            ]
        );
    }

    #[test]
    fn jetson_orin() {
        let (got, outcome) = collect(&soc_sysfs("jetson-orin"));
        assert_eq!(outcome.skipped, 0);
        // policy0: max 1 510 400 kHz; below it: 41 022 + 310 + 288 + 251 + 402 + 377 + 198
        // + 230 + 211 + 305 + 190 + 176 + 222 + 199 + 240 + 187 + 163 + 201 + 1 310
        // = 46 482 ticks = 464.82 s.
        // policy4: below 1 510 400: 52 311 + 644 902 = 697 213 ticks = 6 972.13 s.
        assert_eq!(
            got,
            [
                row(Freq, "0", 1_510_400_000.0),
                row(Max, "0", 1_510_400_000.0),
                row(Below, "0", 464.82),
                row(Trans, "0", 19_876.0),
                row(Freq, "4", 729_600_000.0),
                row(Max, "4", 1_510_400_000.0),
                row(Below, "4", 6_972.13),
                row(Trans, "4", 57.0),
            ]
        );
    }

    #[test]
    fn bad_files_are_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let base = sys.join("devices/system/cpu/cpufreq");
        // policy2: garbage frequency, no cpuinfo_max_freq, a bad time_in_state row, and a
        // directory where total_trans should be (a read error, as EAGAIN would be).
        let p2 = base.join("policy2");
        std::fs::create_dir_all(p2.join("stats/total_trans")).unwrap();
        std::fs::write(p2.join("scaling_cur_freq"), "fast\n").unwrap();
        std::fs::write(p2.join("stats/time_in_state"), "408000 10\nx 5\n816000 7\n").unwrap();
        // policy10: no stats/ at all (CONFIG_CPU_FREQ_STAT off); its max is the fallback
        // for nothing, its values are good.
        let p10 = base.join("policy10");
        std::fs::create_dir_all(&p10).unwrap();
        std::fs::write(p10.join("scaling_cur_freq"), "600000\n").unwrap();
        std::fs::write(p10.join("cpuinfo_max_freq"), "1200000\n").unwrap();
        // Not a policy: ignored without a count.
        std::fs::create_dir_all(base.join("policyX")).unwrap();
        let (got, outcome) = collect(&sys);
        // policy2: cur (parse), max (missing), time_in_state (row 2), total_trans (read) =
        // 4 skips; policy10: 2 samples, numeric order (2 before 10).
        assert_eq!(outcome.skipped, 4);
        assert!(outcome.last_skip.is_some());
        assert_eq!(
            got,
            [
                row(Freq, "10", 600_000_000.0),
                row(Max, "10", 1_200_000_000.0)
            ]
        );
        // Without cpuinfo_max_freq the highest listed frequency is the maximum: 408 000's
        // 10 ticks below 816 000 = 0.1 s.
        std::fs::write(p2.join("stats/time_in_state"), "408000 10\n816000 7\n").unwrap();
        let (got, outcome) = collect(&sys);
        assert_eq!(outcome.skipped, 3);
        assert_eq!(got[0], row(Below, "2", 0.1));
    }

    #[test]
    fn nothing_to_read_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let e = CpufreqCollector::open(&sysfs_config(dir.path())).unwrap_err();
        assert!(
            matches!(&e, OpenError::Unavailable(why) if why.starts_with("no cpufreq policy under ")),
            "{e}"
        );
    }

    #[test]
    fn below_max_rules() {
        assert_eq!(below_max_ticks(b"", Some(1)), Ok(None));
        assert_eq!(below_max_ticks(b"", None), Ok(None));
        // Boost rows above cpuinfo_max_freq do not count as below it.
        assert_eq!(below_max_ticks(b"1 5\n2 7\n3 11\n", Some(2)), Ok(Some(5)));
        assert_eq!(below_max_ticks(b"1 5\n2 7\n3 11\n", None), Ok(Some(12)));
        let huge = b"1 18446744073709551615\n2 1\n3 0\n";
        assert!(below_max_ticks(huge, Some(3)).is_err());
        assert!(below_max_ticks(b"1 5\n2 7", Some(3)).is_err());
    }
}
