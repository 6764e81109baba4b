#!/usr/bin/env python3
"""Side-by-side resource benchmark: belabox-metrics vs node_exporter, collectd and vmagent.

Started by benches/resources.sh (which installs the Debian packages and builds the agent).
In ONE run, all at the same time, so machine noise hits every process alike:
  - VictoriaMetrics (loopback, temp dir) as the upload target;
  - agent "remote": 1 s collection, store, uploads every 30 s to that VictoriaMetrics;
  - agent "local":  1 s collection and store only (no [remote], clock skew check off);
  - node_exporter with the same collector families, scraped every 1 s by this process;
  - collectd (cpu, memory, disk, interface, load, thermal when the machine has zones) at
    Interval 1, csv plugin writing into the temp dir: it keeps its values on storage, as the
    agent does; no network plugin;
  - vmagent scraping a SECOND node_exporter (same collectors) every 1 s and remote-writing to the
    VictoriaMetrics, its on-disk buffer (-remoteWrite.tmpDataPath) in the temp dir.
This process (sampler, scraper, and the pipes that carry every child's log into the temp dir, so
that log lines are charged to the harness, as journald would be, not to the child) is not
measured.

Windows: "up" (--seconds), then with --outage S VictoriaMetrics is stopped (SIGTERM) for a
"down" window of S seconds, every process is measured again, and VictoriaMetrics is restarted on
the same port and data dir. Figures of the down window end in `_down`.

Per process and window, besides RSS and CPU below:
  written    = Δ write_bytes of /proc/PID/io (bytes the process made the kernel write to storage:
               pages it dirtied; the temp dir must be a real disk, tmpfs accounts nothing);
  samples    = agent: ticks in the window (collector_collection_duration_seconds_count of its
               /metrics) × samples per tick (`once`); the committed counter
               (collector_metrics_collected_total) is printed beside it (it moves per 10 s flush);
               node_exporter: scrapes in the window × series lines of a scrape;
               vmagent: its scrapes in the window (vm_promscrape_scrapes_total) × series lines of
               one scrape of its node_exporter, taken by this process at the window's end;
               collectd: values appended to its csv files in the window (one csv round, the
               values of one interval, is printed beside it);
  CPU µs per sample and written B per sample divide by those samples. The row "vmagent +
  node_exporter" sums both processes (CPU, RSS, written): that pair is what a scraping setup runs.

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
COLLECTD_BIN = "/usr/sbin/collectd"
COLLECTD_PLUGIN_DIR = "/usr/lib/collectd"
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


def _pump(src, path):
    """Copies a child's output into its log file: the harness writes it, so the bytes count in
    the harness's write_bytes, not the child's (under systemd journald writes a service's log)."""
    with open(path, "ab") as out:
        for chunk in iter(lambda: src.read1(65536), b""):
            out.write(chunk)
            out.flush()
    src.close()


def start(name, argv, logdir, env=None):
    full_env = dict(os.environ, **env) if env else None
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         preexec_fn=_die_with_parent, close_fds=True, env=full_env)
    threading.Thread(target=_pump, args=(p.stdout, os.path.join(logdir, f"{name}.log")),
                     daemon=True).start()
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


def write_bytes(pid):
    """write_bytes of /proc/PID/io: bytes the process caused to be sent to the storage layer
    (counted when a page is dirtied, so a page rewritten after its writeback counts again)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def series_lines(body):
    """Series (sample) lines of a Prometheus exposition: every non-empty line not a comment."""
    return sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#"))


def csv_files(root):
    """The lines of every csv file under root (split on newlines: the last element is what
    follows the last newline, empty or a line collectd is writing)."""
    for d, _, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(d, name), "rb") as f:
                    yield f.read().split(b"\n")
            except OSError:
                continue


def csv_values(root):
    """Values in collectd's csv files: each data line is `epoch,v1[,v2…]`, after a header line."""
    return sum(ln.count(b",") for lines in csv_files(root) for ln in lines[1:-1])


