#!/usr/bin/env python3
"""Makes src/link/hot_text.ld: the functions a running agent executes, linked first in its text.

    benches/hot_text.py [--seconds N] [--out PATH] BINARY

BINARY is the board build with its symbols (BBM_KEEP_SYMBOLS=1 only skips the link's -s, so its
symbol names are the shipped build's; a profile override such as CARGO_PROFILE_BOARD_STRIP would
change every crate's -C metadata, hence every symbol hash, and the exact names would match
nothing in the shipped build):

    BBM_KEEP_SYMBOLS=1 CC_x86_64_unknown_linux_musl=cc cargo build --profile board \\
        --target x86_64-unknown-linux-musl --bin belabox-metrics --target-dir target/hot-text

Four agents run at once under `valgrind --tool=callgrind` for N seconds (default 90), each
collecting every second, /metrics and /health fetched every few seconds; the first three upload
every 30 s over https to one VictoriaMetrics (`-tls`, a CA made for the run):
  1. this machine's /proc and /sys, with a ModemManager stand-in on a private D-Bus
     (tests/support/mm_mock.py: two modems), and local ingest on (a push in each of its three
     formats, and a textfile);
  2. the RK3588 capture's /proc with the Jetson Orin tree's /sys (tests/fixtures/soc);
  3. the same /proc with the RK3588 vendor tree's /sys, uploading as Prometheus remote_write;
  4. this machine's /proc and /sys, store only (no [remote]).
So the steady tick of every collector, the store's flushes, folds and marks, both upload
formats, TLS, the /metrics and /health responder and ingest all run, with start-up and stop.
Each agent's run is dumped in three parts (`callgrind_control -d`): until WARM_UP_S after its
/health first answers (start-up: the first flushes and upload rounds included), the N seconds
after (the steady state), and the stop.

Every function callgrind saw execute (`--demangle=no`: linker symbol names) gets globs for its
input section, inside one output section inserted before `.text` (src/link/build.rs passes the
script to the linker). First the functions the steady state ran, in three tiers (`tiers`): what
the store-only agent ran, what a JSONL upload over https adds, the rest; so an agent's resident
text is the front of the section, as far as what it does reaches. Each tier by the binary's
addresses, every function by its exact name, which keeps the tiers dense in a build of this
target (x86_64 musl); then the same tiers by patterns, which leave out what differs between
targets and builds: v0 crate disambiguators (`Cs<base62>_`) and back-references (`B<base62>_`),
legacy hashes (`17h<16 hex>E`). Both leave out LLVM's `.NN` / `.llvm.NN` suffixes and the
`.text.unlikely.` prefix. A pattern also takes the other instances of a generic function (the
section is larger than what ran), which is why the patterns come after every exact name; the
same list serves aarch64, whose names differ from x86_64's only in those parts (there the
patterns alone group, in the same tier order). Then those only start-up or the stop ran
(patterns), which the agent drops from its resident set once started
(src/agent/text_release.rs). ring's assembly has no per-function sections: its objects' `.text`
goes in whole (≈ 70 KB), after the upload tier's exact names (so in another target's build, at
the front of the patterns); musl's functions go in by name.

What it leaves out: code a board runs and this machine cannot (real thermal zones' error paths,
a modem's failures, a reload): it stays in `.text`, where it was before this script existed.
"""

import argparse
import glob
import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resources as r  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# Seconds after /health answers until start-up counts as done (under callgrind the agents run
# tens of times slower; this covers the first upload round, at most 30 s after start).
WARM_UP_S = 45


def agent_config(path, store, health_port, vm_port, ca_file, extra):
    """benches/resources.py's agent (1 s interval, https upload every 30 s), plus `extra`."""
    r.agent_config(path, store, health_port, vm_port, ca_file)
    with open(path, "a") as f:
        f.write(extra)


