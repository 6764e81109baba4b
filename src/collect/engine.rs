//! soc_engine_{load_percent,frequency_hertz,max_frequency_hertz}{engine, device}: the GPU, NPU
//! and video engines of RK3588 and Jetson boards.
//!
//! Three sources, each optional, discovered once at start:
//! - devfreq (`<sysfs>/class/devfreq/*`): the entries whose name ends in `.gpu`/`.npu` or whose
//!   `device/of_node/name` is a GPU or NPU node (`gpu`, `gp10b`, `gv11b`, `ga10b`: nvgpu; `npu`,
//!   `rknpu`); the memory controller (`dmc`) and others are not engines. `cur_freq` and
//!   `max_freq` (Hz) for each; the load from the vendor kernel's `load` (`NN@FFFFHz`, empty when
//!   idle = 0 %) or nvgpu's `device/load` (per mille ÷ 10). Mainline kernels (panthor) have no
//!   load file: only the frequencies.
//! - the RK3588 NPU per core: `<sysfs>/kernel/debug/rknpu/load`, else `<procfs>/rknpu/load`
//!   (device `coreN`). debugfs is root-only: without access the rest runs and the reason is
//!   logged once at start.
//! - the RK3588 video codecs per core: `<procfs>/mpp_service/load` (device: the name without its
//!   address, numbered in file order among cores of the same name: `rkvenc-core0`). It prints a
//!   hint instead of rows until `load_interval` is armed: then nothing is emitted for MPP and
//!   that is logged once. If `load_interval` reads 0 and this process may write it, open arms
//!   it with [`MPP_LOAD_INTERVAL_MS`] (logged).
//!
//! A devfreq load above 100 % or an NPU core above 100 % (one device's busy share of a window)
//! is out of range: a counted skip, not clamped. MPP loads may exceed 100 (a multicore task
//! queue: mpp_service.c) and are kept. Any file that fails to read or parse is a counted skip of
//! its samples; the others are still reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use belabox_proc::{ParseError, devfreq, mpp, rknpu, sysfs};
use rustix::io::Errno;

use super::{
    CollectError, Collector, OpenError, Outcome, Source, SourceError, UnitLabels, label_value,
    optional_source, unit_labels,
};
use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, LabelValue, Metric};

/// devfreq engines tracked. RK3588 has 2 (GPU, NPU; its `dmc` is not an engine), Jetsons 1
/// (the GPU); more are ignored, counted as skips each tick. These three bounds size the sample
/// ring (collect::sizing): kept to what the boards have, with room.
pub const MAX_DEVFREQ: usize = 4;
/// NPU cores reported. RK3588 has 3, RK356x 1.
pub const MAX_NPU_CORES: usize = 4;
/// MPP cores reported. RK3588's mpp_service lists 9 (vepu, jpegd, jpege, iep, 2 rkvenc, 2
/// rkvdec, av1d).
pub const MAX_MPP_CORES: usize = 12;
/// What open writes into a `load_interval` that reads 0: the window of the MPP load, ms (the
/// value the driver's own hint suggests).
pub const MPP_LOAD_INTERVAL_MS: u32 = 1000;

/// devfreq `device/of_node/name` of GPU nodes (jetson-stats jtop/core/gpu.py `find_igpu`).
const GPU_NODES: &[&str] = &["gpu", "gk20a", "gm20b", "gp10b", "gv11b", "ga10b"];
const NPU_NODES: &[&str] = &["npu", "rknpu"];

#[derive(Debug)]
struct Devfreq {
    /// `gpu` or `npu`.
    engine: &'static str,
    /// `engine`, `device` (the devfreq name).
    labels: UnitLabels,
    /// Vendor `load` or nvgpu `device/load`; none on mainline kernels.
    load: Option<Source>,
    cur_freq: Source,
    max_freq: Option<Source>,
}

