#!/usr/bin/env bash
# Checks systemd/belabox-metrics.service with systemd's own tools:
#   1. `systemd-analyze verify`: must print nothing. verify exits 0 on unknown keys and invalid
#      values (it only warns, and systemd then ignores the line), so any output counts as an error.
#   2. `systemd-analyze security --offline=true`: prints the exposure score (0 = locked down,
#      10 = unprotected) and fails above MAX_EXPOSURE. Skipped, with a message, on systemd < 250,
#      which has no --offline.
# verify needs ExecStart's binary to exist, so it checks a temp copy of the unit whose ExecStart
# points at BELABOX_METRICS_BIN (the integration test passes the binary cargo built), else at
# target/{release,debug}/belabox-metrics, else at a stub executable.
# Installs the Debian package `systemd` when systemd-analyze is missing (needs root or sudo).
#
# Usage: tests/systemd-check.sh        env: BELABOX_METRICS_BIN, MAX_EXPOSURE (default 2.0),
#                                           UNIT_FILE (default systemd/belabox-metrics.service),
#                                           DROP_IN (a .conf checked as the unit's drop-in, e.g.
#                                           systemd/examples/soc-root.conf)
# Prints `verify: clean` and `exposure: N.N` lines; exit 1 on any verify message or a score over
# the limit.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT="${UNIT_FILE:-systemd/belabox-metrics.service}"
MAX_EXPOSURE="${MAX_EXPOSURE:-2.0}"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "==> installing systemd (for systemd-analyze)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd
fi
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing after install" >&2; exit 1; }
echo "systemd-analyze: $(systemd-analyze --version | head -1)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bin="${BELABOX_METRICS_BIN:-}"
if [ -z "$bin" ]; then
  for b in target/release/belabox-metrics target/debug/belabox-metrics; do
    if [ -x "$b" ]; then bin="$PWD/$b"; break; fi
  done
fi
if [ -z "$bin" ]; then
  bin="$tmp/belabox-metrics"
  printf '#!/bin/sh\nexit 0\n' >"$bin"
  chmod 755 "$bin"
  echo "ExecStart binary: stub $bin (no built binary found)"
else
  echo "ExecStart binary: $bin"
fi
[ -x "$bin" ] || { echo "$bin is not executable" >&2; exit 1; }

# Same file name, so verify and security report on belabox-metrics.service.
grep -q '^ExecStart=/usr/local/bin/belabox-metrics ' "$UNIT" \
  || { echo "$UNIT: ExecStart is not /usr/local/bin/belabox-metrics ..." >&2; exit 1; }
sed "s#^ExecStart=/usr/local/bin/belabox-metrics #ExecStart=$bin #" "$UNIT" >"$tmp/belabox-metrics.service"
if [ -n "${DROP_IN:-}" ]; then
  # Beside the unit, where verify and security load drop-ins from.
  mkdir "$tmp/belabox-metrics.service.d"
  cp "$DROP_IN" "$tmp/belabox-metrics.service.d/"
  echo "drop-in: $DROP_IN"
fi

echo "==> systemd-analyze verify $UNIT"
status=0
out=$(systemd-analyze verify "$tmp/belabox-metrics.service" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
  printf '%s\n' "$out" | sed "s#$tmp/##"
  echo "verify: FAILED (exit $status, $(printf '%s\n' "$out" | grep -c .) messages)"
  exit 1
fi
echo "verify: clean"

echo "==> systemd-analyze security --offline=true $UNIT"
if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
  echo "exposure: skipped (this systemd has no 'security --offline'; needs systemd >= 250)"
  exit 0
fi
status=0
out=$(systemd-analyze security --offline=true "$tmp/belabox-metrics.service" 2>&1) || status=$?
# The table's ✗ rows are what is still open; the last line carries the score.
printf '%s\n' "$out" | grep '✗' || true
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { printf '%s\n' "$out"; echo "exposure: no score in the output (exit $status)" >&2; exit 1; }
echo "exposure: $score (limit $MAX_EXPOSURE)"
if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
  echo "exposure: FAILED ($score > $MAX_EXPOSURE)"
  exit 1
fi