def start_bus(tmp):
    """A private dbus-daemon and the ModemManager stand-in with two modems: the bus address."""
    sock = os.path.join(tmp, "bus")
    conf = os.path.join(tmp, "bus.conf")
    with open(os.path.join(ROOT, "tests/support/dbus-bus.conf")) as f:
        template = f.read()
    with open(conf, "w") as f:
        f.write(template.replace("@SOCKET@", sock).replace("@SERVICES@", tmp))
    r.start("dbus-daemon", ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"], tmp)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if time.monotonic() > deadline:
            sys.exit("dbus-daemon did not start (apt-get install dbus-daemon)")
        time.sleep(0.05)
    address = f"unix:path={sock}"
    mock = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/mm_mock.py"), address],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    r.CHILDREN.append(("mm_mock", mock))
    if mock.stdout.readline().strip() != "ready":
        sys.exit("mm_mock.py did not start (apt-get install python3-dbusmock)")
    for line in ("add 1 wwan0 80 Carrier-A 1000 2000", "add 2 wwan1 55 Carrier-B 3000 4000"):
        mock.stdin.write(line + "\n")
        mock.stdin.flush()
        answer = mock.stdout.readline().strip()
        if answer != "ok":
            sys.exit(f"mm_mock.py: {line}: {answer}")
    return address


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=body.encode())
    status = c.getresponse().status
    c.close()
    return status


def run(args, tmp):
    ca_file, crt, key = r.make_tls(tmp)
    vm_port = r.free_port()
    r.HTTPS_PORTS[vm_port] = ssl.create_default_context(cafile=ca_file)
    vm = r.start("victoria-metrics", [
        "victoria-metrics", f"-storageDataPath={tmp}/vm", f"-httpListenAddr=127.0.0.1:{vm_port}",
        "-tls", f"-tlsCertFile={crt}", f"-tlsKeyFile={key}"], tmp)
    r.wait_http(vm_port, "/health", vm, "victoria-metrics")
    bus = start_bus(tmp)
    ingest_port = r.free_port()
    textfiles = os.path.join(tmp, "textfiles")
    os.makedirs(textfiles)
    with open(os.path.join(textfiles, "app.prom"), "w") as f:
        f.write("# TYPE app_up gauge\napp_up 1\napp_frames_total{stream=\"main\"} 1200\n")
    rk = os.path.join(FIXTURES, "rk3588-rock5b", "proc")
    workloads = {
        "live": f"""[modem]
dbus_address = "{bus}"
signal_rate = 5

[ingest]
enabled = true
address = "127.0.0.1:{ingest_port}"
textfile_dir = "{textfiles}"
textfile_interval = "2s"
""",
        "orin": f'[paths]\nprocfs = "{rk}"\nsysfs = "{FIXTURES}/soc/jetson-orin/sys"\n',
        "rk3588": f'[paths]\nprocfs = "{rk}"\nsysfs = "{FIXTURES}/soc/rk3588-vendor/sys"\n',
        # Store only: what every agent runs, with no upload. Its steady functions go first.
        "store": "",
    }
    agents = []
    for name, extra in workloads.items():
        d = os.path.join(tmp, name)
        os.makedirs(d)
        health = r.free_port()
        cfg = os.path.join(d, "config.toml")
        agent_config(cfg, os.path.join(d, "metrics.redb"), health,
                     None if name == "store" else vm_port, ca_file, extra)
        if name != "store":
            # The clock-skew check (a GET of VictoriaMetrics' /health on a connection of its own:
            # a full TLS handshake) runs at start and every 5 min: within the steady window too,
            # so that its code is in the upload tier. Left in the start-up tier, it made an
            # uploading agent's text grow by 436 KiB at its first periodic check.
            with open(cfg) as f:
                text = f.read().replace("[monitoring]\n", '[monitoring]\nclock_skew_interval = "20s"\n')
            with open(cfg, "w") as f:
                f.write(text)
        if name == "rk3588":
            with open(cfg) as f:
                text = f.read().replace("/api/v1/import", "/api/v1/write")
            with open(cfg, "w") as f:
                f.write(text.replace("[remote]\n", '[remote]\nformat = "remote-write"\n'))
        out = os.path.join(d, "callgrind.out")
        p = r.start(name, ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
                           args.binary, "run", "--config", cfg], d)
        agents.append((name, p, health, out))
    for name, p, health, _ in agents:
        r.wait_http(health, "/health", p, name, timeout=120)
    # Start-up ends with the first flushes and upload rounds: what ran until here is dumped as
    # one part, the steady state as the next, the stop as the last (callgrind_control -d).
    time.sleep(WARM_UP_S)
    dump(agents)
    pushes = [
        ("/api/v1/import", '{"metric":{"__name__":"app_bitrate_bps","stream":"main"},"values":[5e6],"timestamps":[%d]}' % (time.time() * 1000)),
        ("/api/v1/import/prometheus", 'app_dropped_frames_total{stream="main"} 3\n'),
        ("/write?precision=ms", "app,stream=main rtt_ms=42.5,buffer=3i %d" % (time.time() * 1000)),
    ]
    end = time.monotonic() + args.seconds
    metrics = {}
    while time.monotonic() < end:
        for path, body in pushes:
            status = post(ingest_port, path, body)
            if status != 204:
                sys.exit(f"ingest {path}: HTTP {status}")
        for name, p, health, _ in agents:
            metrics[name] = r.get_text(health, "/metrics")
            r.get_text(health, "/health")
        time.sleep(5)
    # The workloads ran what they are for: the modem collector on the stand-in, the pushes.
    live = metrics.get("live", "")
    if "modem_signal_quality_percent" not in live:
        sys.exit(f"the live agent's /metrics has no modem series: see {tmp}/live/live.log")
    accepted = re.search(r"ingest_samples_accepted_total(?:\{[^}]*\})? (\d+)", live)
    if not accepted or int(accepted.group(1)) < 4:
        sys.exit(f"the live agent took no pushes (ingest_samples_accepted_total): see {tmp}/live/live.log")
    dump(agents)
    for name, p, _, _ in agents:
        p.send_signal(signal.SIGTERM)
    for name, p, _, _ in agents:
        if p.wait(timeout=60) != 0:
            sys.exit(f"{name} exited with {p.returncode}; see {tmp}/{name}/{name}.log")
    return {name: out for name, _, _, out in agents}