def csv_round(root):
    """Values of one collectd round (one interval): the last complete line of every csv file
    whose last line is within 1 s of the newest (a file of an earlier day, or of a plugin that
    stopped, is left out)."""
    last = []
    for lines in csv_files(root):
        if len(lines) < 3:
            continue
        line = lines[-2]
        try:
            last.append((float(line.split(b",", 1)[0]), line.count(b",")))
        except ValueError:
            continue
    if not last:
        return 0
    newest = max(t for t, _ in last)
    return sum(n for t, n in last if t >= newest - 1.0)


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
                self.samples.append(series_lines(body))
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
    ap.add_argument("--collectd", default=COLLECTD_BIN)
    ap.add_argument("--vmagent", default="vmagent")
    ap.add_argument("--outage", type=int, default=0, metavar="SECONDS",
                    help="after the window, stop VictoriaMetrics for a second window of SECONDS, "
                         "measure every process again (figures ending in _down), then restart it")
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
    if args.outage and args.outage < 10:
        ap.error("--outage must be 0 (none) or at least 10")

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


def collectd_config(tmp):
    """collectd at Interval 1 with the agent's families, csv into the temp dir, no network.
    Returns (config path, csv dir, whether the thermal plugin is loaded)."""
    csv = os.path.join(tmp, "collectd-csv")
    # thermal reads /sys/class/thermal (and /proc/acpi/thermal_zone): loaded only where there is
    # a zone, so that a machine without one does not log a read error every second.
    thermal = (os.path.exists(os.path.join(COLLECTD_PLUGIN_DIR, "thermal.so"))
               and any(n.startswith("thermal_zone") for n in os.listdir("/sys/class/thermal"))
               if os.path.isdir("/sys/class/thermal") else False)
    plugins = ["cpu", "memory", "disk", "interface", "load"] + (["thermal"] if thermal else []) + ["csv"]
    conf = os.path.join(tmp, "collectd.conf")
    with open(conf, "w") as f:
        f.write(f"""# written by benches/resources.py
Hostname "bench-collectd"
FQDNLookup false
Interval 1
BaseDir "{tmp}/collectd"
PIDFile "{tmp}/collectd/collectd.pid"
PluginDir "{COLLECTD_PLUGIN_DIR}"
TypesDB "/usr/share/collectd/types.db"
""")
        for p in plugins:
            f.write(f"LoadPlugin {p}\n")
        # Raw counters, as the agent stores them (StoreRates true would make collectd keep rates).
        f.write(f'<Plugin csv>\n  DataDir "{csv}"\n  StoreRates false\n</Plugin>\n')
    os.makedirs(os.path.join(tmp, "collectd"), exist_ok=True)
    return conf, csv, thermal


def vmagent_args(args, tmp, port, ne_port, vm_port, ca_file):
    cfg = os.path.join(tmp, "vmagent-scrape.yml")
    with open(cfg, "w") as f:
        f.write("scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n"
                f"    static_configs:\n      - targets: [\"127.0.0.1:{ne_port}\"]\n")
    scheme = "https" if ca_file else "http"
    argv = [args.vmagent, f"-httpListenAddr=127.0.0.1:{port}", f"-promscrape.config={cfg}",
            f"-remoteWrite.url={scheme}://127.0.0.1:{vm_port}/api/v1/write",
            f"-remoteWrite.tmpDataPath={tmp}/vmagent-buffer"]
    if ca_file:
        argv.append(f"-remoteWrite.tlsCAFile={ca_file}")
    return argv


def node_exporter_args(args, port):
    return [args.node_exporter, f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults", "--web.disable-exporter-metrics",
            *[f"--collector.{c}" for c in NODE_EXPORTER_COLLECTORS]]


def get_text(port, path="/metrics"):
    try:
        return http_get(port, path, timeout=5)[1].decode(errors="replace")
    except OSError:
        return ""


