#!/usr/bin/env python3
"""Side-by-side resource benchmark: belabox-metrics vs prometheus-node-exporter.

Started by benches/resources.sh (which installs the Debian packages and builds the agent).
In ONE run, all at the same time, so machine noise hits every process alike:
  - VictoriaMetrics (loopback, temp dir) as the upload target;
  - agent "remote": 1 s collection, store, uploads every 30 s to that VictoriaMetrics;
  - agent "local":  1 s collection and store only (no [remote], clock skew check off);
  - node_exporter with the same collector families, scraped every 1 s by this process.
This process (sampler and scraper) is not measured.

Figures (one per line, `name value`), then a Markdown table:
  RSS peak   = VmHWM at the end (whole life of the process, start-up included);
  RSS steady = median VmRSS sampled every 1 s over the last 30 s (or the last half if shorter);
  CPU        = delta of utime+stime (/proc/PID/stat, clock ticks) over the measurement window,
               divided by the window's wall seconds; start-up is outside the window.
Python 3.11, stdlib only.
"""

import argparse
import ctypes
import gzip
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import shutil
import ssl

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

GOAL_RSS_KIB = 4 * 1024
GOAL_CPU_PCT = 0.05

NODE_EXPORTER_COLLECTORS = [
    # The agent's families: cpu, memory, disk, network, thermal, load, uptime.
    "cpu", "meminfo", "diskstats", "netdev", "thermal_zone", "loadavg",
    # uptime = node_time_seconds (time) - node_boot_time_seconds (stat).
    "stat", "time",
]

CHILDREN = []  # (name, Popen), in start order; stopped in reverse order.


def log(msg):
    print(f"resources: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: a child gets SIGTERM if this harness dies (even by SIGKILL).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def start(name, argv, logdir, env=None):
    out = open(os.path.join(logdir, f"{name}.log"), "wb")
    full_env = dict(os.environ, **env) if env else None
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         preexec_fn=_die_with_parent, close_fds=True, env=full_env)
    out.close()
    CHILDREN.append((name, p))
    log(f"started {name} pid {p.pid}: {' '.join(argv)}")
    return p


def stop_all():
    """SIGTERM each child we started (by PID), then SIGKILL the ones still alive after 10 s."""
    for name, p in reversed(CHILDREN):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for name, p in reversed(CHILDREN):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} pid {p.pid} ignored SIGTERM; killing it")
            p.kill()
            p.wait()
    CHILDREN.clear()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ports served over https (--https: VictoriaMetrics with -tls), with the context trusting the CA.
HTTPS_PORTS = {}