def dump(agents):
    for name, p, _, _ in agents:
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, capture_output=True, timeout=60)


def executed(callgrind_outs):
    """({workload: functions its steady state ran}, {workload: functions it ran at all},
    functions only start-up or the stop ran). Each run's files are its parts: 1 until the first
    dump (start-up), 2 until the second (steady), 3 the stop."""
    steady, ran, other = {}, {}, set()
    for workload, out in callgrind_outs.items():
        st, every = steady.setdefault(workload, set()), ran.setdefault(workload, set())
        for path in glob.glob(out + "*"):
            part, names = 0, set()
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("part:"):
                        part = int(line.split()[1])
                    m = re.match(r"^c?fn=\(\d+\)(?: (.*))?$", line.rstrip("\n"))
                    if m and m.group(1):
                        names.add(m.group(1))
            (st if part == 2 else other).update(names)
            every.update(names)
        if not st:
            sys.exit(f"no steady-state part in {workload}'s callgrind output (callgrind_control -d failed?)")
    return steady, ran, other - set().union(*steady.values())


def tiers(steady, ran):
    """The steady functions in the order they are linked, densest use first: what the store-only
    agent ran (every agent runs it: in its steady state, or at all if another agent's steady
    state ran it); then what a JSONL upload over https adds (run in the steady
    state by the live or the Orin agent, and at all by both: a TLS handshake that one of them
    happened to redo in the window is in, the modem, ingest and SoC collectors are not); then
    the rest (the SoC and modem collectors, ingest, remote_write). An agent's resident text is
    the pages its functions lie in, so an agent that does not upload holds none of the second
    tier's pages, and one that uploads JSONL none of the third's."""
    # What the store-only agent ran in its window, and what it ran at all (start-up included)
    # that some agent's steady state ran: a log line, a read transaction, a directory walk that
    # comes every few minutes, which 90 s of one agent may miss (and an uploader, doing more,
    # does not); left to the second tier, they made a store-only agent hold 236 KiB of it.
    every_steady = set().union(*steady.values())
    store = steady["store"] | (every_steady & ran["store"])
    upload = ((steady["live"] | steady["orin"]) & ran["live"] & ran["orin"]) - store
    rest = every_steady - store - upload
    return [("store only", store), ("JSONL upload over https", upload), ("the rest", rest)]


def glob_of(name, generic):
    """A section glob for a function. Always without LLVM's `.NN` / `.llvm.NN` suffix and with any
    prefix (`.text.unlikely.`). `generic=False`: the symbol itself, which takes that function
    alone in a build of this target and nothing in another target's build, whose hashes differ.
    `generic=True`: the part of the symbol that is the same on every target and build (v0 crate
    disambiguators, back-references and legacy hashes left out), which also takes the other
    instances of a generic function."""
    name = re.sub(r"(\.llvm)?\.\d+$", "", name)
    if name.startswith(("_R", "_ZN")):
        if generic:
            name = re.sub(r"17h[0-9a-f]{16}E$", "17h*E", name)
            if name.startswith("_R"):
                name = re.sub(r"Cs[0-9A-Za-z]*_", "Cs*_", name)
                name = re.sub(r"B[0-9A-Za-z]*_", "B*_", name)
        return f"*(.text.*{name}*)"
    # C (musl, ring): the section is named after the function, perhaps with leading underscores.
    return f"*(.text.*{name.lstrip('_')})"