/// Tegra engine clocks in debugfs (`/sys/kernel/debug/clk/<name>/`, root): the Jetson
/// NVENC/NVDEC/NVJPG and DLA have no utilisation counter, so, as jetson-stats' `engine.py` does,
/// the clock says whether the engine runs (`clk_enable_count` > 0) and how fast (`clk_rate`).
const TEGRA_CLOCKS: &[(&str, &str)] = &[
    ("nvenc", "venc"),
    ("nvenc1", "venc"),
    ("nvdec", "vdec"),
    ("nvdec1", "vdec"),
    ("nvjpg", "jpeg"),
    ("nvjpg1", "jpeg"),
    // Xavier's and Orin's deep-learning accelerators: the NPU of these boards.
    ("dla0_core", "npu"),
    ("dla1_core", "npu"),
];

/// Most Tegra engine clocks tracked: every entry of [`TEGRA_CLOCKS`].
pub const MAX_TEGRA_CLOCKS: usize = 8;

#[derive(Debug)]
struct TegraClock {
    /// `engine` (`venc`, `vdec`, `jpeg`), `device` (the clock's name, `nvenc`).
    labels: UnitLabels,
    enable_count: Source,
    rate: Source,
    /// `clk_max_rate` (common clock framework debugfs, newer kernels).
    max_rate: Option<Source>,
}

#[derive(Debug)]
pub struct EngineCollector {
    devfreq: heapless::Vec<Devfreq, MAX_DEVFREQ>,
    tegra: heapless::Vec<TegraClock, MAX_TEGRA_CLOCKS>,
    /// Engines found but not tracked (too many devfreq entries).
    ignored: u32,
    npu: Option<Source>,
    mpp: Option<Source>,
    /// The "not armed" line is logged once.
    mpp_unarmed_logged: bool,
    /// Per tick: each MPP core name (without its address) seen so far and how many times.
    mpp_names: heapless::Vec<(LabelValue, u8), MAX_MPP_CORES>,
}

impl Collector for EngineCollector {
    fn open(config: &Config) -> Result<EngineCollector, OpenError> {
        let (devfreq, ignored) = discover_devfreq(&config.paths.sysfs);
        let npu_paths = [
            config.paths.sysfs.join("kernel/debug/rknpu/load"),
            config.paths.procfs.join("rknpu/load"),
        ];
        let (npu, npu_denied) = open_first(&npu_paths);
        let mpp_path = config.paths.procfs.join("mpp_service/load");
        let (mpp, mpp_denied) = open_first(std::slice::from_ref(&mpp_path));
        let (tegra, tegra_denied) = discover_tegra_clocks(&config.paths.sysfs);
        if let Some(why) = &tegra_denied {
            log::info!(collector = "engine"; "Jetson video engine clocks unavailable: {why}");
        }
        let has_npu_devfreq = devfreq.iter().any(|d| d.engine == "npu");
        if npu.is_none()
            && let Some(why) = &npu_denied
            && (has_npu_devfreq || config.paths.procfs.join("rknpu").exists())
        {
            log::info!(collector = "engine"; "NPU per-core load unavailable: {why}");
        }
        if devfreq.is_empty() && ignored == 0 && npu.is_none() && mpp.is_none() && tegra.is_empty()
        {
            return Err(OpenError::Unavailable(
                npu_denied
                    .or(mpp_denied)
                    .or(tegra_denied)
                    .unwrap_or_else(|| {
                        format!(
                            "no GPU or NPU under {}, no {}",
                            config.paths.sysfs.join("class/devfreq").display(),
                            mpp_path.display()
                        )
                    }),
            ));
        }
        let mut c = EngineCollector {
            devfreq,
            tegra,
            ignored,
            npu,
            mpp,
            mpp_unarmed_logged: false,
            mpp_names: heapless::Vec::new(),
        };
        if let Some(source) = c.mpp.as_mut() {
            let mut buf = vec![0u8; super::READ_BUF_SIZE];
            if let Ok(data) = source.read(&mut buf)
                && matches!(mpp::parse(data), mpp::MppLoad::IntervalUnset)
            {
                let interval = config.paths.procfs.join("mpp_service/load_interval");
                if arm_mpp(&interval) {
                    log::info!(collector = "engine", path:% = interval.display(); "armed the MPP load window: wrote {MPP_LOAD_INTERVAL_MS} ms");
                } else {
                    c.note_mpp_unarmed();
                }
            }
        }
        Ok(c)
    }