class Probe:
    """The counters a window is divided by, read at its start and at its end."""

    def __init__(self, health, vmagent_port, ne2_port, scraper, csv_dir):
        self.health, self.vmagent_port, self.ne2_port = health, vmagent_port, ne2_port
        self.scraper, self.csv_dir = scraper, csv_dir

    def read(self):
        out = {}
        for k, port in self.health.items():
            text = get_text(port)
            out[f"{k}_ticks"] = prom_value(text, "collector_collection_duration_seconds_count") or 0
            out[f"{k}_committed"] = prom_value(text, "collector_metrics_collected_total") or 0
            out[f"{k}_uploaded"] = prom_value(text, "uploader_metrics_uploaded_total") or 0
            out[f"{k}_upload_failures"] = prom_value(text, "uploader_upload_failures_total") or 0
        out["ne_scrapes"] = len(self.scraper.samples)
        va = get_text(self.vmagent_port)
        out["vmagent_scrapes"] = prom_value(va, "vm_promscrape_scrapes_total") or 0
        out["vmagent_scraped_samples"] = prom_value(va, "vm_promscrape_scraped_samples_sum") or 0
        out["vmagent_pending_bytes"] = prom_value(va, "vm_persistentqueue_bytes_pending") or 0
        try:
            out["ne2_per_scrape"] = series_lines(http_get(self.ne2_port, "/metrics", timeout=5)[1])
        except OSError:
            out["ne2_per_scrape"] = 0
        out["collectd_values"] = csv_values(self.csv_dir)
        out["collectd_per_round"] = csv_round(self.csv_dir)
        return out


def measure(procs, seconds, probe):
    """One window: CPU (ticks and schedstat), VmRSS every second, write_bytes, the probe's
    counters at both ends. Raises if a process exits."""
    c0 = probe.read()
    rss = {k: [] for k in procs}  # (t since window start, VmRSS KiB)
    t0 = time.monotonic()
    cpu0 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
    io0 = {k: write_bytes(p.pid) for k, p in procs.items()}
    rt = {k: RuntimeTracker(p.pid) for k, p in procs.items()}
    log(f"measuring for {seconds} s")
    next_at = t0
    while True:
        now = time.monotonic()
        for k, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{k} exited with {p.returncode} during the run")
            rss[k].append((now - t0, status_kib(p.pid)["VmRSS"]))
            rt[k].sample()
        if now - t0 >= seconds:
            break
        next_at += 1.0
        time.sleep(max(0.0, min(next_at, t0 + seconds) - time.monotonic()))
    t1 = time.monotonic()
    cpu1 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
    io1 = {k: write_bytes(p.pid) for k, p in procs.items()}
    for r in rt.values():
        r.sample()
    c1 = probe.read()
    wall = t1 - t0
    steady_span = min(30.0, seconds / 2)
    res = {}
    for k, p in procs.items():
        st = status_kib(p.pid)
        last = [v for t, v in rss[k] if t >= wall - steady_span]
        res[k] = {
            "rss_peak_kib": st["VmHWM"],
            "rss_steady_kib": int(statistics.median(last)),
            "rss_anon_kib": st.get("RssAnon", 0),
            "rss_file_kib": st.get("RssFile", 0),
            "pss_kib": smaps_rollup_kib(p.pid).get("Pss", 0),
            "threads": st.get("Threads", 0),
            "cpu_s": (cpu1[k] - cpu0[k]) / CLK_TCK,
            "cpu_total_s": cpu1[k] / CLK_TCK,
            "sched_s": rt[k].ns() / 1e9,
            "write_bytes": io1[k] - io0[k],
        }
    return {"wall": wall, "steady_span": steady_span, "res": res, "c0": c0, "c1": c1,
            "ne_samples": probe.scraper.samples[c0["ne_scrapes"]:c1["ne_scrapes"]],
            "ne_bytes": probe.scraper.bytes[c0["ne_scrapes"]:c1["ne_scrapes"]]}


VMAGENT_PAIR = ("vmagent", "vmagent_node_exporter")


