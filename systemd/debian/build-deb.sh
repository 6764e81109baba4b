#!/usr/bin/env bash
# Builds the Debian package with cargo-deb ([package.metadata.deb] in Cargo.toml).
#
# Usage: systemd/debian/build-deb.sh [amd64|arm64] [extra cargo-deb options, e.g. --deb-version V]
#   amd64  the default build of this machine (cargo deb: profile release, TLS on); the package
#          lands in target/debian/. BELABOX_DEB_PROFILE=<profile> builds another profile (tests).
#   arm64  the static board binary (aarch64-unknown-linux-musl, profile board, no TLS) that
#          tests/cross-aarch64.sh builds into target/cross/: no build here, no glibc dependency, so
#          it installs on every aarch64 board (Jetson L4T 32's glibc 2.27 too). The package lands
#          in target/cross/debian/.
# Installs cargo-deb from crates.io (cargo install cargo-deb --locked) when it is missing.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch="${1:-amd64}"
[ $# -eq 0 ] || shift

if ! cargo deb --version >/dev/null 2>&1; then
  echo "==> installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked >&2
fi

case "$arch" in
  amd64)
    profile=()
    if [ -n "${BELABOX_DEB_PROFILE:-}" ]; then profile=(--profile "$BELABOX_DEB_PROFILE"); fi
    out=$(cargo deb --locked "${profile[@]}" "$@" | tail -1)
    ;;
  arm64)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cross}"
    bin="$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/${BOARD_PROFILE:-board}/belabox-metrics"
    [ -f "$bin" ] || { echo "build-deb.sh: no board binary at $bin: run tests/cross-aarch64.sh first" >&2; exit 1; }
    # Already stripped by the profile (strip = "symbols"); cargo-deb's strip would need the cross binutils.
    out=$(cargo deb --locked --target aarch64-unknown-linux-musl --profile "${BOARD_PROFILE:-board}" \
      --no-build --no-strip "$@" | tail -1)
    ;;
  *) echo "build-deb.sh: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
[ -f "$out" ] || { echo "build-deb.sh: cargo deb did not print a package path (got: $out)" >&2; exit 1; }
echo "$out"
