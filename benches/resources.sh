#!/usr/bin/env bash
# Resource use of belabox-metrics next to node_exporter, collectd and vmagent, side by side in ONE run.
#
#   benches/resources.sh [--seconds N] [--profile P] [--board] [--no-build] [--detail] [--keep]
#                        [--no-gzip] [--warmup S] [--agent BIN] [--https] [--warm-cache]
#                        [--outage S]
#
# --board measures the board build instead: static musl (with https, as shipped), profile
# `board`, for this machine's architecture (the same build as tests/cross-aarch64.sh makes for
# aarch64).
#
# Installs the Debian packages victoria-metrics (with vmagent), prometheus-node-exporter and
# collectd-core when missing, builds
# the agent (cargo build --profile P, default release; waits for the target/ lock; --agent BIN
# with --no-build measures another binary), then benches/resources.py runs,
# all at once on 127.0.0.1 with free ports and a temp dir:
#   - VictoriaMetrics (upload target);
#   - the agent at a 1 s interval uploading to it every 30 s;
#   - a second agent instance, 1 s interval, store only (no [remote]), its own store dir;
#   - node_exporter with the same collector families, scraped every 1 s (scraper not measured);
#   - collectd at Interval 1 (cpu, memory, disk, interface, load, thermal where there are zones),
#     csv into the temp dir, no network;
#   - vmagent scraping a second node_exporter every 1 s, remote-writing to the VictoriaMetrics,
#     its on-disk buffer in the temp dir;
# --outage S: after the window VictoriaMetrics is stopped for a second window of S seconds, every
# process is measured again (figures `…_down`, table cells `up / down`), then it is restarted.
# --https: VictoriaMetrics with -tls and a certificate from a CA made with openssl; the uploading
# agent trusts it through remote.ca_file (the figure of issue 14).
# The agents run a copy of the binary in the temp dir whose page cache is dropped first (fsync +
# POSIX_FADV_DONTNEED), so they map it as a service after a boot does; --warm-cache runs BIN as is.
# BENCH_STORAGE="journal = false" adds that line to both agents' [storage] (A/B of store settings).
# The harness prints one figure per line (peak/steady RSS, CPU seconds per second, CPU µs and
# bytes written (/proc/PID/io write_bytes) per sample, ratios) and a Markdown table. Every
# process is stopped at the end (and on any signal); the run is bounded in time.
# CPU is CPU-seconds from /proc/PID/stat over wall seconds, so other load on the machine moves
# every process alike instead of inflating timings. Results: docs/benchmarks.md.
set -euo pipefail

seconds=60
outage=0
build=1
profile=release
board=0
agent=""
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; pass+=(--seconds "$2"); shift 2 ;;
        --seconds=*) seconds="${1#*=}"; pass+=("$1"); shift ;;
        --outage) outage="$2"; pass+=(--outage "$2"); shift 2 ;;
        --outage=*) outage="${1#*=}"; pass+=("$1"); shift ;;
        --profile) profile="$2"; shift 2 ;;
        --board) board=1; profile=board; shift ;;
        --agent) agent="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done
case "$seconds" in ''|*[!0-9]*) echo "resources.sh: --seconds takes a whole number" >&2; exit 2 ;; esac
case "$outage" in ''|*[!0-9]*) echo "resources.sh: --outage takes a whole number" >&2; exit 2 ;; esac
[ -z "$agent" ] || agent="$(realpath "$agent")"
cd "$(dirname "$0")/.."

need=()
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v vmagent >/dev/null 2>&1 || need+=(victoria-metrics)
[ -x /usr/sbin/collectd ] || need+=(collectd-core)
if [ ${#need[@]} -gt 0 ]; then
    echo "resources.sh: installing ${need[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    # --no-install-recommends; the packages' services are not needed (and not started in containers).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

build_args=(--profile "$profile" --bin belabox-metrics)
sub=""
if [ "$board" -eq 1 ]; then
    triple="$(uname -m)-unknown-linux-musl"
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple" >&2
    build_args+=(--target "$triple")
    # ring (feature tls) compiles a little C: the host gcc serves the musl target (freestanding
    # code) when there is no musl-gcc.
    cc_var="CC_${triple//-/_}"
    if [ -z "${!cc_var:-}" ] && ! command -v musl-gcc >/dev/null 2>&1; then export "$cc_var=cc"; fi
    sub="$triple/"
fi
if [ "$build" -eq 1 ]; then
    echo "resources.sh: cargo build ${build_args[*]} (may wait for the target/ lock)" >&2
    cargo build "${build_args[@]}" >&2
fi
if [ -z "$agent" ]; then
    case "$profile" in dev|test) dir=debug ;; bench) dir=release ;; *) dir="$profile" ;; esac
    agent="${CARGO_TARGET_DIR:-target}/$sub$dir/belabox-metrics"
fi
[ -x "$agent" ] || { echo "resources.sh: no agent binary at $agent" >&2; exit 2; }
pass+=(--agent "$agent")

# The harness stops its children itself (SIGTERM, then SIGKILL after 10 s; they also get SIGTERM
# if it dies). The trap covers the harness; `timeout` bounds the whole run.
py_pid=""
cleanup() {
    if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
        kill -TERM "$py_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$py_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$py_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Window, outage window, and 180 s for start-up, the warm-up, VictoriaMetrics' restart and stops.
limit=$((seconds + outage + 180))
timeout --signal=TERM --kill-after=20 "$limit" \
    python3 benches/resources.py "${pass[@]}" &
py_pid=$!
wait "$py_pid"
