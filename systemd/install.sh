#!/usr/bin/env bash
# Installs belabox-metrics as a hardened systemd service (see docs/install.md for the same steps
# written out). Idempotent: re-running upgrades the binary and the unit, keeps an existing
# config.toml and token, fixes owners and modes, and restarts the service only if something changed.
#
# Usage: systemd/install.sh [--dry-run] [--binary PATH] [--token-file PATH] [--remote-url URL]
#                           [--force-config]
#   --binary PATH      agent binary to install (default: target/release/belabox-metrics; for a
#                      board: target/cross/aarch64-unknown-linux-gnu/release-small/belabox-metrics
#                      from tests/cross-aarch64.sh)
#   --token-file PATH  bearer token to install as /etc/belabox-metrics/token (0600, owner
#                      belabox-metrics); replaces an existing token
#   --remote-url URL   VictoriaMetrics import URL: a new config.toml gets a [remote] section with
#                      this url (and token_file when a token is installed)
#   --force-config     overwrite an existing /etc/belabox-metrics/config.toml (the old one is kept
#                      as config.toml.bak)
#   --dry-run          print every action, change nothing
# Needs root (or sudo) unless --dry-run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"

NAME=belabox-metrics
BIN_DST=/usr/local/bin/$NAME
ETC=/etc/$NAME
CONFIG=$ETC/config.toml
TOKEN=$ETC/token
STATE=/var/lib/$NAME
STORE_PATH=$STATE/metrics.redb
UNIT_DST=/etc/systemd/system/$NAME.service
DOC_DST=/usr/local/share/doc/$NAME

dry_run=0 force_config=0 binary="" token_src="" remote_url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --force-config) force_config=1 ;;
    --binary) binary="${2:?--binary needs a path}"; shift ;;
    --binary=*) binary="${1#*=}" ;;
    --token-file) token_src="${2:?--token-file needs a path}"; shift ;;
    --token-file=*) token_src="${1#*=}" ;;
    --remote-url) remote_url="${2:?--remote-url needs a URL}"; shift ;;
    --remote-url=*) remote_url="${1#*=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
binary="${binary:-$REPO/target/release/$NAME}"

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }
# Every change goes through run: printed always, executed unless --dry-run.
run() {
  echo "    +$(printf ' %q' "$@")"
  if [ "$dry_run" -eq 0 ]; then "$@"; fi
}
changed=0

[ "$dry_run" -eq 1 ] || [ "$(id -u)" -eq 0 ] || die "needs root (try: sudo $0 $*), or --dry-run"
[ -f "$binary" ] || die "no binary at $binary (build it: cargo build --release, or tests/cross-aarch64.sh for aarch64; or pass --binary)"
[ -f "$REPO/configs/config.toml" ] || die "missing $REPO/configs/config.toml"
[ -f "$REPO/systemd/$NAME.service" ] || die "missing $REPO/systemd/$NAME.service"
[ -z "$token_src" ] || [ -f "$token_src" ] || die "no token file at $token_src"
case "$remote_url" in ""|http://*|https://*) ;; *) die "--remote-url must start with http:// or https://" ;; esac
if [ "$dry_run" -eq 1 ]; then say "dry run: nothing will be changed"; fi

# A binary for another architecture (x86_64 build copied to a board) fails here, not in systemd.
if ! version=$("$binary" --version 2>&1); then
  if [ "$dry_run" -eq 1 ]; then
    echo "    (warning: $binary does not run on this machine: $version)"
  else
    die "$binary does not run on this machine ($(uname -m)): $version"
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "system user and group $NAME (no login, no home)"
nologin=$(command -v nologin || true)
for n in /usr/sbin/nologin /sbin/nologin; do [ -n "$nologin" ] || { [ -x "$n" ] && nologin=$n; }; done
nologin=${nologin:-/bin/false}
if getent group "$NAME" >/dev/null; then
  echo "    group $NAME exists"
else
  run groupadd --system "$NAME"
fi
if getent passwd "$NAME" >/dev/null; then
  echo "    user $NAME exists"
else
  run useradd --system --gid "$NAME" --no-create-home --home-dir /nonexistent \
    --shell "$nologin" --comment "belabox-metrics agent" "$NAME"
fi

say "binary $BIN_DST"
if [ -f "$BIN_DST" ] && cmp -s "$binary" "$BIN_DST"; then
  echo "    unchanged"
else
  # Copy beside, then rename: atomic, and no "text file busy" while the old one runs.
  run install -m 0755 -o root -g root "$binary" "$BIN_DST.new"
  run mv -f "$BIN_DST.new" "$BIN_DST"
  changed=1
fi

say "configuration $ETC (0750 root:$NAME)"
run install -d -m 0750 -o root -g "$NAME" "$ETC"
# The shipped config is the development copy: only storage.path (in [storage]) changes.
sed '/^\[storage\]/,/^\[/ s#^path = .*#path = "'"$STORE_PATH"'"#' \
  "$REPO/configs/config.toml" >"$tmp/config.toml"
[ "$(grep -c '^path = "'"$STORE_PATH"'"$' "$tmp/config.toml")" -eq 1 ] \
  || die "could not set storage.path in configs/config.toml (no \`path = ...\` line under [storage]?)"
if grep -q '^path = "\./data' "$tmp/config.toml"; then die "configs/config.toml still points into ./data"; fi
echo "    config.toml = configs/config.toml with storage.path = \"$STORE_PATH\""
if [ -n "$remote_url" ]; then
  {
    echo
    echo "# Added by systemd/install.sh --remote-url."
    echo "[remote]"
    echo "url = \"$remote_url\""
    if [ -n "$token_src" ] || [ -f "$TOKEN" ]; then echo "token_file = \"$TOKEN\""; fi
  } >>"$tmp/config.toml"
