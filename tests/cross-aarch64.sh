#!/usr/bin/env bash
# Cross-builds the agent for aarch64-unknown-linux-gnu (RK3588 / Jetson boards) and proves the
# result runs: the proc and store unit tests under qemu-user, then `belabox-metrics once` on the
# captured RK3588 fixture under qemu, then the stripped binary's size against a budget.
#
# Installs what it needs on a fresh Debian/Ubuntu machine (apt: gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user-static; rustup: the aarch64 std). Needs root or sudo for apt.
# Host builds are not touched: the linker/runner are set through target-specific env variables
# only, and the build uses its own target dir (default target/cross) so it never waits on, or
# invalidates, the host build's target/ lock.
#
# The board binary is built with the `release-small` profile (Cargo.toml: release at opt-level
# "z"; at opt-level 3 the binary is ~45 % larger, see docs/building.md).
#
# Usage: tests/cross-aarch64.sh            env: CARGO_TARGET_DIR (default target/cross)
#                                               CROSS_PROFILE (default release-small)
#                                               MAX_BINARY_BYTES (default 4194304 = 4 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
MAX_BINARY_BYTES="${MAX_BINARY_BYTES:-4194304}"
PROFILE="${CROSS_PROFILE:-release-small}"
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
if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi

# Target-specific only: CC/AR for build scripts that compile C (curl-sys, aws-lc-sys via its cc
# builder — no cmake or clang needed for this target), the final linker, and the test runner.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

step "cargo build --profile $PROFILE --target $TARGET (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --profile "$PROFILE" --target "$TARGET" --bin belabox-metrics
BIN="$CARGO_TARGET_DIR/$TARGET/$PROFILE/belabox-metrics"
[ -x "$BIN" ] || fail "$BIN was not built"
machine=$(aarch64-linux-gnu-readelf -h "$BIN" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
[ "$machine" = "AArch64" ] || fail "$BIN is not an AArch64 ELF (Machine: $machine)"
if aarch64-linux-gnu-readelf -S "$BIN" | grep -q '\.symtab'; then
  fail "$BIN still has a .symtab: the profile's strip = \"symbols\" was not applied"
fi

step "unit tests of belabox-proc and belabox-store under qemu-aarch64"
cargo test --target "$TARGET" -p belabox-proc -p belabox-store --lib

step "belabox-metrics once on the RK3588 fixture under qemu-aarch64"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
qemu-aarch64-static -L "$SYSROOT" "$BIN" once \
  --procfs "$FIXTURE/proc" --sysfs "$FIXTURE/sys" --delay 100 >"$out"
lines=$(wc -l <"$out")
echo "    $lines JSONL lines"
[ "$lines" -ge 40 ] || fail "expected at least 40 JSONL lines, got $lines"
jsonl='^{"metric":{"__name__":"[a-zA-Z_:][a-zA-Z0-9_:]*"[^}]*},"values":\[[^]]*\],"timestamps":\[[0-9]*\]}$'
bad=$(grep -cv "$jsonl" "$out" || true)
if [ "$bad" -ne 0 ]; then
  grep -v "$jsonl" "$out" | head -3 >&2 || true
  fail "$bad lines are not VictoriaMetrics JSONL"
fi
grep -q '"__name__":"memory_total_bytes".*"values":\[8226222080\]' "$out" \
  || fail "no memory_total_bytes line with value 8226222080 (the fixture's MemTotal)"

step "binary size"
size=$(stat -c %s "$BIN")
echo "    aarch64 stripped $PROFILE binary: $size bytes ($(( (size + 1023) / 1024 )) KiB), budget $MAX_BINARY_BYTES"
[ "$size" -le "$MAX_BINARY_BYTES" ] || fail "binary is $size bytes, over the budget of $MAX_BINARY_BYTES"

step "done"
echo "cross-aarch64: OK in $(( $(date +%s) - start )) s: $BIN"
