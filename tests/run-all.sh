#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need (the Debian
# packages victoria-metrics and prometheus for the integration tests, systemd for the unit check, faketime for the
# clock tests, python3-fuse and fuse3 for the power-cut test), then formatting, lints and the whole
# workspace's tests. Usage: tests/run-all.sh   (from anywhere; needs root or sudo for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
# prometheus (ships promtool): tests/health/prometheus_scrape.rs scrapes the agent with it.
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# libfaketime: the untrusted-clock test runs the agent under a 1970 clock.
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
# python3-fuse (for /usr/bin/python3) and fusermount: tests/agent/power_cut.rs mounts
# tests/support/lazyfs.py, a FUSE file system that drops unsynced writes (a power cut).
/usr/bin/python3 -c 'import fuse' >/dev/null 2>&1 || need_apt+=(python3-fuse)
command -v fusermount >/dev/null 2>&1 || need_apt+=(fuse3)
# dbus-daemon and python3-dbusmock (for /usr/bin/python3): tests/agent/modem.rs and the
# footprint test run a private bus with a ModemManager stand-in (tests/support/mm_mock.py).
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
/usr/bin/python3 -c 'import dbusmock' >/dev/null 2>&1 || need_apt+=(python3-dbusmock)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v victoria-metrics >/dev/null || { echo "victoria-metrics is missing after install" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus is missing after install" >&2; exit 1; }
/usr/bin/python3 -c 'import fuse' || { echo "python3-fuse is missing after install" >&2; exit 1; }
/usr/bin/python3 -c 'import dbusmock' || { echo "python3-dbusmock is missing after install" >&2; exit 1; }

echo "==> cargo fmt --check"
cargo fmt --all -- --check
# The tests drive the agent's test hooks (src/agent/test_hooks.rs, feature test-hooks): the
# package's dev-dependency on itself turns the feature on in every build that compiles tests, so
# --all-targets lints them with the hooks; --lib --bins lints the shipped code without them.
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --lib --bins -- -D warnings
echo "==> cargo clippy --no-default-features (the board build: no TLS)"
cargo clippy --workspace --all-targets --no-default-features -- -D warnings
echo "==> cargo test"
cargo test --workspace --no-run
# The two longest tests run beside the rest, each in its own process: the power cuts (200 cuts,
# about 400 s) and the soak (about 300 s) mostly wait on the agent, lazyfs and VictoriaMetrics.
# Run in the suite's two threads they came last and made it about 700 s; beside it, the suite
# takes about as long as the power cuts. Their output is printed when they end.
long_tests=(
  power_cut::power_cuts_under_the_agent_lose_no_committed_sample
  soak::soak_kills_restarts_and_blackhole_lose_and_duplicate_nothing
)
long_logs=$(mktemp -d)
long_pids=()
# Each in its own process group (setsid), so that a failing run stops the test binary and the
# agents, lazyfs and VictoriaMetrics it started, not only cargo.
stop_long() { for p in "${long_pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done; }
trap 'stop_long; rm -rf "$long_logs"' EXIT
skip=()
for t in "${long_tests[@]}"; do
  setsid cargo test -q -p belabox-metrics --test agent -- --exact "$t" >"$long_logs/${t%%::*}" 2>&1 &
  long_pids+=($!)
  skip+=(--skip "$t")
done
cargo test --workspace -- "${skip[@]}"
for i in "${!long_tests[@]}"; do
  t=${long_tests[$i]}
  if wait "${long_pids[$i]}"; then status=ok; else status=FAILED; fi
  echo "==> $t (run beside the suite): $status"
  cat "$long_logs/${t%%::*}"
  [ "$status" = ok ] || exit 1
done
long_pids=()
echo "==> cargo test --no-default-features: the HTTP client and config without TLS"
cargo test --no-default-features --lib --test net
