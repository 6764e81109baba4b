#!/usr/bin/env bash
# Cross-builds the agent for aarch64 (RK3588 / Jetson boards) and proves the result runs under
# qemu-user. One build, the board build: aarch64-unknown-linux-musl with the default features
# (https through rustls + ring), profile `board` (opt-level "z"), linked by rust-lld: one static
# binary that runs on any aarch64 Linux whatever its glibc (Jetson L4T 32 has 2.27), https
# included. ring's C and assembly are compiled by Debian's aarch64 cross gcc, with the glibc cross
# headers for <stdint.h> (headers only: musl's libc is what is linked). Checked: proc and store
# unit tests under qemu, the agent's own memmove/memcmp (proc/sys) and JSON number tests under
# qemu, `once` on the RK3588 fixture, https through it under qemu (`run` uploading for a few
# seconds to a VictoriaMetrics started with -tls, a certificate from a CA made here, trusted
# through remote.ca_file; the samples must arrive), size budget (MAX_BOARD_BYTES).
#
# Installs what it needs on a fresh Debian/Ubuntu machine (apt: gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user-static, and victoria-metrics, openssl, curl for the https
# check; rustup: the aarch64 musl std library). Needs root or sudo for apt. Host builds are not
# touched: linker/runner/CC are set through target-specific env variables only, and the build uses
# its own target dir (default target/cross).
#
# Usage: tests/cross-aarch64.sh            env: CARGO_TARGET_DIR (default target/cross)
#                                               BOARD_PROFILE (default board)
#                                               MAX_BOARD_BYTES (default 3407872 = 3.25 MiB: https, remote_write)
set -euo pipefail
cd "$(dirname "$0")/.."

BOARD_TARGET=aarch64-unknown-linux-musl
MAX_BOARD_BYTES="${MAX_BOARD_BYTES:-3407872}"
BOARD_PROFILE="${BOARD_PROFILE:-board}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cross}"
FIXTURE=tests/fixtures/rk3588-rock5b
start=$(date +%s)
step_start=

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
step() {
  local now; now=$(date +%s)
  if [ -n "$step_start" ]; then echo "    (took $((now - step_start)) s)"; fi
  step_start=$now
  echo "==> $*"
}
fail() { echo "cross-aarch64: FAIL: $*" >&2; exit 1; }

step "toolchain: apt packages and the rustup target"
need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu)
# ring's C includes <stdint.h>, which a hosted cross gcc takes from the target's libc headers
# (a recommend of gcc-aarch64-linux-gnu, so not pulled in by --no-install-recommends).
dpkg -s libc6-dev-arm64-cross >/dev/null 2>&1 || need_apt+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need_apt+=(qemu-user-static)
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "    installing ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
if ! rustup target list --installed | grep -qx "$BOARD_TARGET"; then
  rustup target add "$BOARD_TARGET"
fi

# `once` on the RK3588 capture under qemu: every line VictoriaMetrics JSONL, MemTotal right.
# Usage: check_once BIN [qemu options]
check_once() {
  local bin="$1"; shift
  local out; out=$(mktemp)
  qemu-aarch64-static "$@" "$bin" once \
    --procfs "$FIXTURE/proc" --sysfs "$FIXTURE/sys" --delay 100 >"$out"
  local lines; lines=$(wc -l <"$out")
  echo "    $lines JSONL lines"
  [ "$lines" -ge 40 ] || fail "expected at least 40 JSONL lines, got $lines"
  local jsonl='^{"metric":{"__name__":"[a-zA-Z_:][a-zA-Z0-9_:]*"[^}]*},"values":\[[^]]*\],"timestamps":\[[0-9]*\]}$'
  local bad; bad=$(grep -cv "$jsonl" "$out" || true)
  if [ "$bad" -ne 0 ]; then
    grep -v "$jsonl" "$out" | head -3 >&2 || true
    fail "$bad lines are not VictoriaMetrics JSONL"
  fi
  grep -q '"__name__":"memory_total_bytes".*"values":\[8226222080\]' "$out" \
    || fail "no memory_total_bytes line with value 8226222080 (the fixture's MemTotal)"
  rm -f "$out"
}

# The board build: static; rust-lld links musl's self-contained CRT and libc, the cross gcc only
# compiles ring's C/asm (its build script, through cc-rs); tests run under qemu without a sysroot.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
step "board build: cargo build --profile $BOARD_PROFILE --target $BOARD_TARGET (default features: https)"
cargo build --profile "$BOARD_PROFILE" --target "$BOARD_TARGET" --bin belabox-metrics
BOARD_BIN="$CARGO_TARGET_DIR/$BOARD_TARGET/$BOARD_PROFILE/belabox-metrics"
[ -x "$BOARD_BIN" ] || fail "$BOARD_BIN was not built"
if aarch64-linux-gnu-readelf -l "$BOARD_BIN" | grep -q INTERP; then
  fail "$BOARD_BIN asks for a dynamic loader: it is not static"
fi
if aarch64-linux-gnu-readelf -d "$BOARD_BIN" 2>/dev/null | grep -q NEEDED; then
  fail "$BOARD_BIN needs shared libraries"