def exact(name):
    return glob_of(name, generic=False)


def pattern(name):
    return glob_of(name, generic=True)


def write_script(binary, steady, ran, startup, out, seconds):
    syms = []
    nm = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW":
            syms.append((int(p[0], 16), int(p[1], 16), p[3]))
    if not syms:
        sys.exit(f"{binary} has no symbols: build it with BBM_KEEP_SYMBOLS=1")
    seen = set()

    def group(names, make):
        """The functions of `names` in this binary, by address, and their globs made by `make`,
        each glob once in the whole script."""
        hot = sorted((a, s, n) for a, s, n in syms if n in names)
        globs = []
        for _, _, n in hot:
            g = make(n)
            if g not in seen:
                seen.add(g)
                globs.append(g)
        return hot, globs

    # Every tier's exact names before any pattern: in a build of this target the patterns take
    # only what the exact names did not (other instances of a generic function, a function whose
    # hash changed since the profile), so they must not sit between two tiers. In another
    # target's build only the patterns match, in the same tier order.
    tiered = tiers(steady, ran)
    groups = [(title, *group(names, exact)) for title, names in tiered]
    patterns = [(title, group(names, pattern)[1]) for title, names in tiered]
    startup_syms, startup_globs = group(startup, pattern)
    text = sum(s for _, s, _ in syms)
    steady_n = sum(len(h) for _, h, _ in groups)
    steady_bytes = sum(s for _, h, _ in groups for _, s, _ in h)
    startup_bytes = sum(s for _, s, _ in startup_syms)
    with open(out, "w") as f:
        f.write(f"""/* Generated by benches/hot_text.py ({seconds} s of steady state under callgrind, {time.strftime('%Y-%m-%d')}).
 * The functions a running agent executed, of {text} bytes of function text, linked before .text
 * (src/link/build.rs): first the {steady_n} the steady state ran ({steady_bytes} bytes) in three
 * tiers (what a store-only agent runs, what a JSONL upload over https adds, the rest), by exact
 * name, then the same tiers by patterns for other targets; then the {len(startup_syms)} only start-up or the
 * stop ran ({startup_bytes} bytes), which the agent drops from its resident set once started
 * (src/agent/text_release.rs). Regenerate after a change that adds or renames much of the hot
 * code; a stale list only groups less. */
SECTIONS
{{
  .text.hot_first :
  {{
""")
        for title, hot, globs in groups:
            f.write(f"    /* steady, {title}: {len(hot)} functions, {sum(s for _, s, _ in hot)} bytes, exact names */\n")
            for g in globs:
                f.write(f"    {g}\n")
            if title.startswith("JSONL"):
                # ring's assembly (AES-GCM, SHA-256: every upload), right after the upload tier
                # in this target's build; in another target's, at the front of the patterns.
                f.write("    *libring*:*(.text)\n")
        for title, globs in patterns:
            f.write(f"    /* steady, {title}: patterns (other targets; other instances) */\n")
            for g in globs:
                f.write(f"    {g}\n")
        f.write("    /* start-up and stop only */\n")
        for g in startup_globs:
            f.write(f"    {g}\n")
        f.write("""  }
}
INSERT BEFORE .text;
""")
    for title, hot, _ in groups:
        key = title.split()[0].lower()
        print(f"steady_{key}_functions {len(hot)}")
        print(f"steady_{key}_function_bytes {sum(s for _, s, _ in hot)}")
    print(f"startup_only_functions {len(startup_syms)}")
    print(f"startup_only_function_bytes {startup_bytes}")
    print(f"function_text_bytes {text}")
    print(f"globs {len(seen)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=int, default=90)
    ap.add_argument("--out", default=os.path.join(ROOT, "src", "link", "hot_text.ld"))
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory(prefix="bbm-hot-text-") as tmp:
        try:
            outs = run(args, tmp)
        finally:
            r.stop_all()
        steady, ran, startup = executed(outs)
        write_script(args.binary, steady, ran, startup, args.out, args.seconds)


if __name__ == "__main__":
    main()
