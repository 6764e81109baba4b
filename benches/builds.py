#!/usr/bin/env python3
"""Builds of the agent side by side, store only: which one costs less CPU per sample.

    benches/builds.py [--seconds N] [--https] [--procfs DIR --sysfs DIR] NAME=BINARY [NAME=BINARY ...]

Every binary runs at the same time (so machine noise hits all alike) as a store-only agent:
`collect.interval = "1s"`, default flush, no [remote], clock-skew check off, /health on a free
port, its own store in one temp dir; each binary is a copy whose page cache is dropped first
(benches/resources.py, drop_page_cache). With --https each binary also runs as a second agent,
`NAME+https`, uploading every 30 s over https to one VictoriaMetrics (`-tls`, a CA made for the
run; each agent its own device id), with the clock-skew check at its default, as
benches/resources.sh runs it. After a 15 s warm-up, a window of N seconds (default
300). Per agent, one `name value` per line, then a table:

  - cpu_ns: Δ of every thread's /proc/PID/task/TID/schedstat run time over the window (sampled
    every second, so a thread that exits loses at most its last second), and per thread name;
  - runs_per_s_thread_NAME: Δ of schedstat's third field (times the thread was put on a CPU:
    its wake-ups plus its preemptions) per second of the window, per thread name;
  - ticks: Δ collector_collection_duration_seconds_count of its /metrics, divided by the
    collectors that count it (so: collection ticks); samples = ticks × samples per tick (`once`);
  - us_per_sample = cpu_ns / samples; write_bytes per sample (/proc/PID/io); VmRSS at the end.

What it leaves out: uploading (benches/resources.sh --https measures that, with the peers); a
window without a journal fold writes less than one with (docs/benchmarks.md, write_bytes).
"""

import argparse
import os
import subprocess
import sys
import ssl
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resources as r  # noqa: E402