def per_sample(w, per_tick):
    """Adds samples, CPU per sample and bytes per sample to every process of window w, and the
    summed row `vmagent_total` (vmagent + its node_exporter)."""
    res, c0, c1, wall = w["res"], w["c0"], w["c1"], w["wall"]
    d = lambda key: c1[key] - c0[key]
    ne_per = int(statistics.median(w["ne_samples"])) if w["ne_samples"] else 0
    res["vmagent_total"] = {key: res["vmagent"][key] + res["vmagent_node_exporter"][key]
                            for key in ("rss_peak_kib", "rss_steady_kib", "rss_anon_kib", "rss_file_kib",
                                        "pss_kib", "threads", "cpu_s", "cpu_total_s", "sched_s",
                                        "write_bytes")}
    samples = {
        "agent": d("agent_ticks") * per_tick,
        "agent_local": d("agent_local_ticks") * per_tick,
        "node_exporter": len(w["ne_samples"]) * ne_per,
        "collectd": d("collectd_values"),
    }
    samples["vmagent"] = samples["vmagent_node_exporter"] = samples["vmagent_total"] = \
        d("vmagent_scrapes") * c1["ne2_per_scrape"]
    for k, r in res.items():
        n = samples[k]
        r["cpu_s_per_s"] = r["cpu_s"] / wall
        r["cpu_sched_s_per_s"] = r["sched_s"] / wall
        r["cpu_pct"] = 100 * r["cpu_s_per_s"]
        r["cpu_sched_pct"] = 100 * r["cpu_sched_s_per_s"]
        r["samples"] = n
        r["samples_per_s"] = n / wall
        r["cpu_us_per_sample"] = 1e6 * r["cpu_s"] / n if n else float("nan")
        r["cpu_sched_us_per_sample"] = 1e6 * r["sched_s"] / n if n else float("nan")
        r["write_bytes_per_sample"] = r["write_bytes"] / n if n else float("nan")
    w["ne_per_scrape"] = ne_per


# Per process and window: (figure name after `PROCESS_`, key of the result, format).
PROC_FIGURES = [
    ("rss_peak_kib", "rss_peak_kib", "{}"),
    ("rss_steady_kib", "rss_steady_kib", "{}"),
    ("rss_anon_kib", "rss_anon_kib", "{}"),
    ("rss_file_kib", "rss_file_kib", "{}"),
    ("pss_kib", "pss_kib", "{}"),
    ("threads", "threads", "{}"),
    ("cpu_s", "cpu_s", "{:.2f}"),
    ("cpu_s_per_s", "cpu_s_per_s", "{:.6f}"),
    ("cpu_pct_core", "cpu_pct", "{:.4f}"),
    ("cpu_schedstat_s_per_s", "cpu_sched_s_per_s", "{:.6f}"),
    ("cpu_schedstat_pct_core", "cpu_sched_pct", "{:.4f}"),
    ("cpu_total_s_since_start", "cpu_total_s", "{:.2f}"),
    ("samples", "samples", "{:.0f}"),
    ("samples_per_s", "samples_per_s", "{:.2f}"),
    ("cpu_us_per_sample", "cpu_us_per_sample", "{:.2f}"),
    ("cpu_schedstat_us_per_sample", "cpu_sched_us_per_sample", "{:.2f}"),
    ("write_bytes", "write_bytes", "{}"),
    ("write_bytes_per_sample", "write_bytes_per_sample", "{:.1f}"),
]

# Counters of the probe, Δ over the window: (figure name, probe key).
COUNTER_FIGURES = [
    ("agent_ticks", "agent_ticks"),
    ("agent_local_ticks", "agent_local_ticks"),
    ("agent_samples_committed", "agent_committed"),
    ("agent_local_samples_committed", "agent_local_committed"),
    ("agent_samples_uploaded", "agent_uploaded"),
    ("agent_upload_failures", "agent_upload_failures"),
    ("vmagent_scrapes", "vmagent_scrapes"),
    ("vmagent_scraped_samples_own_count", "vmagent_scraped_samples"),
    ("collectd_values", "collectd_values"),
]