    fn max_samples(_: &Config) -> usize {
        // Three series per devfreq engine, one load per NPU or MPP core.
        let per_devfreq = CollectorKind::Engine.metrics().len();
        // A Tegra engine clock: frequency and, where the kernel has it, its maximum.
        MAX_DEVFREQ * per_devfreq + MAX_NPU_CORES + MAX_MPP_CORES + 2 * MAX_TEGRA_CLOCKS
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut o = Outcome::ignoring(self.ignored);
        for d in self.devfreq.iter_mut() {
            if let Some(load) = d.load.as_mut() {
                let percent = load.value(buf, devfreq::parse_load).and_then(|l| {
                    let permille = l.permille();
                    if permille > 1000 {
                        return Err(out_of_range(load, "load above 100 %"));
                    }
                    Ok(permille as f64 / 10.0)
                });
                o.push_result(out, ts_ms, &d.labels, Metric::SocEngineLoadPercent, percent);
            }
            let freq = d.cur_freq.value(buf, sysfs::parse_u64).map(|v| v as f64);
            o.push_result(out, ts_ms, &d.labels, Metric::SocEngineFrequencyHertz, freq);
            if let Some(max) = d.max_freq.as_mut() {
                let max = max.value(buf, sysfs::parse_u64).map(|v| v as f64);
                o.push_result(
                    out,
                    ts_ms,
                    &d.labels,
                    Metric::SocEngineMaxFrequencyHertz,
                    max,
                );
            }
        }
        for t in self.tegra.iter_mut() {
            // A clock that is not enabled runs the engine at 0 Hz, whatever its rate says.
            let enabled = t.enable_count.value(buf, sysfs::parse_u64);
            let freq = enabled.and_then(|n| {
                if n == 0 {
                    Ok(0.0)
                } else {
                    t.rate.value(buf, sysfs::parse_u64).map(|v| v as f64)
                }
            });
            o.push_result(out, ts_ms, &t.labels, Metric::SocEngineFrequencyHertz, freq);
            if let Some(max) = t.max_rate.as_mut() {
                let max = max.value(buf, sysfs::parse_u64).map(|v| v as f64);
                o.push_result(
                    out,
                    ts_ms,
                    &t.labels,
                    Metric::SocEngineMaxFrequencyHertz,
                    max,
                );
            }
        }
        if let Some(npu) = self.npu.as_mut() {
            collect_npu(npu, buf, ts_ms, out, &mut o);
        }
        if self.mpp.is_some() {
            self.collect_mpp(buf, ts_ms, out, &mut o);
        }
        if o.emitted == 0 && o.skipped > self.ignored {
            return Err(CollectError::AllFailed {
                what: "engine sources",
            });
        }
        Ok(o)
    }
}

impl EngineCollector {
    fn note_mpp_unarmed(&mut self) {
        if !self.mpp_unarmed_logged {
            self.mpp_unarmed_logged = true;
            log::info!(collector = "engine"; "mpp load_interval not armed (docs/install.md, Root-only sources)");
        }
    }

