//! CPU of **the agent process** while its store fails, against the same agent healthy (issue 26
//! item 1: a failing disk must not cost a core).
//!
//! The agent binary this build made runs on the rk3588 capture every 200 ms (flush 300 ms, no
//! uploads) with its store on a 6 MiB tmpfs this bench mounts (root needed; unmounted even when
//! the bench panics). After a warm-up (`BENCH_WARMUP`, default 3 s) the window
//! (`BENCH_SECONDS`, default 10) is measured healthy; then the tmpfs is filled until /health
//! reports no space, and after the same warm-up the window is measured again.
//!
//! CPU: the sum of the first field of `/proc/PID/task/*/schedstat` (ns on a CPU, every thread
//! of the process) over the window, per second. Iterations: `agent_loop_iterations_total` of
//! `/metrics` over the window, per second.
//!
//! `BENCH_AGENT=/path/to/belabox-metrics` measures another build of the agent (an earlier
//! commit's release binary: the figures before a change).
//!
//! One figure per line: `cpu_ms_per_s_healthy 0.41`, `cpu_ms_per_s_store_failing 0.52`,
//! `failing_over_healthy 1.27`, `loop_iterations_per_s_…`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::agent::{Agent, SmallDisk};
use support::{cpu_ns, env_secs};

/// (CPU ms per second, loop iterations per second) over `window`.
fn measure(agent: &mut Agent, window: Duration) -> (f64, f64) {
    let it0 = agent.metric("agent_loop_iterations_total").unwrap();
    let (cpu0, t0) = (cpu_ns(agent.pid()), Instant::now());
    std::thread::sleep(window);
    let (cpu1, secs) = (cpu_ns(agent.pid()), t0.elapsed().as_secs_f64());
    let it1 = agent.metric("agent_loop_iterations_total").unwrap();
    agent.assert_running();
    ((cpu1 - cpu0) as f64 / 1e6 / secs, (it1 - it0) / secs)
}

fn main() {
    let warmup = env_secs("BENCH_WARMUP", 3);
    let window = env_secs("BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(dir.path(), "6m", "outage-bench", "200ms");
    let log = dir.path().join("agent.log");
    let bin = std::env::var_os("BENCH_AGENT").map_or_else(support::bin, Into::into);
    let mut agent = Agent::spawn_bin(&bin, &disk.cfg, disk.health, &log);
    std::thread::sleep(warmup);
    let (healthy, healthy_it) = measure(&mut agent, window);

    agent.fill_until_no_space(&disk.mnt.join("filler"));
    std::thread::sleep(warmup);
    let (failing, failing_it) = measure(&mut agent, window);
    drop(agent);

    println!("cpu_ms_per_s_healthy {healthy:.3}");
    println!("cpu_ms_per_s_store_failing {failing:.3}");
    println!("failing_over_healthy {:.2}", failing / healthy.max(1e-9));
    println!("loop_iterations_per_s_healthy {healthy_it:.1}");
    println!("loop_iterations_per_s_store_failing {failing_it:.1}");
}