def window_figures(w, sfx, args, per_tick):
    """`name value` pairs of one window; sfx is "" for the up window (the names of old runs) and
    "_down" for the outage."""
    res, c0, c1, wall = w["res"], w["c0"], w["c1"], w["wall"]
    d = lambda key: c1[key] - c0[key]
    fig = [(f"window_s{sfx}", f"{wall:.1f}")]
    if not sfx:
        fig += [("warmup_s", f"{args.warmup:g}"), ("cpu_tick_s", f"{1 / CLK_TCK:g}")]
    fig.append((f"cpu_resolution_pct_core{sfx}", f"{100 / CLK_TCK / wall:.4f}"))
    for k, r in res.items():
        fig += [(f"{k}_{name}{sfx}", fmt.format(r[key])) for name, key, fmt in PROC_FIGURES]
    ne = res["node_exporter"]
    for k in ("agent", "agent_local"):
        for key in ("rss_peak_kib", "rss_steady_kib", "cpu_s_per_s"):
            den = ne[key]
            fig.append((f"ratio_{k}_over_node_exporter_{key.replace('_kib', '').replace('_s_per_s', '')}{sfx}",
                        f"{res[k][key] / den:.4f}" if den else "inf"))
    fig += [(f"agent_samples_per_tick{sfx}", per_tick)]
    fig += [(f"{name}{sfx}", f"{d(key):.0f}") for name, key in COUNTER_FIGURES]
    fig += [
        (f"node_exporter_scrapes{sfx}", len(w["ne_samples"])),
        (f"node_exporter_samples_per_scrape{sfx}", w["ne_per_scrape"]),
        (f"node_exporter_scrape_bytes{sfx}", int(statistics.median(w["ne_bytes"])) if w["ne_bytes"] else 0),
        (f"vmagent_samples_per_scrape{sfx}", c1["ne2_per_scrape"]),
        (f"vmagent_buffer_pending_bytes{sfx}", f"{c1['vmagent_pending_bytes']:.0f}"),
        (f"collectd_values_per_interval{sfx}", c1["collectd_per_round"]),
    ]
    return fig