    fn collect_mpp(
        &mut self,
        buf: &mut [u8],
        ts_ms: i64,
        out: &mut dyn SampleSink,
        o: &mut Outcome,
    ) {
        let Some(source) = self.mpp.as_mut() else {
            return;
        };
        let data = match source.read(buf) {
            Ok(data) => data,
            Err(e) => return o.skip(e),
        };
        let rows = match mpp::parse(data) {
            mpp::MppLoad::Cores(rows) => rows,
            mpp::MppLoad::IntervalUnset => {
                // Not a skip: the source is fine, it measures nothing yet.
                return self.note_mpp_unarmed();
            }
        };
        self.mpp_names.clear();
        // A core's number depends on the rows above it: after a malformed row (whose name is
        // unknown) it is uncertain, so the rows below are skipped too rather than risk giving
        // one core's load another's label.
        let mut numbering_lost = false;
        for row in rows {
            let core = match row {
                Ok(core) if !numbering_lost => core,
                Ok(_) => {
                    o.skip(source.parse_error(malformed("row after a malformed row")));
                    continue;
                }
                Err(e) => {
                    numbering_lost = true;
                    o.skip(source.parse_error(e));
                    continue;
                }
            };
            // `fdbd0000.rkvenc-core` → `rkvenc-core`, numbered among its namesakes.
            let base = core.device.split_once('.').map_or(core.device, |(_, b)| b);
            let index = match self.mpp_names.iter_mut().find(|(n, _)| n == base) {
                Some((_, count)) => {
                    *count = count.saturating_add(1);
                    *count - 1
                }
                None => {
                    let Some(name) = label_value(base) else {
                        o.skip(source.parse_error(malformed("name longer than a label")));
                        continue;
                    };
                    if self.mpp_names.push((name, 1)).is_err() {
                        o.skip(source.parse_error(malformed("more MPP cores than MAX_MPP_CORES")));
                        continue;
                    }
                    0
                }
            };
            let mut device = LabelValue::new();
            let (Some(engine), Ok(())) = (
                label_value(mpp_engine(base)),
                write!(device, "{base}{index}"),
            ) else {
                o.skip(source.parse_error(malformed("name longer than a label")));
                continue;
            };
            let labels = unit_labels(&[(LabelKey::Engine, &engine), (LabelKey::Device, &device)]);
            o.push(
                out,
                ts_ms,
                &labels,
                Metric::SocEngineLoadPercent,
                core.load_percent(),
            );
        }
    }
}

fn collect_npu(
    source: &mut Source,
    buf: &mut [u8],
    ts_ms: i64,
    out: &mut dyn SampleSink,
    o: &mut Outcome,
) {
    let data = match source.read(buf) {
        Ok(data) => data,
        Err(e) => return o.skip(e),
    };
    let load = match rknpu::parse(data) {
        Ok(load) => load,
        Err(e) => return o.skip(source.parse_error(e)),
    };
    let mut engine = LabelValue::new();
    let _ = engine.push_str("npu");
    for core in load.cores() {
        let mut device = LabelValue::new();
        if core.index as usize >= MAX_NPU_CORES || write!(device, "core{}", core.index).is_err() {
            o.skip(source.parse_error(malformed("more NPU cores than MAX_NPU_CORES")));
            continue;
        }
        let percent = if core.percent > 100 {
            Err(out_of_range(source, "NPU core load above 100 %"))
        } else {
            Ok(f64::from(core.percent))
        };
        let labels = unit_labels(&[(LabelKey::Engine, &engine), (LabelKey::Device, &device)]);
        o.push_result(out, ts_ms, &labels, Metric::SocEngineLoadPercent, percent);
    }
}

/// The engine of an MPP core from its name: `rkvenc-core`, `vepu` → venc; `rkvdec-core`,
/// `av1d`, `vdpu` → vdec; `jpegd`, `jpege-core` → jpeg; others (`iep`) by their name.
fn mpp_engine(base: &str) -> &str {
    if base.contains("venc") || base.starts_with("vepu") {
        "venc"
    } else if base.contains("vdec") || base.starts_with("vdpu") || base == "av1d" {
        "vdec"
    } else if base.starts_with("jpeg") {
        "jpeg"
    } else {
        base.strip_suffix("-core").unwrap_or(base)
    }
}

