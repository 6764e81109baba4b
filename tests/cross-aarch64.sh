#!/usr/bin/env bash
# Cross-builds the agent for aarch64 (RK3588 / Jetson boards) and proves the results run under
# qemu-user. Two builds:
#
# 1. The board build: aarch64-unknown-linux-musl, `--no-default-features` (no TLS, so no C code
#    at all), profile `board` (opt-level "s"), linked by rust-lld: one static binary that runs on any
#    aarch64 Linux whatever its glibc (Jetson L4T 32 has 2.27), with the smallest RSS (no shared
#    libraries mapped; see docs/benchmarks.md). Checked: proc and store unit tests under qemu,
#    the agent's own memmove/memcmp (proc/sys) and JSON number tests under qemu,
#    `once` on the RK3588 fixture, size budget (MAX_BOARD_BYTES).
# 2. The TLS build: aarch64-unknown-linux-gnu with the default features (isahc/curl + rustls for
#    https:// URLs), built with Debian's cross gcc. Checked: `once` under qemu, size budget
#    (MAX_BINARY_BYTES), the glibc it needs.
#
# Installs what it needs on a fresh Debian/Ubuntu machine (apt: gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user-static; rustup: both aarch64 std libraries). Needs root or
# sudo for apt. Host builds are not touched: linker/runner are set through target-specific env
# variables only, and the builds use their own target dir (default target/cross).
#
# glibc (TLS build only): Debian 12's cross gcc links against glibc 2.36 symbols (the binary then
# needs glibc >= 2.34). CROSS_GLIBC=2.27 builds it with cargo-zigbuild against glibc 2.27 instead,
# installing ziglang + cargo-zigbuild from PyPI into a venv under the target dir.
#
# Usage: tests/cross-aarch64.sh            env: CARGO_TARGET_DIR (default target/cross)
#                                               CROSS_PROFILE (default release-small, TLS build)
#                                               BOARD_PROFILE (default board)
#                                               CROSS_GLIBC (default: none = gcc's glibc)
#                                               MAX_BOARD_BYTES (default 3145728 = 3 MiB)
#                                               MAX_BINARY_BYTES (default 4194304 = 4 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
BOARD_TARGET=aarch64-unknown-linux-musl
SYSROOT=/usr/aarch64-linux-gnu
MAX_BINARY_BYTES="${MAX_BINARY_BYTES:-4194304}"
MAX_BOARD_BYTES="${MAX_BOARD_BYTES:-3145728}"
BOARD_PROFILE="${BOARD_PROFILE:-board}"
PROFILE="${CROSS_PROFILE:-release-small}"
CROSS_GLIBC="${CROSS_GLIBC:-}"
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
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
[ -e "$SYSROOT/lib/libc.so.6" ] || need_apt+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need_apt+=(qemu-user-static)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "    installing ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
for t in "$TARGET" "$BOARD_TARGET"; do
  if ! rustup target list --installed | grep -qx "$t"; then
    rustup target add "$t"
  fi
done

# Target-specific only: CC/AR for build scripts that compile C (curl-sys, aws-lc-sys via its cc
# builder — no cmake or clang needed for this target), the final linker, and the test runner.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

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

# The board build: static, no TLS, no C compiler involved (rust-lld links musl's self-contained
# CRT and libc); the tests run under qemu without a sysroot.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
step "board build: cargo build --profile $BOARD_PROFILE --target $BOARD_TARGET --no-default-features"
cargo build --profile "$BOARD_PROFILE" --target "$BOARD_TARGET" --no-default-features --bin belabox-metrics
BOARD_BIN="$CARGO_TARGET_DIR/$BOARD_TARGET/$BOARD_PROFILE/belabox-metrics"
[ -x "$BOARD_BIN" ] || fail "$BOARD_BIN was not built"
if aarch64-linux-gnu-readelf -l "$BOARD_BIN" | grep -q INTERP; then
  fail "$BOARD_BIN asks for a dynamic loader: it is not static"
fi
if aarch64-linux-gnu-readelf -d "$BOARD_BIN" 2>/dev/null | grep -q NEEDED; then
  fail "$BOARD_BIN needs shared libraries"