def run(args, tmp):
    vm_port, ne_port, h_remote, h_local = free_port(), free_port(), free_port(), free_port()
    ne2_port, va_port = free_port(), free_port()
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
    vm_argv = [
        args.victoria_metrics, f"-storageDataPath={tmp}/vm", f"-httpListenAddr=127.0.0.1:{vm_port}",
        "-retentionPeriod=100y", "-search.latencyOffset=0", "-dedup.minScrapeInterval=1ms",
        *tls_args,
    ]
    vm = start("victoria-metrics", vm_argv, logdir)
    wait_http(vm_port, "/health", vm, "victoria-metrics")

    ne = start("node_exporter", node_exporter_args(args, ne_port), logdir)
    ne2 = start("vmagent_node_exporter", node_exporter_args(args, ne2_port), logdir)

    cfg_r, cfg_l = f"{tmp}/agent-remote.toml", f"{tmp}/agent-local.toml"
    agent_config(cfg_r, f"{tmp}/agent-remote/metrics.redb", h_remote, vm_port, ca_file)
    agent_config(cfg_l, f"{tmp}/agent-local/metrics.redb", h_local, None)
    # As systemd/belabox-metrics.service runs it: one glibc malloc arena (no effect on musl).
    agent_env = {"MALLOC_ARENA_MAX": "1"}
    if not args.warm_cache:
        drop_page_cache(args.agent)
    ar = start("agent-remote", [args.agent, "run", "--config", cfg_r], logdir, agent_env)
    al = start("agent-local", [args.agent, "run", "--config", cfg_l], logdir, agent_env)

    cd_conf, csv_dir, thermal = collectd_config(tmp)
    cd = start("collectd", [args.collectd, "-f", "-C", cd_conf], logdir)
    wait_http(ne2_port, "/metrics", ne2, "vmagent's node_exporter")
    va = start("vmagent", vmagent_args(args, tmp, va_port, ne2_port, vm_port, ca_file), logdir)

    wait_http(ne_port, "/metrics", ne, "node_exporter")
    wait_http(h_remote, "/health/live", ar, "agent-remote")
    wait_http(h_local, "/health/live", al, "agent-local")
    wait_http(va_port, "/metrics", va, "vmagent")

    scraper = Scraper(ne_port, not args.no_gzip)
    scraper.start()
    time.sleep(args.warmup)
    if cd.poll() is not None:
        raise RuntimeError(f"collectd exited with {cd.returncode} (log: {logdir}/collectd.log)")
    if not csv_values(csv_dir):
        raise RuntimeError(f"collectd wrote no csv value in the warm-up (log: {logdir}/collectd.log)")

    procs = {"agent": ar, "agent_local": al, "node_exporter": ne, "collectd": cd,
             "vmagent": va, "vmagent_node_exporter": ne2}
    probe = Probe({"agent": h_remote, "agent_local": h_local}, va_port, ne2_port, scraper, csv_dir)
    up = measure(procs, args.seconds, probe)
    per_sample(up, per_tick)

    # End-of-window snapshots of the up window, while every process is still alive.
    threads = {k: thread_cpu(procs[k].pid) for k in ("agent", "agent_local")}
    rollup = {k: smaps_rollup_kib(procs[k].pid) for k in ("agent", "agent_local")}
    maps = {k: top_mappings(procs[k].pid, 12) for k in ("agent", "agent_local")} if args.detail else {}
    agent_metrics = {k: get_text(port) for k, port in (("agent", h_remote), ("agent_local", h_local))}
    try:
        http_get(vm_port, "/internal/force_flush", timeout=10)
        vm_metrics = http_get(vm_port, "/metrics", timeout=10)[1].decode()
    except OSError:
        vm_metrics = ""

    down = None
    if args.outage:
        log(f"stopping victoria-metrics for {args.outage} s")
        vm.send_signal(signal.SIGTERM)
        try:
            vm.wait(timeout=30)
        except subprocess.TimeoutExpired:
            vm.kill()
            vm.wait()
        down = measure(procs, args.outage, probe)
        per_sample(down, per_tick)
        vm = start("victoria-metrics", vm_argv, logdir)
        wait_http(vm_port, "/health", vm, "victoria-metrics (restarted)")

    # ---- figures
    fig = [(f"machine_{k}", v) for k, v in machine_info().items()]
    fig += window_figures(up, "", args, per_tick)
    if down:
        fig += [("outage_s", args.outage)] + window_figures(down, "_down", args, per_tick)
    fig += [
        ("agent_samples_stored_total", int(prom_value(agent_metrics["agent"], "collector_metrics_collected_total") or 0)),
        ("agent_ticks_total", int(prom_value(agent_metrics["agent"], "collector_collection_duration_seconds_count") or 0)),
        ("agent_samples_uploaded_total", int(prom_value(agent_metrics["agent"], "uploader_metrics_uploaded_total") or 0)),
        ("agent_upload_failures_total", int(prom_value(agent_metrics["agent"], "uploader_upload_failures_total") or 0)),
        ("agent_upload_bytes_total", int(prom_value(agent_metrics["agent"], "uploader_bytes_sent_total") or 0)),
        ("vm_rows_inserted_vmimport", int(prom_value(vm_metrics, 'vm_rows_inserted_total{type="vmimport"}') or 0)),
        ("vm_rows_inserted_promremotewrite", int(prom_value(vm_metrics, 'vm_rows_inserted_total{type="promremotewrite"}') or 0)),
        ("vm_rows_invalid_total", int(prom_value(vm_metrics, "vm_rows_invalid_total") or 0)),
        ("vm_rows_ignored_total", int(prom_value(vm_metrics, "vm_rows_ignored_total") or 0)),
        ("node_exporter_scrapes_total", scraper.scrapes),
        ("node_exporter_scrape_errors", scraper.errors),
        ("node_exporter_scrape_gzip", 0 if args.no_gzip else 1),
        ("collectd_thermal_plugin", int(thermal)),
        ("agent_goal_rss_kib", GOAL_RSS_KIB),
        ("agent_goal_cpu_pct_core", GOAL_CPU_PCT),
    ]
    scraper.stop.set()
    scraper.join(timeout=10)
    res = up["res"]
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
    print_table(up, down, per_tick, scraper, args)
    return 0