/// `<sysfs>/class/devfreq/*` engines, in name order, and how many were left out (over
/// [`MAX_DEVFREQ`], or a name longer than a label).
fn discover_devfreq(sysfs: &Path) -> (heapless::Vec<Devfreq, MAX_DEVFREQ>, u32) {
    let dir = sysfs.join("class/devfreq");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    let mut found = heapless::Vec::new();
    let mut ignored = 0;
    for name in names {
        let ddir = dir.join(&name);
        let node = std::fs::read(ddir.join("device/of_node/name")).unwrap_or_default();
        let node = sysfs::parse_dt_string(&node).unwrap_or("");
        let suffix = name.rsplit('.').next().unwrap_or("");
        let engine = if GPU_NODES.contains(&node) || suffix == "gpu" {
            "gpu"
        } else if NPU_NODES.contains(&node) || suffix == "npu" {
            "npu"
        } else {
            continue;
        };
        let (Some(kind), Some(device)) = (label_value(engine), label_value(&name)) else {
            ignored += 1;
            continue;
        };
        let d = Devfreq {
            engine,
            labels: unit_labels(&[(LabelKey::Engine, &kind), (LabelKey::Device, &device)]),
            load: optional_source(ddir.join("load"))
                .or_else(|| optional_source(ddir.join("device/load"))),
            cur_freq: Source::watched(ddir.join("cur_freq")),
            max_freq: optional_source(ddir.join("max_freq")),
        };
        if found.push(d).is_err() {
            ignored += 1;
        }
    }
    (found, ignored)
}

/// The Tegra engine clocks of [`TEGRA_CLOCKS`] that exist and open under
/// `<sysfs>/kernel/debug/clk/`, and why one that exists could not be read (root-only debugfs).
fn discover_tegra_clocks(
    sysfs: &Path,
) -> (heapless::Vec<TegraClock, MAX_TEGRA_CLOCKS>, Option<String>) {
    let dir = sysfs.join("kernel/debug/clk");
    let mut found = heapless::Vec::new();
    let mut denied = None;
    for &(name, engine) in TEGRA_CLOCKS {
        let cdir = dir.join(name);
        let (enable_count, why) = open_first(&[cdir.join("clk_enable_count")]);
        denied = denied.or(why);
        let Some(enable_count) = enable_count else {
            continue;
        };
        let (Some(kind), Some(device)) = (label_value(engine), label_value(name)) else {
            continue;
        };
        let t = TegraClock {
            labels: unit_labels(&[(LabelKey::Engine, &kind), (LabelKey::Device, &device)]),
            enable_count,
            rate: Source::new(cdir.join("clk_rate")),
            max_rate: optional_source(cdir.join("clk_max_rate")),
        };
        // TEGRA_CLOCKS has MAX_TEGRA_CLOCKS entries: the push cannot fail.
        let _ = found.push(t);
    }
    (found, denied)
}

/// The first of `paths` that opens, or why none did: `Some(reason)` when one exists but may not
/// be read (the reason names it), `None` when none exists.
fn open_first(paths: &[PathBuf]) -> (Option<Source>, Option<String>) {
    let mut denied = None;
    for p in paths {
        match Source::open(p.clone()) {
            Ok(s) => return (Some(s), None),
            Err(e) => {
                let why = match &e {
                    SourceError::Open { errno, .. } if *errno == Errno::NOENT => None,
                    _ => match OpenError::from(e) {
                        OpenError::Unavailable(why) => Some(why),
                        other => Some(other.to_string()),
                    },
                };
                denied = denied.or(why);
            }
        }
    }
    (None, denied)
}