def thread_ns_by_name(pid):
    """{(tid, thread name): (schedstat run time ns, times run on a CPU)} of the live threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns, _, runs = (int(x) for x in f.read().split()[:3])
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                out[(tid, f.read().strip())] = (ns, runs)
        except (OSError, ValueError):
            pass
    return out


def collectors_counted(text):
    return sum(1 for ln in text.splitlines()
               if ln.startswith("collector_collection_duration_seconds_count"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--procfs")
    ap.add_argument("--sysfs")
    ap.add_argument("--https", action="store_true", help="also an uploading agent per build")
    ap.add_argument("--victoria-metrics", default="victoria-metrics")
    ap.add_argument("builds", nargs="+", metavar="NAME=BINARY")
    args = ap.parse_args()
    builds = []
    for b in args.builds:
        name, sep, path = b.partition("=")
        if not sep or not os.access(path, os.X_OK):
            ap.error(f"{b}: want NAME=BINARY, an executable")
        builds.append((name, path))
    roots = []
    if args.procfs:
        roots += ["--procfs", args.procfs]
    if args.sysfs:
        roots += ["--sysfs", args.sysfs]
    with tempfile.TemporaryDirectory(prefix="bbm-builds-") as tmp:
        try:
            return run(args, builds, roots, tmp)
        finally:
            r.stop_all()


def start_vm(args, tmp):
    """One VictoriaMetrics over https for every uploading agent: (port, CA file)."""
    ca_file, crt, key = r.make_tls(tmp)
    port = r.free_port()
    r.HTTPS_PORTS[port] = ssl.create_default_context(cafile=ca_file)
    vm = r.start("victoria-metrics", [
        args.victoria_metrics, f"-storageDataPath={tmp}/vm", f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y", "-search.latencyOffset=0", "-dedup.minScrapeInterval=1ms",
        "-tls", f"-tlsCertFile={crt}", f"-tlsKeyFile={key}"], tmp)
    r.wait_http(port, "/health", vm, "victoria-metrics")
    return port, ca_file


def run(args, builds, roots, tmp):
    agents = []
    vm_port, ca_file = start_vm(args, tmp) if args.https else (None, None)
    for name, path in builds:
        d = os.path.join(tmp, name)
        os.makedirs(d)
        binary = os.path.join(d, "belabox-metrics")
        subprocess.run(["cp", path, binary], check=True)
        r.drop_page_cache(binary)
        once = subprocess.run([binary, "once", "--delay", "200", *roots], capture_output=True,
                              timeout=30)
        per_tick = sum(1 for ln in once.stdout.splitlines() if ln.strip())
        for agent, vm in [(name, None)] + ([(f"{name}+https", vm_port)] if args.https else []):
            port = r.free_port()
            store = os.path.join(d, agent, "metrics.redb")
            os.makedirs(os.path.dirname(store))
            cfg = os.path.join(d, agent, "config.toml")
            r.agent_config(cfg, store, port, vm, ca_file if vm else None)
            with open(cfg) as f:
                text = f.read()
            with open(cfg, "w") as f:
                f.write(text.replace('id = "bench-', f'id = "{agent}-', 1))
            p = r.start(agent, [binary, "run", "--config", cfg, *roots], d)
            agents.append(dict(name=agent, p=p, port=port, per_tick=per_tick))
    for a in agents:
        r.wait_http(a["port"], "/health", a["p"], a["name"])
    time.sleep(15)

    def snap(a):
        text = r.get_text(a["port"])
        n = max(1, collectors_counted(text))
        ticks = (r.prom_value(text, "collector_collection_duration_seconds_count") or 0) / n
        return dict(threads=thread_ns_by_name(a["p"].pid), ticks=ticks,
                    wb=r.write_bytes(a["p"].pid))

    first = {a["name"]: snap(a) for a in agents}
    last = {a["name"]: dict(threads=dict(first[a["name"]]["threads"])) for a in agents}
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.seconds:
        time.sleep(1)
        for a in agents:
            if a["p"].poll() is not None:
                raise RuntimeError(f"{a['name']} exited with {a['p'].returncode}")
            last[a["name"]]["threads"].update(thread_ns_by_name(a["p"].pid))
    wall = time.monotonic() - t0
    rows = []
    for a in agents:
        end = snap(a)
        end["threads"] = {**last[a["name"]]["threads"], **end["threads"]}
        f = first[a["name"]]
        by_name, runs_by_name = {}, {}
        for key, (ns, runs) in end["threads"].items():
            ns0, runs0 = f["threads"].get(key, (0, 0))
            by_name[key[1]] = by_name.get(key[1], 0) + ns - ns0
            runs_by_name[key[1]] = runs_by_name.get(key[1], 0) + runs - runs0
        cpu = sum(by_name.values())
        ticks = end["ticks"] - f["ticks"]
        samples = ticks * a["per_tick"]
        rss = r.status_kib(a["p"].pid).get("VmRSS", 0)
        us = cpu / 1000 / samples if samples else float("nan")
        wb = (end["wb"] - f["wb"]) / samples if samples else float("nan")
        n = a["name"]
        print(f"{n}_window_s {wall:.0f}")
        print(f"{n}_samples_per_tick {a['per_tick']}")
        print(f"{n}_ticks {ticks:.0f}")
        print(f"{n}_cpu_ns {cpu}")
        for t, ns in sorted(by_name.items()):
            print(f"{n}_cpu_ns_thread_{t} {ns}")
        for t, runs in sorted(runs_by_name.items()):
            print(f"{n}_runs_per_s_thread_{t} {runs / wall:.2f}")
        print(f"{n}_us_per_sample {us:.3f}")
        print(f"{n}_write_bytes_per_sample {wb:.1f}")
        print(f"{n}_rss_kib {rss}")
        threads = ", ".join(f"{t} {ns / wall / 1000:.0f}" for t, ns in sorted(by_name.items()))
        rows.append((n, a["per_tick"], cpu / wall / 1000, us, wb, rss, threads))
    print()
    print("| build | samples a tick | CPU µs a second | µs per sample | written B per sample "
          "| VmRSS KiB | µs a second by thread |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for n, pt, per_s, us, wb, rss, threads in rows:
        print(f"| {n} | {pt} | {per_s:.1f} | {us:.2f} | {wb:.1f} | {rss} | {threads} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        r.log(f"error: {e}")
        sys.exit(1)