def print_table(up, down, per_tick, scraper, args):
    """The Markdown table: the old columns (up window), then samples, CPU per sample and bytes
    written; with --outage every window column reads `up / down`."""
    wins = [w for w in (up, down) if w]

    def cell(k, key, fmt):
        return " / ".join(fmt.format(w["res"][k][key]) for w in wins)

    def row(label, k):
        r = up["res"][k]
        return (f"| {label} | {r['rss_peak_kib']} | {cell(k, 'rss_steady_kib', '{}')} | "
                f"{cell(k, 'cpu_s', '{:.2f}')} | {cell(k, 'cpu_s_per_s', '{:.6f}')} | "
                f"{cell(k, 'cpu_pct', '{:.3f} %')} | {cell(k, 'cpu_sched_pct', '{:.4f} %')} | "
                f"{cell(k, 'samples_per_s', '{:.1f}')} | {cell(k, 'cpu_us_per_sample', '{:.1f}')} "
                f"({cell(k, 'cpu_sched_us_per_sample', '{:.1f}')}) | {cell(k, 'write_bytes', '{}')} | "
                f"{cell(k, 'write_bytes_per_sample', '{:.1f}')} |")

    def ratio(label, a, b):
        def q(key):
            return " / ".join(f"{w['res'][a][key] / w['res'][b][key]:.3f}" if w["res"][b][key] else "∞"
                              for w in wins)
        return (f"| {label} | {up['res'][a]['rss_peak_kib'] / max(1, up['res'][b]['rss_peak_kib']):.3f} | "
                f"{q('rss_steady_kib')} | — | {q('cpu_s_per_s')} | {q('cpu_s_per_s')} | "
                f"{q('cpu_sched_s_per_s')} | — | {q('cpu_us_per_sample')} | — | — |")

    per = samples_note(per_tick, scraper)
    wnote = f"Window {up['wall']:.1f} s after a {args.warmup:g} s warm-up"
    if down:
        wnote += (f", then VictoriaMetrics down for {down['wall']:.1f} s: cells read "
                  "`VictoriaMetrics up / down`")
    print()
    print(f"{wnote}; RSS steady = median VmRSS over the last {up['steady_span']:.0f} s of a window; "
          f"CPU = Δ(utime+stime) / wall, resolution {100 / CLK_TCK / up['wall']:.3f} % of a core; "
          f"written = Δ write_bytes of /proc/PID/io. {per} Samples: agent ticks × samples per tick; "
          f"node_exporter and vmagent scrapes × series lines of a scrape "
          f"({up['c1']['ne2_per_scrape']} for vmagent's); collectd values appended to its csv files "
          f"({up['c1']['collectd_per_round']} a 1 s interval). The row vmagent + node_exporter sums both "
          f"processes (RSS, CPU, bytes written).")
    print()
    print("| process | RSS peak (VmHWM) KiB | RSS steady (median VmRSS) KiB | CPU s in window | CPU s/s | "
          "% of one core | % of one core (schedstat ns) | samples/s | CPU µs per sample (schedstat) | "
          "written B (write_bytes) | written B per sample |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(row("belabox-metrics, 1 s, store + upload to VictoriaMetrics", "agent"))
    print(row("belabox-metrics, 1 s, store only (no [remote])", "agent_local"))
    print(row("node_exporter 1.5.0, same families, scraped every 1 s", "node_exporter"))
    print(row("collectd 5.12, Interval 1, csv (B and µs per value)", "collectd"))
    print(row("vmagent, scraping a 2nd node_exporter every 1 s, remote write", "vmagent"))
    print(row("its node_exporter (same collectors)", "vmagent_node_exporter"))
    print(row("**vmagent + node_exporter** (both processes)", "vmagent_total"))
    print(ratio("ratio agent (upload) / node_exporter", "agent", "node_exporter"))
    print(ratio("ratio agent (store only) / node_exporter", "agent_local", "node_exporter"))
    print(ratio("ratio agent (upload) / vmagent + node_exporter", "agent", "vmagent_total"))
    print(f"| goal for the agent | ≤ {GOAL_RSS_KIB} | ≤ {GOAL_RSS_KIB} | — | ≤ {GOAL_CPU_PCT / 100:.4f} | "
          f"≤ {GOAL_CPU_PCT} % | ≤ {GOAL_CPU_PCT} % | — | — | — | — |")


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