/// Writes [`MPP_LOAD_INTERVAL_MS`] into `load_interval` if it reads 0; true if it did.
fn arm_mpp(path: &Path) -> bool {
    let Ok(now) = std::fs::read(path) else {
        return false;
    };
    if sysfs::parse_u64(&now) != Ok(0) {
        return false;
    }
    match std::fs::write(path, format!("{MPP_LOAD_INTERVAL_MS}\n")) {
        Ok(()) => true,
        Err(e) => {
            log::debug!(path:% = path.display(), error:% = e; "cannot arm the MPP load window");
            false
        }
    }
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::Malformed { line: 1, what }
}

fn out_of_range(source: &Source, what: &'static str) -> CollectError {
    source.parse_error(malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn config(sysfs: &Path, procfs: &Path) -> Config {
        let mut config = Config::default();
        config.paths.sysfs = sysfs.to_path_buf();
        config.paths.procfs = procfs.to_path_buf();
        config
    }

    use crate::collect::tests::{Row, collect_rows, row};

    fn collect(c: &mut EngineCollector, ts: i64) -> (Vec<Row>, u32) {
        collect_rows(c, ts, [LabelKey::Engine, LabelKey::Device])
    }

    const LOAD: &str = "soc_engine_load_percent";
    const FREQ: &str = "soc_engine_frequency_hertz";
    const MAX: &str = "soc_engine_max_frequency_hertz";

    /// Every SoC tree, collected twice (the files do not change: the same values).
    #[test]
    fn fixture_trees() {
        let soc = fixtures().join("soc");
        let rock5b_proc = fixtures().join("rk3588-rock5b/proc");
        let nano_proc = fixtures().join("jetson-nano-l4t32/proc");
        let cases: [(&str, PathBuf, Vec<Row>); 4] = [
            (
                "rk3588-vendor",
                soc.join("rk3588-vendor/proc"),
                vec![
                    // fb000000.gpu/load "37@600000000Hz" = 37 %; cur_freq, max_freq as written.
                    row(LOAD, "gpu", "fb000000.gpu", 37.0),
                    row(FREQ, "gpu", "fb000000.gpu", 600_000_000.0),
                    row(MAX, "gpu", "fb000000.gpu", 1_000_000_000.0),
                    // fdab0000.npu/load is empty: no window yet, idle = 0 %.
                    row(LOAD, "npu", "fdab0000.npu", 0.0),
                    row(FREQ, "npu", "fdab0000.npu", 1_000_000_000.0),
                    row(MAX, "npu", "fdab0000.npu", 1_000_000_000.0),
                    // rknpu/load "Core0: 34%, Core1:  0%, Core2:  7%,".
                    row(LOAD, "npu", "core0", 34.0),
                    row(LOAD, "npu", "core1", 0.0),
                    row(LOAD, "npu", "core2", 7.0),
                    // mpp_service/load, the `load:` column, rows in file order; the address
                    // dropped, each name numbered among its namesakes (two rkvenc-core, two
                    // rkvdec-core); the decoder above 100 % is kept (multicore queue).
                    row(LOAD, "venc", "vepu0", 0.0),
                    row(LOAD, "jpeg", "jpegd0", 0.0),
                    row(LOAD, "jpeg", "jpege-core0", 1.52),
                    row(LOAD, "iep", "iep0", 0.0),
                    row(LOAD, "venc", "rkvenc-core0", 43.18),
                    row(LOAD, "venc", "rkvenc-core1", 39.66),
                    row(LOAD, "vdec", "rkvdec-core0", 112.5),
                    row(LOAD, "vdec", "rkvdec-core1", 0.0),
                    row(LOAD, "vdec", "av1d0", 0.0),
                ],
            ),
            (
                // panthor: no load file, no RKNPU, no MPP (the board capture's /proc).
                "rk3588-mainline",
                rock5b_proc,
                vec![
                    row(FREQ, "gpu", "fb000000.gpu", 300_000_000.0),
                    row(MAX, "gpu", "fb000000.gpu", 1_000_000_000.0),
                ],
            ),
            (
                // device/load 318 ‰ = 31.8 %.
                "jetson-nano",
                nano_proc.clone(),
                vec![
                    row(LOAD, "gpu", "57000000.gpu", 31.8),
                    row(FREQ, "gpu", "57000000.gpu", 76_800_000.0),
                    row(MAX, "gpu", "57000000.gpu", 921_600_000.0),
                    // debugfs clk/nvenc: enabled (count 1) at 716.8 MHz; nvdec and nvjpg
                    // disabled (count 0): 0 Hz whatever their rate. No clk_max_rate on 4.9.
                    row(FREQ, "venc", "nvenc", 716_800_000.0),
                    row(FREQ, "vdec", "nvdec", 0.0),
                    row(FREQ, "jpeg", "nvjpg", 0.0),
                ],
            ),
            (
                // of_node/name "ga10b" (the devfreq name does not say gpu); 452 ‰ = 45.2 %.
                "jetson-orin",
                nano_proc,
                vec![
                    row(LOAD, "gpu", "17000000.ga10b", 45.2),
                    row(FREQ, "gpu", "17000000.ga10b", 624_750_000.0),
                    row(MAX, "gpu", "17000000.ga10b", 624_750_000.0),
                    // clk/nvenc enabled at 115.2 MHz, nvdec (count 2) at 345.6 MHz; both
                    // with clk_max_rate 1152 MHz.
                    row(FREQ, "venc", "nvenc", 115_200_000.0),
                    row(MAX, "venc", "nvenc", 1_152_000_000.0),
                    row(FREQ, "vdec", "nvdec", 345_600_000.0),
                    row(MAX, "vdec", "nvdec", 1_152_000_000.0),
                    // clk/dla0_core not enabled: the DLA is idle, 0 Hz.
                    row(FREQ, "npu", "dla0_core", 0.0),
                    row(MAX, "npu", "dla0_core", 1_600_000_000.0),
                ],
            ),
        ];
        for (name, procfs, want) in cases {
            let mut c = EngineCollector::open(&config(&soc.join(name).join("sys"), &procfs))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(want.len() <= EngineCollector::max_samples(&Config::default()));
            for ts in [1_000, 2_000] {
                assert_eq!(collect(&mut c, ts), (want.clone(), 0), "{name}");
            }
        }
    }

    #[test]
    fn nothing_to_read_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        // A devfreq that is no engine (the memory controller) does not count.
        let dmc = dir.path().join("class/devfreq/dmc");
        std::fs::create_dir_all(&dmc).unwrap();
        std::fs::write(dmc.join("cur_freq"), "2112000000\n").unwrap();
        match EngineCollector::open(&config(dir.path(), dir.path())) {
            Err(OpenError::Unavailable(why)) => assert_eq!(
                why,
                format!(
                    "no GPU or NPU under {}, no {}",
                    dir.path().join("class/devfreq").display(),
                    dir.path().join("mpp_service/load").display()
                )
            ),
            other => panic!("{other:?}"),
        }
    }

    /// Bad files and out-of-range values are counted skips; the rest is reported.
    #[test]
    fn hostile_files_are_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let (sysfs, procfs) = (dir.path().join("sys"), dir.path().join("proc"));
        let gpu = sysfs.join("class/devfreq/fb000000.gpu");
        let npu = sysfs.join("class/devfreq/fdab0000.npu");
        std::fs::create_dir_all(&gpu).unwrap();
        std::fs::create_dir_all(&npu).unwrap();
        // Garbage load; a directory in place of cur_freq (EISDIR on read); a good max_freq.
        std::fs::write(gpu.join("load"), "busy\n").unwrap();
        std::fs::create_dir(gpu.join("cur_freq")).unwrap();
        std::fs::write(gpu.join("max_freq"), "1000000000\n").unwrap();
        // A load above 100 % is out of range; cur_freq missing (vanished after open: a skip).
        std::fs::write(npu.join("load"), "101@1000000000Hz\n").unwrap();
        let rknpu = sysfs.join("kernel/debug/rknpu");
        std::fs::create_dir_all(&rknpu).unwrap();
        std::fs::write(rknpu.join("load"), "NPU load:  Core0: 150%, Core1:  3%,\n").unwrap();
        let mpp = procfs.join("mpp_service");
        std::fs::create_dir_all(&mpp).unwrap();
        std::fs::write(
            mpp.join("load"),
            "fdbd0000.rkvenc-core      load:  43.18% utilization:  41.07%\n\
             fdbe0000.rkvenc-core      load:  4x.00% utilization:  37.25%\n\
             fdbe0000.rkvenc-core      load:  12.00% utilization:  11.25%\n",
        )
        .unwrap();
        let mut c = EngineCollector::open(&config(&sysfs, &procfs)).unwrap();
        for ts in [1_000, 2_000] {
            let (rows, skipped) = collect(&mut c, ts);
            assert_eq!(
                rows,
                [
                    row(MAX, "gpu", "fb000000.gpu", 1_000_000_000.0),
                    row(LOAD, "npu", "core1", 3.0),
                    row(LOAD, "venc", "rkvenc-core0", 43.18),
                ]
            );
            // gpu load, gpu cur_freq, npu load (101 %), npu cur_freq, core0 (150 %), mpp row 2
            // (malformed) and row 3 (its number is uncertain after row 2).
            assert_eq!(skipped, 7);
        }
    }

    /// The hint instead of rows: nothing for MPP, not a skip; a `load_interval` that reads 0 and
    /// may be written is armed at open.
    #[test]
    fn unarmed_mpp_emits_nothing_and_is_armed_when_writable() {
        let dir = tempfile::tempdir().unwrap();
        let mpp = dir.path().join("mpp_service");
        std::fs::create_dir_all(&mpp).unwrap();
        std::fs::write(
            mpp.join("load"),
            "please set load_interval first!!!\n\
             e.g. set 1000ms to load_interval:\n\
             echo 1000 > /proc/mpp_service/load_interval\n",
        )
        .unwrap();
        // Without load_interval: runs, emits nothing, fails nothing.
        let mut c = EngineCollector::open(&config(dir.path(), dir.path())).unwrap();
        assert!(c.mpp_unarmed_logged);
        assert_eq!(collect(&mut c, 1_000), (vec![], 0));
        // Reads 0 and is writable: armed with 1000 ms.
        std::fs::write(mpp.join("load_interval"), "0\n").unwrap();
        let mut c = EngineCollector::open(&config(dir.path(), dir.path())).unwrap();
        assert_eq!(
            std::fs::read_to_string(mpp.join("load_interval")).unwrap(),
            "1000\n"
        );
        assert!(!c.mpp_unarmed_logged);
        // The fixture does not change: still the hint, noted once now.
        assert_eq!(collect(&mut c, 1_000), (vec![], 0));
        assert!(c.mpp_unarmed_logged);
        // Already non-zero: left alone.
        std::fs::write(mpp.join("load_interval"), "500\n").unwrap();
        EngineCollector::open(&config(dir.path(), dir.path())).unwrap();
        assert_eq!(
            std::fs::read_to_string(mpp.join("load_interval")).unwrap(),
            "500\n"
        );
    }

    #[test]
    fn mpp_engines() {
        for (name, engine) in [
            ("rkvenc-core", "venc"),
            ("vepu", "venc"),
            ("vepu2", "venc"),
            ("rkvdec-core", "vdec"),
            ("vdpu", "vdec"),
            ("av1d", "vdec"),
            ("jpegd", "jpeg"),
            ("jpege-core", "jpeg"),
            ("iep", "iep"),
            ("rga-core", "rga"),
        ] {
            assert_eq!(mpp_engine(name), engine, "{name}");
        }
    }
}