def http_get(port, path, timeout=2.0, headers=None):
    if port in HTTPS_PORTS:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=HTTPS_PORTS[port])
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_http(port, path, proc, name, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before answering {path}")
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer http://127.0.0.1:{port}{path} within {timeout:.0f} s")


# ---------------------------------------------------------------- /proc readers


def cpu_ticks(pid):
    """utime + stime of the whole process (every thread, exited ones included), clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # fields 14 and 15


def thread_runtime_ns(pid):
    """{tid: sum_exec_runtime ns} of the live threads (/proc/PID/task/TID/schedstat)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


class RuntimeTracker:
    """CPU time in ns over the window, from per-thread schedstat sampled every second: far finer
    than clock ticks. A thread that exits loses at most its last second, so this is a lower bound
    (the utime+stime figure, which keeps exited threads, is the headline)."""

    def __init__(self, pid):
        self.pid = pid
        self.first = thread_runtime_ns(pid)
        self.last = dict(self.first)

    def sample(self):
        self.last.update(thread_runtime_ns(self.pid))

    def ns(self):
        return sum(v - self.first.get(tid, 0) for tid, v in self.last.items())


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads"):
                out[k] = int(v.split()[0])
    return out


def smaps_rollup_kib(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def thread_cpu(pid):
    """{thread name: CPU seconds since start} of the live threads (same names summed)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index(b"(") + 1:raw.rindex(b")")].decode(errors="replace")
        rest = raw.rsplit(b")", 1)[1].split()
        out[comm] = out.get(comm, 0.0) + (int(rest[11]) + int(rest[12])) / CLK_TCK
    return out


def top_mappings(pid, n):
    """The n mappings with the largest Rss: (rss_kib, anon_kib, size_kib, name)."""
    maps, cur = [], None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(maxsplit=1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split(maxsplit=5)
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    name = parts[5].strip() if len(parts) > 5 else "[anon]"
                    cur = {"name": f"{name} {parts[1]}", "size": (hi - lo) // 1024, "rss": 0, "anon": 0}
                    maps.append(cur)
                elif first == "Rss:":
                    cur["rss"] = int(line.split()[1])
                elif first == "Anonymous:":
                    cur["anon"] = int(line.split()[1])
    except OSError:
        return []
    maps.sort(key=lambda m: m["rss"], reverse=True)
    return [(m["rss"], m["anon"], m["size"], m["name"]) for m in maps[:n]]


def prom_value(text, prefix):
    """Sum of the values of every exposition line starting with `prefix`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(prefix) and not line.startswith("#"):
            try:
                total += float(line.rsplit(None, 1)[1])
                found = True
            except (IndexError, ValueError):
                pass
    return total if found else None


# ---------------------------------------------------------------- scraper


class Scraper(threading.Thread):
    """GET node_exporter /metrics every second on a kept-alive connection, like Prometheus or
    vmagent (they ask for gzip too)."""

    def __init__(self, port, use_gzip):
        super().__init__(daemon=True)
        self.port, self.use_gzip = port, use_gzip
        self.stop = threading.Event()
        self.scrapes = self.errors = 0
        self.samples = []
        self.bytes = []

    def run(self):
        conn = None
        headers = {"Accept-Encoding": "gzip"} if self.use_gzip else {}
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/metrics", headers=headers)
                r = conn.getresponse()
                body = r.read()
                self.bytes.append(len(body))
                if r.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                self.samples.append(sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#")))
                self.scrapes += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            next_at += 1.0
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------- main


def make_tls(tmp):
    """A CA and a server certificate for 127.0.0.1 (openssl): (ca.pem, server.crt, server.key)."""
    ca_key, ca, key, csr, crt, ext = (f"{tmp}/{n}" for n in
                                      ("ca.key", "ca.pem", "vm.key", "vm.csr", "vm.crt", "ext"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run_q = lambda a: subprocess.run(a, check=True, capture_output=True, timeout=30)
    run_q(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bench CA", "-keyout", ca_key, "-out", ca])
    run_q(["openssl", "req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr])
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run_q(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
           "-days", "2", "-extfile", ext, "-out", crt])
    return ca, crt, key


def fresh_copy(binary, tmp):
    """A copy of the agent binary in the temp dir (so that dropping its page cache touches no
    other process's file)."""
    dst = os.path.join(tmp, "belabox-metrics")
    shutil.copy2(binary, dst)
    return dst


def drop_page_cache(path):
    """Evicts the file's clean pages (fsync, then POSIX_FADV_DONTNEED), so that the agents map it
    as a service started after a boot does: through readahead, not through whatever folios the
    linker's or cp's writes left. The kernel maps a whole page-cache folio on a fault, and the
    folios a write leaves are not those readahead makes: one store-only agent, 4 s after start,
    was 5308 KiB from a just-written binary and 4860 KiB from the same file read back
    (2026-12-01, kernel 6.18, ext4; docs/benchmarks.md). Without this step a figure would depend
    on how the binary got onto the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def agent_config(path, store, health_port, vm_port, ca_file=None):
    remote = ""
    skew = 'clock_skew_url = "off"'
    if vm_port is not None:
        scheme = "https" if ca_file else "http"
        remote = (f'\n[remote]\nurl = "{scheme}://127.0.0.1:{vm_port}/api/v1/import"\n'
                  'upload_interval = "30s"\n')
        if ca_file:
            remote += f'ca_file = "{ca_file}"\n'
        skew = ""  # default: derived from remote.url (VictoriaMetrics /health, every 5 min)
    with open(path, "w") as f:
        f.write(f"""# written by benches/resources.py
[device]
id = "bench-{'remote' if vm_port is not None else 'local'}"

[collect]
interval = "1s"

[storage]
path = "{store}"
flush_interval = "10s"
{os.environ.get("BENCH_STORAGE", "")}
{remote}
[health]
enabled = true
address = "127.0.0.1:{health_port}"

[monitoring]
{skew}
""")


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.strip() in ("model name", "Model", "Hardware") and v.strip():
                model = v.strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": os.uname().release,
        "arch": os.uname().machine,
        "ram_mib": mem_kib // 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="measurement window (default 60)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="seconds after every process answers before the window opens (default 5)")
    ap.add_argument("--agent", default="target/release/belabox-metrics", help="agent binary")
    ap.add_argument("--node-exporter", default="prometheus-node-exporter")
    ap.add_argument("--victoria-metrics", default="victoria-metrics")
    ap.add_argument("--no-gzip", action="store_true", help="scrape node_exporter without gzip")
    ap.add_argument("--detail", action="store_true",
                    help="also print per-thread CPU and the largest mappings of each agent")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="run the agent binary where it is, with whatever page cache it has (by "
                         "default a copy in the temp dir whose page cache is dropped first)")
    ap.add_argument("--https", action="store_true",
                    help="VictoriaMetrics with -tls (a CA made with openssl); the agent uploads "
                         "over https trusting it through remote.ca_file")
    args = ap.parse_args()
    if args.seconds < 10:
        ap.error("--seconds must be at least 10")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: sys.exit(128 + s))

    tmp = tempfile.mkdtemp(prefix="bbm-resources-")
    try:
        return run(args, tmp)
    except Exception:
        args.keep = True  # a failed run: the logs say why
        raise
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp):
    vm_port, ne_port, h_remote, h_local = free_port(), free_port(), free_port(), free_port()
    logdir = tmp
    if not args.warm_cache:
        args.agent = fresh_copy(args.agent, tmp)
    # Samples per tick: `once` prints one JSONL line per sample of a tick.
    once = subprocess.run([args.agent, "once", "--delay", "200"], capture_output=True, timeout=30)
    per_tick = sum(1 for ln in once.stdout.splitlines() if ln.strip())
    tls_args, ca_file = [], None
    if args.https:
        ca_file, crt, key = make_tls(tmp)
        tls_args = ["-tls", f"-tlsCertFile={crt}", f"-tlsKeyFile={key}"]
        HTTPS_PORTS[vm_port] = ssl.create_default_context(cafile=ca_file)
    vm = start("victoria-metrics", [
        args.victoria_metrics, f"-storageDataPath={tmp}/vm", f"-httpListenAddr=127.0.0.1:{vm_port}",
        "-retentionPeriod=100y", "-search.latencyOffset=0", "-dedup.minScrapeInterval=1ms",
        *tls_args,
    ], logdir)
    wait_http(vm_port, "/health", vm, "victoria-metrics")

    ne = start("node_exporter", [
        args.node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}",
        "--collector.disable-defaults", "--web.disable-exporter-metrics",
        *[f"--collector.{c}" for c in NODE_EXPORTER_COLLECTORS],
    ], logdir)

    cfg_r, cfg_l = f"{tmp}/agent-remote.toml", f"{tmp}/agent-local.toml"
    agent_config(cfg_r, f"{tmp}/agent-remote/metrics.redb", h_remote, vm_port, ca_file)
    agent_config(cfg_l, f"{tmp}/agent-local/metrics.redb", h_local, None)
    # As systemd/belabox-metrics.service runs it: one glibc malloc arena (no effect on musl).
    agent_env = {"MALLOC_ARENA_MAX": "1"}
    if not args.warm_cache:
        drop_page_cache(args.agent)
    ar = start("agent-remote", [args.agent, "run", "--config", cfg_r], logdir, agent_env)
    al = start("agent-local", [args.agent, "run", "--config", cfg_l], logdir, agent_env)

    wait_http(ne_port, "/metrics", ne, "node_exporter")
    wait_http(h_remote, "/health/live", ar, "agent-remote")
    wait_http(h_local, "/health/live", al, "agent-local")

    scraper = Scraper(ne_port, not args.no_gzip)
    scraper.start()
    time.sleep(args.warmup)

    procs = {"agent": ar, "agent_local": al, "node_exporter": ne}
    rss = {k: [] for k in procs}  # (t since window start, VmRSS KiB)
    t0 = time.monotonic()
    cpu0 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
    rt = {k: RuntimeTracker(p.pid) for k, p in procs.items()}
    log(f"measuring for {args.seconds} s")
    next_at = t0
    while True:
        now = time.monotonic()
        for k, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{k} exited with {p.returncode} during the run (logs: {logdir})")
            rss[k].append((now - t0, status_kib(p.pid)["VmRSS"]))
            rt[k].sample()
        if now - t0 >= args.seconds:
            break
        next_at += 1.0
        time.sleep(max(0.0, min(next_at, t0 + args.seconds) - time.monotonic()))
    t1 = time.monotonic()
    cpu1 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
    for r in rt.values():
        r.sample()
    wall = t1 - t0
    scraper.stop.set()
    scraper.join(timeout=10)

    # End-of-run snapshots, while every process is still alive.
    status = {k: status_kib(p.pid) for k, p in procs.items()}
    rollup = {k: smaps_rollup_kib(p.pid) for k, p in procs.items()}
    threads = {k: thread_cpu(procs[k].pid) for k in ("agent", "agent_local")}
    maps = {k: top_mappings(procs[k].pid, 12) for k in ("agent", "agent_local")} if args.detail else {}
    total_cpu = {k: cpu1[k] / CLK_TCK for k in procs}

    agent_metrics = {}
    for k, port in (("agent", h_remote), ("agent_local", h_local)):
        try:
            agent_metrics[k] = http_get(port, "/metrics")[1].decode()
        except OSError:
            agent_metrics[k] = ""
    try:
        http_get(vm_port, "/internal/force_flush", timeout=10)
        vm_metrics = http_get(vm_port, "/metrics", timeout=10)[1].decode()
    except OSError:
        vm_metrics = ""

    # ---- figures
    steady_span = min(30.0, args.seconds / 2)
    res = {}
    for k in procs:
        last = [v for t, v in rss[k] if t >= wall - steady_span]
        res[k] = {
            "rss_peak_kib": status[k]["VmHWM"],
            "rss_steady_kib": int(statistics.median(last)),
            "rss_anon_kib": status[k].get("RssAnon", 0),
            "rss_file_kib": status[k].get("RssFile", 0),
            "pss_kib": rollup[k].get("Pss", 0),
            "threads": status[k].get("Threads", 0),
            "cpu_s": (cpu1[k] - cpu0[k]) / CLK_TCK,
        }
        res[k]["cpu_s_per_s"] = res[k]["cpu_s"] / wall
        res[k]["cpu_sched_s_per_s"] = rt[k].ns() / 1e9 / wall
    m = machine_info()
    fig = []  # (name, value)
    for k, v in m.items():
        fig.append((f"machine_{k}", v))
    fig += [("window_s", f"{wall:.1f}"), ("warmup_s", f"{args.warmup:g}"),
            ("cpu_tick_s", f"{1 / CLK_TCK:g}"),
            ("cpu_resolution_pct_core", f"{100 / CLK_TCK / wall:.4f}")]
    for k in procs:
        r = res[k]
        fig += [
            (f"{k}_rss_peak_kib", r["rss_peak_kib"]),
            (f"{k}_rss_steady_kib", r["rss_steady_kib"]),
            (f"{k}_rss_anon_kib", r["rss_anon_kib"]),
            (f"{k}_rss_file_kib", r["rss_file_kib"]),
            (f"{k}_pss_kib", r["pss_kib"]),
            (f"{k}_threads", r["threads"]),
            (f"{k}_cpu_s", f"{r['cpu_s']:.2f}"),
            (f"{k}_cpu_s_per_s", f"{r['cpu_s_per_s']:.6f}"),
            (f"{k}_cpu_pct_core", f"{100 * r['cpu_s_per_s']:.4f}"),
            (f"{k}_cpu_schedstat_s_per_s", f"{r['cpu_sched_s_per_s']:.6f}"),
            (f"{k}_cpu_schedstat_pct_core", f"{100 * r['cpu_sched_s_per_s']:.4f}"),
            (f"{k}_cpu_total_s_since_start", f"{total_cpu[k]:.2f}"),
        ]
    for k in ("agent", "agent_local"):
        for key in ("rss_peak_kib", "rss_steady_kib", "cpu_s_per_s"):
            den = res["node_exporter"][key]
            fig.append((f"ratio_{k}_over_node_exporter_{key.replace('_kib', '').replace('_s_per_s', '')}",
                        f"{res[k][key] / den:.4f}" if den else "inf"))
    fig += [
        ("agent_samples_per_tick", per_tick),
        ("agent_samples_stored_total", int(prom_value(agent_metrics["agent"], "collector_metrics_collected_total") or 0)),
        ("agent_ticks_total", int(prom_value(agent_metrics["agent"], "collector_collection_duration_seconds_count") or 0)),
        ("agent_samples_uploaded_total", int(prom_value(agent_metrics["agent"], "uploader_metrics_uploaded_total") or 0)),
        ("agent_upload_failures_total", int(prom_value(agent_metrics["agent"], "uploader_upload_failures_total") or 0)),
        ("agent_upload_bytes_total", int(prom_value(agent_metrics["agent"], "uploader_bytes_sent_total") or 0)),
        ("vm_rows_inserted_vmimport", int(prom_value(vm_metrics, 'vm_rows_inserted_total{type="vmimport"}') or 0)),
        ("vm_rows_invalid_total", int(prom_value(vm_metrics, "vm_rows_invalid_total") or 0)),
        ("vm_rows_ignored_total", int(prom_value(vm_metrics, "vm_rows_ignored_total") or 0)),
        ("node_exporter_scrapes", scraper.scrapes),
        ("node_exporter_scrape_errors", scraper.errors),
        ("node_exporter_samples_per_scrape", int(statistics.median(scraper.samples)) if scraper.samples else 0),
        ("node_exporter_scrape_bytes", int(statistics.median(scraper.bytes)) if scraper.bytes else 0),
        ("node_exporter_scrape_gzip", 0 if args.no_gzip else 1),
        ("agent_goal_rss_kib", GOAL_RSS_KIB),
        ("agent_goal_cpu_pct_core", GOAL_CPU_PCT),
    ]
    for k in ("agent", "agent_local"):
        fig += [
            (f"{k}_meets_rss_goal", int(max(res[k]["rss_peak_kib"], res[k]["rss_steady_kib"]) <= GOAL_RSS_KIB)),
            (f"{k}_meets_cpu_goal", int(100 * res[k]["cpu_s_per_s"] <= GOAL_CPU_PCT)),
        ]
    if args.detail:
        for k in ("agent", "agent_local"):
            for comm, s in sorted(threads[k].items(), key=lambda x: -x[1]):
                fig.append((f"{k}_thread_cpu_s_since_start[{comm}]", f"{s:.2f}"))
            for key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous", "Private_Dirty", "Shared_Clean"):
                if key in rollup[k]:
                    fig.append((f"{k}_smaps_rollup_{key}_kib", rollup[k][key]))
            for i, (r_kib, anon, size, name) in enumerate(maps[k]):
                fig.append((f"{k}_mapping_{i:02}", f"rss={r_kib}KiB anon={anon}KiB size={size}KiB {name}"))

    for name, value in fig:
        print(f"{name} {value}")

    # ---- Markdown table
    def row(label, r):
        return (f"| {label} | {r['rss_peak_kib']} | {r['rss_steady_kib']} | {r['cpu_s']:.2f} | "
                f"{r['cpu_s_per_s']:.6f} | {100 * r['cpu_s_per_s']:.3f} % | "
                f"{100 * r['cpu_sched_s_per_s']:.4f} % |")

    def ratio(label, a, b):
        def q(key):
            return f"{a[key] / b[key]:.3f}" if b[key] else "∞"
        return (f"| {label} | {q('rss_peak_kib')} | {q('rss_steady_kib')} | — | "
                f"{q('cpu_s_per_s')} | {q('cpu_s_per_s')} | {q('cpu_sched_s_per_s')} |")

    per = samples_note(per_tick, scraper)
    print()
    print(f"Window {wall:.1f} s after a {args.warmup:g} s warm-up; RSS steady = median VmRSS over the "
          f"last {steady_span:.0f} s; CPU = Δ(utime+stime) / wall, resolution {100 / CLK_TCK / wall:.3f} % "
          f"of a core. {per}")
    print()
    print("| process | RSS peak (VmHWM) KiB | RSS steady (median VmRSS) KiB | CPU s in window | CPU s/s | "
          "% of one core | % of one core (schedstat ns) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("belabox-metrics, 1 s, store + upload to VictoriaMetrics", res["agent"]))
    print(row("belabox-metrics, 1 s, store only (no [remote])", res["agent_local"]))
    print(row("node_exporter 1.5.0, same families, scraped every 1 s", res["node_exporter"]))
    print(ratio("ratio agent (upload) / node_exporter", res["agent"], res["node_exporter"]))
    print(ratio("ratio agent (store only) / node_exporter", res["agent_local"], res["node_exporter"]))
    print(f"| goal for the agent | ≤ {GOAL_RSS_KIB} | ≤ {GOAL_RSS_KIB} | — | ≤ {GOAL_CPU_PCT / 100:.4f} | "
          f"≤ {GOAL_CPU_PCT} % | ≤ {GOAL_CPU_PCT} % |")
    return 0


def samples_note(per_tick, scraper):
    parts = []
    if per_tick:
        parts.append(f"agent {per_tick} samples per tick")
    if scraper.samples:
        parts.append(f"node_exporter {int(statistics.median(scraper.samples))} samples per scrape "
                     f"({'gzip' if scraper.use_gzip else 'plain'}, {scraper.scrapes} scrapes, "
                     f"{scraper.errors} errors)")
    return "; ".join(parts) + "." if parts else ""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        log(f"error: {e}")
        sys.exit(1)