fi

step "board build: unit tests of belabox-proc and belabox-store under qemu-aarch64"
cargo test --target "$BOARD_TARGET" -p belabox-proc -p belabox-store --lib
step "board build: the agent's memmove/memcmp (proc/sys, musl only) and JSON under qemu-aarch64"
cargo test --target "$BOARD_TARGET" -p belabox-sys --lib
cargo test --target "$BOARD_TARGET" -p belabox-metrics --no-default-features --lib -- jsonl::

step "board build: belabox-metrics once on the RK3588 fixture under qemu-aarch64"
check_once "$BOARD_BIN"
size=$(stat -c %s "$BOARD_BIN")
echo "    aarch64 static board binary ($BOARD_PROFILE, no TLS): $size bytes ($(( (size + 1023) / 1024 )) KiB), budget $MAX_BOARD_BYTES"
[ "$size" -le "$MAX_BOARD_BYTES" ] || fail "board binary is $size bytes, over the budget of $MAX_BOARD_BYTES"

# The TLS build (default features) for glibc boards.
if [ -z "$CROSS_GLIBC" ]; then
  step "cargo build --profile $PROFILE --target $TARGET (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  cargo build --profile "$PROFILE" --target "$TARGET" --bin belabox-metrics
  BIN="$CARGO_TARGET_DIR/$TARGET/$PROFILE/belabox-metrics"
else
  # Own target dir: zig's CC/linker would otherwise invalidate the gcc build's C objects.
  zig_dir="$CARGO_TARGET_DIR/zig-glibc$CROSS_GLIBC"
  venv="$CARGO_TARGET_DIR/zig-venv"
  step "cargo zigbuild --profile $PROFILE --target $TARGET.$CROSS_GLIBC (CARGO_TARGET_DIR=$zig_dir)"
  if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  fi
  env -u CC_aarch64_unknown_linux_gnu -u AR_aarch64_unknown_linux_gnu \
    -u CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER PATH="$PWD/$venv/bin:$PATH" \
    CARGO_TARGET_DIR="$zig_dir" \
    cargo-zigbuild zigbuild --profile "$PROFILE" --target "$TARGET.$CROSS_GLIBC" --bin belabox-metrics
  BIN="$zig_dir/$TARGET/$PROFILE/belabox-metrics"
fi
[ -x "$BIN" ] || fail "$BIN was not built"
machine=$(aarch64-linux-gnu-readelf -h "$BIN" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
[ "$machine" = "AArch64" ] || fail "$BIN is not an AArch64 ELF (Machine: $machine)"
if aarch64-linux-gnu-readelf -S "$BIN" | grep -q '\.symtab'; then
  fail "$BIN still has a .symtab: the profile's strip = \"symbols\" was not applied"
fi

glibc=$(aarch64-linux-gnu-objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
echo "    needs glibc >= $glibc on the board (Ubuntu 18.04 / Jetson L4T 32: 2.27, 20.04: 2.31, 22.04: 2.35)"
if [ -n "$CROSS_GLIBC" ] && [ "$(printf '%s\n%s\n' "$glibc" "$CROSS_GLIBC" | sort -V | tail -1)" != "$CROSS_GLIBC" ]; then
  fail "$BIN needs glibc $glibc, newer than CROSS_GLIBC=$CROSS_GLIBC"
fi

step "belabox-metrics once on the RK3588 fixture under qemu-aarch64"
check_once "$BIN" -L "$SYSROOT"

step "TLS build: binary size"
size=$(stat -c %s "$BIN")
echo "    aarch64 stripped $PROFILE binary with TLS: $size bytes ($(( (size + 1023) / 1024 )) KiB), budget $MAX_BINARY_BYTES"
[ "$size" -le "$MAX_BINARY_BYTES" ] || fail "binary is $size bytes, over the budget of $MAX_BINARY_BYTES"

step "done"
echo "cross-aarch64: OK in $(( $(date +%s) - start )) s: $BOARD_BIN (board, static) and $BIN (TLS)"