fi
if [ -f "$CONFIG" ] && [ "$force_config" -eq 0 ]; then
  echo "    $CONFIG exists: kept (--force-config replaces it)"
  if ! cmp -s "$tmp/config.toml" "$CONFIG"; then
    run install -m 0640 -o root -g "$NAME" "$tmp/config.toml" "$CONFIG.dist"
    echo "    (it differs from this version's default, installed beside it as $CONFIG.dist: diff -u $CONFIG.dist $CONFIG)"
  fi
  if [ -n "$remote_url" ]; then echo "    (--remote-url is ignored for a kept config: set [remote] url by hand)"; fi
  run chown root:"$NAME" "$CONFIG"
  run chmod 0640 "$CONFIG"
else
  if [ -f "$CONFIG" ] && ! cmp -s "$tmp/config.toml" "$CONFIG"; then
    run cp -p "$CONFIG" "$CONFIG.bak"
  fi
  if ! { [ -f "$CONFIG" ] && cmp -s "$tmp/config.toml" "$CONFIG"; }; then changed=1; fi
  run install -m 0640 -o root -g "$NAME" "$tmp/config.toml" "$CONFIG"
fi

if [ -n "$token_src" ]; then
  say "token $TOKEN (0600 $NAME:$NAME)"
  if ! { [ -f "$TOKEN" ] && cmp -s "$token_src" "$TOKEN"; }; then changed=1; fi
  run install -m 0600 -o "$NAME" -g "$NAME" "$token_src" "$TOKEN"
elif [ -f "$TOKEN" ]; then
  say "token $TOKEN exists: owner and mode fixed"
  run chown "$NAME:$NAME" "$TOKEN"
  run chmod 0600 "$TOKEN"
fi

say "state directory $STATE (0750 $NAME:$NAME)"
run install -d -m 0750 -o "$NAME" -g "$NAME" "$STATE"

if [ "$dry_run" -eq 0 ]; then
  say "check-config"
  "$BIN_DST" check-config --config "$CONFIG" >/dev/null \
    || die "$CONFIG does not load (the message above names the key); fix it and re-run"
  echo "    $CONFIG is valid"
fi

say "unit $UNIT_DST and docs $DOC_DST"
if ! { [ -f "$UNIT_DST" ] && cmp -s "$REPO/systemd/$NAME.service" "$UNIT_DST"; }; then changed=1; fi
run install -m 0644 -o root -g root "$REPO/systemd/$NAME.service" "$UNIT_DST"

# systemd < 239 (Ubuntu 18.04 / Jetson L4T 32 has 237) has no @system-service group: it would
# ignore it and leave an allow-list of @default alone, and the agent could not even open a socket.
# There, a drop-in replaces the allow-list by a deny-list of the groups the agent never needs.
# BELABOX_SYSTEMD_VERSION overrides the detected version (tests).
COMPAT_DIR="/etc/systemd/system/$NAME.service.d"
COMPAT="$COMPAT_DIR/10-systemd-before-239.conf"
sd_version="${BELABOX_SYSTEMD_VERSION:-$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 }')}"
if [ -n "$sd_version" ] && [ "${sd_version%%[!0-9]*}" -lt 239 ] 2>/dev/null; then
  echo "    systemd $sd_version < 239: drop-in $COMPAT (system call deny-list)"
  cat >"$tmp/compat.conf" <<'CONF'
# Written by belabox-metrics' systemd/install.sh: this systemd (< 239) has no @system-service
# system call group, so the unit's allow-list is replaced by a deny-list.
[Service]
SystemCallFilter=
SystemCallFilter=~@clock @cpu-emulation @debug @keyring @module @mount @obsolete @raw-io @reboot @swap @privileged @resources
CONF
  if ! { [ -f "$COMPAT" ] && cmp -s "$tmp/compat.conf" "$COMPAT"; }; then changed=1; fi
  run install -d -m 0755 "$COMPAT_DIR"
  run install -m 0644 -o root -g root "$tmp/compat.conf" "$COMPAT"
elif [ -f "$COMPAT" ]; then
  echo "    systemd ${sd_version:-?} >= 239: the old-systemd drop-in is no longer needed"
  run rm -f "$COMPAT"
  changed=1
fi

run install -d -m 0755 "$DOC_DST"
for doc in install.md systemd.md troubleshooting.md; do
  if [ -f "$REPO/docs/$doc" ]; then run install -m 0644 "$REPO/docs/$doc" "$DOC_DST/$doc"; fi
done

# /run/systemd/system exists only when systemd is PID 1 (sd_booted(3)).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  say "systemd: daemon-reload, enable, start"
  run systemctl daemon-reload
  run systemctl enable "$NAME.service"
  if [ "$dry_run" -eq 0 ] && systemctl is-active --quiet "$NAME.service"; then
    if [ "$changed" -eq 1 ]; then run systemctl restart "$NAME.service"; else echo "    running, nothing changed: not restarted"; fi
  else
    run systemctl start "$NAME.service"
  fi
  if [ "$dry_run" -eq 0 ]; then systemctl --no-pager --lines=5 status "$NAME.service" || true; fi
else
  say "systemd is not running here: skipped daemon-reload/enable/start"
  echo "    on the board: systemctl daemon-reload && systemctl enable --now $NAME"
fi
say "done${version:+ ($version)}"