fi
# The hot text (src/link/hot_text.ld, its patterns made from an x86_64 profile) must group the
# aarch64 build's functions too: its section holds more than half of the code (61 % on
# 2026-12-07; 0 would mean the patterns stopped matching this target's symbol names).
section_bytes() {
  aarch64-linux-gnu-readelf -SW "$BOARD_BIN" \
    | sed -n "s/.*\] $1 *PROGBITS *[0-9a-f]* [0-9a-f]* \([0-9a-f]*\) .*/\1/p"
}
hot_hex=$(section_bytes '\.text\.hot_first'); cold_hex=$(section_bytes '\.text')
[ -n "$hot_hex" ] && [ -n "$cold_hex" ] || fail "no .text.hot_first or .text section in $BOARD_BIN"
hot=$((16#$hot_hex)); cold=$((16#$cold_hex))
echo "    hot text $hot B, the rest $cold B"
[ "$hot" -gt "$cold" ] || fail "the hot text ($hot B) is not most of the code ($cold B left in .text)"

step "board build: unit tests of belabox-proc and belabox-store under qemu-aarch64"
cargo test --target "$BOARD_TARGET" -p belabox-proc -p belabox-store --lib
step "board build: the agent's memmove/memcmp (proc/sys, musl only) and JSON under qemu-aarch64"
cargo test --target "$BOARD_TARGET" -p belabox-sys --lib
cargo test --target "$BOARD_TARGET" -p belabox-metrics --no-default-features --lib -- jsonl::

step "board build: belabox-metrics once on the RK3588 fixture under qemu-aarch64"
check_once "$BOARD_BIN"
size=$(stat -c %s "$BOARD_BIN")
echo "    aarch64 static board binary ($BOARD_PROFILE, with https): $size bytes ($(( (size + 1023) / 1024 )) KiB), budget $MAX_BOARD_BYTES"
[ "$size" -le "$MAX_BOARD_BYTES" ] || fail "board binary is $size bytes, over the budget of $MAX_BOARD_BYTES"

# https through the board binary: `run` under qemu, uploading every second to a VictoriaMetrics on
# 127.0.0.1 with -tls, its certificate from a CA made here and trusted only through
# remote.ca_file, until the fixture's series arrived (at most 60 s). The trap stops both.
step "board build: https upload under qemu-aarch64 (VictoriaMetrics -tls, remote.ca_file)"
work=$(mktemp -d)
vm_pid=""
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; fi
  if [ -n "$vm_pid" ]; then kill "$vm_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=cross-aarch64 test CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/vm.key" -out "$work/vm.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$work/ext"
openssl x509 -req -in "$work/vm.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/ext" -out "$work/vm.crt" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
hport=$(free_port)
vm="https://127.0.0.1:$port"
victoria-metrics -storageDataPath="$work/vm" -httpListenAddr="127.0.0.1:$port" -tls \
  -tlsCertFile="$work/vm.crt" -tlsKeyFile="$work/vm.key" -search.latencyOffset=0 \
  -retentionPeriod=100y >"$work/vm.log" 2>&1 &
vm_pid=$!
for _ in $(seq 1 150); do
  curl -sf --cacert "$work/ca.pem" "$vm/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf --cacert "$work/ca.pem" "$vm/health" >/dev/null \
  || fail "VictoriaMetrics with -tls did not start: $(tail -5 "$work/vm.log")"
cat >"$work/config.toml" <<EOF
[device]
id = "qemu-board"
[collect]
interval = "1s"
[paths]
procfs = "$PWD/$FIXTURE/proc"
sysfs = "$PWD/$FIXTURE/sys"
[storage]
path = "$work/metrics.redb"
flush_interval = "1s"
[health]
address = "127.0.0.1:$hport"
[monitoring]
self_metrics_interval = "1h"
[logging]
format = "json"
[remote]
url = "$vm/api/v1/import"
ca_file = "$work/ca.pem"
upload_interval = "1s"
EOF
qemu-aarch64-static "$BOARD_BIN" check-config --config "$work/config.toml" >/dev/null \
  || fail "check-config refused the https config"
qemu-aarch64-static "$BOARD_BIN" run --config "$work/config.toml" >/dev/null 2>"$work/agent.log" &
agent_pid=$!
got=0
for _ in $(seq 1 60); do
  sleep 1
  curl -sf --cacert "$work/ca.pem" "$vm/internal/force_flush" >/dev/null || true
  got=$(curl -sf --cacert "$work/ca.pem" \
    "$vm/api/v1/export?match%5B%5D=%7Bdevice_id%3D%22qemu-board%22%7D" | wc -l || true)
  [ "$got" -ge 40 ] && break
done
kill "$agent_pid" 2>/dev/null || true
wait "$agent_pid" 2>/dev/null || true
agent_pid=""
echo "    $got series arrived over https from the board binary under qemu"
if grep -q '"error_kind":"tls"' "$work/agent.log"; then
  grep '"error_kind":"tls"' "$work/agent.log" | head -3 >&2
  fail "the board binary logged TLS errors"
fi
[ "$got" -ge 40 ] || fail "expected at least 40 series over https, got $got; log: $(tail -5 "$work/agent.log")"

step "done"
echo "cross-aarch64: OK in $(( $(date +%s) - start )) s: $BOARD_BIN (board, static musl, https)"
