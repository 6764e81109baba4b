#!/usr/bin/env bash
# Builds the Debian package with cargo-deb ([package.metadata.deb] in Cargo.toml).
#
# Usage: systemd/debian/build-deb.sh [amd64|arm64] [extra cargo-deb options, e.g. --deb-version V]
#   amd64  the static board binary for x86_64 (x86_64-unknown-linux-musl, profile board, https),
#          built here: the same build as the arm64 package holds, so both packages ship the binary
#          that meets the 5 MiB https figure (4.8 MiB; the dynamic glibc `cargo build --release`
#          measures 6.4 MiB, 1.6 MiB of it glibc's own mappings: docs/architecture.md) and depend
#          on no libc. The package lands in target/debian/.
#          BELABOX_DEB_PROFILE=<profile> builds another profile of it.
#   arm64  the static board binary (aarch64-unknown-linux-musl, profile board, https) that
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

# Both binaries come stripped: the board profile strips at the link (src/link/build.rs passes -s),
# other profiles by `strip = "symbols"`. One built with BBM_KEEP_SYMBOLS=1 (for
# benches/hot_text.py) is not shipped.
refuse_symbols() {
  if readelf -S "$1" | grep -q '\.symtab'; then
    echo "build-deb.sh: $1 has its symbols (built with BBM_KEEP_SYMBOLS=1?)" >&2; exit 1
  fi
}

case "$arch" in
  amd64)
    triple=x86_64-unknown-linux-musl
    profile="${BELABOX_DEB_PROFILE:-board}"
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple" >&2
    # ring's C (feature tls): the host gcc serves the musl target (freestanding code) when there
    # is no musl-gcc, as in benches/resources.sh --board.
    if [ -z "${CC_x86_64_unknown_linux_musl:-}" ] && ! command -v musl-gcc >/dev/null 2>&1; then
      export CC_x86_64_unknown_linux_musl=cc
    fi
    cargo build --locked --profile "$profile" --target "$triple" --bin belabox-metrics >&2
    bin="${CARGO_TARGET_DIR:-target}/$triple/$profile/belabox-metrics"
    if readelf -l "$bin" | grep -q INTERP || readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
      echo "build-deb.sh: $bin is not static" >&2; exit 1
    fi
    refuse_symbols "$bin"
    out=$(cargo deb --locked --target "$triple" --profile "$profile" --no-build --no-strip "$@" | tail -1)
    ;;
  arm64)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cross}"
    bin="$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/${BOARD_PROFILE:-board}/belabox-metrics"
    [ -f "$bin" ] || { echo "build-deb.sh: no board binary at $bin: run tests/cross-aarch64.sh first" >&2; exit 1; }
    # cargo-deb's strip would need the cross binutils: the binary must come stripped.
    refuse_symbols "$bin"
    out=$(cargo deb --locked --target aarch64-unknown-linux-musl --profile "${BOARD_PROFILE:-board}" \
      --no-build --no-strip "$@" | tail -1)
    ;;
  *) echo "build-deb.sh: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
[ -f "$out" ] || { echo "build-deb.sh: cargo deb did not print a package path (got: $out)" >&2; exit 1; }
echo "$out"
