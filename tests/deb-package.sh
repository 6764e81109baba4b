#!/usr/bin/env bash
# The Debian package end to end, as root on a DISPOSABLE machine: builds the amd64 package
# (systemd/debian/build-deb.sh), lintian (no errors), dpkg -i (user, paths, owners, modes, the
# conffile, the unit enabled and not started without remote.url, check-config as the agent's
# user, an agent run that creates the store), an upgrade to a rebuilt package whose own
# config.toml changed while the local one was edited (dpkg --force-confold: the local one is
# kept, the store too, and the new binary opens it), then dpkg -r (config, store and user stay)
# and dpkg -P (all gone).
#
# It installs and purges the package `belabox-metrics` and creates/deletes the system user of
# that name, so it runs only when CI=true (a fresh CI machine) or BELABOX_DEB_TEST=1; otherwise it
# says so and exits 0. Needs root. Env: BELABOX_DEB_PROFILE (cargo profile for the binary,
# default release).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != "true" ] && [ "${BELABOX_DEB_TEST:-}" != "1" ]; then
  echo "deb-package: SKIPPED (installs and purges a system package: set BELABOX_DEB_TEST=1 on a disposable machine; CI=true runs it)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "deb-package: needs root" >&2; exit 1; }

NAME=belabox-metrics
ETC=/etc/$NAME
STATE=/var/lib/$NAME
start=$(date +%s)
step() { echo "==> $* ($(( $(date +%s) - start )) s)"; }
fail() { echo "deb-package: FAIL: $*" >&2; exit 1; }
# perm PATH MODE OWNER:GROUP
perm() {
  [ -e "$1" ] || fail "$1 missing"
  got=$(stat -c '%a %U:%G' "$1")
  [ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
  echo "    $1 $got"
}
gone() { [ ! -e "$1" ] || fail "$1 still exists"; }

if dpkg -s "$NAME" >/dev/null 2>&1; then
  fail "package $NAME is already installed here: not a disposable machine? (dpkg -P $NAME first)"
fi
tmp=$(mktemp -d)
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; fi
  if dpkg -s "$NAME" >/dev/null 2>&1 || [ -n "$(dpkg-query -W -f='${Status}' "$NAME" 2>/dev/null || true)" ]; then
    dpkg -P "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

for tool in lintian fakeroot; do
  if ! command -v "$tool" >/dev/null; then
    step "installing $tool"
    apt-get install -y --no-install-recommends "$tool" >/dev/null
  fi
done

step "build the amd64 package (cargo deb)"
deb1=$(systemd/debian/build-deb.sh amd64)
echo "    $deb1"
[ "$(dpkg-deb -f "$deb1" Architecture)" = amd64 ] || fail "$deb1 is not amd64"
v1=$(dpkg-deb -f "$deb1" Version)

step "lintian: no errors"
# Tags of severity error fail; warnings and info are printed.
lintian --fail-on error --tag-display-limit 0 "$deb1" || fail "lintian found errors in $deb1"

step "contents (dpkg-deb -c)"
dpkg-deb -c "$deb1" | tee "$tmp/contents"
for p in ./usr/bin/$NAME ./lib/systemd/system/$NAME.service ./etc/$NAME/config.toml \
         ./usr/share/$NAME/grafana/$NAME.json ./usr/share/$NAME/alerts/$NAME.rules.yml \
         ./usr/share/$NAME/belabox.toml \
         ./usr/share/doc/$NAME/install.md ./usr/share/doc/$NAME/copyright \
         ./usr/share/doc/$NAME/changelog.Debian.gz; do
  grep -q " $p\$" "$tmp/contents" || fail "$p not in the package"
done
dpkg-deb -I "$deb1" conffiles | grep -qx "/etc/$NAME/config.toml" || fail "config.toml is not a conffile"
# The packaged agent is the static musl board build (systemd/debian/build-deb.sh): no loader, no
# shared library, no libc in Depends, and https compiled in.
mkdir "$tmp/x1"
dpkg-deb -x "$deb1" "$tmp/x1"
if readelf -l "$tmp/x1/usr/bin/$NAME" | grep -q INTERP || readelf -d "$tmp/x1/usr/bin/$NAME" | grep -q NEEDED; then
  fail "the packaged /usr/bin/$NAME is not static"
fi
if dpkg-deb -f "$deb1" Depends | grep -q libc; then fail "the package depends on libc: $(dpkg-deb -f "$deb1" Depends)"; fi
# A build without TLS refuses an https:// remote.url (check-config exits 2).
printf '[storage]\npath = "%s/x1.redb"\n[remote]\nurl = "https://127.0.0.1:1/api/v1/import"\n' "$tmp" >"$tmp/https.toml"
"$tmp/x1/usr/bin/$NAME" check-config --config "$tmp/https.toml" >/dev/null \
  || fail "the packaged agent refuses an https:// remote.url: built without TLS?"
echo "    /usr/bin/$NAME: static, Depends: $(dpkg-deb -f "$deb1" Depends)"

step "dpkg -i $v1"
dpkg -i "$deb1"
getent passwd "$NAME" >/dev/null || fail "no user $NAME"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$NAME")
[ "$uid" -lt 1000 ] || fail "$NAME uid $uid is not a system uid"
[ "$home" = /nonexistent ] || fail "$NAME home is $home"
case "$shell" in */nologin|/bin/false) ;; *) fail "$NAME has a login shell $shell" ;; esac
[ "$(getent group "$NAME" | cut -d: -f3)" = "$gid" ] || fail "$NAME's primary group is not $NAME"
echo "    user $NAME uid $uid gid $gid home $home shell $shell"
perm /usr/bin/$NAME 755 root:root
perm /lib/systemd/system/$NAME.service 644 root:root
perm "$ETC" 750 root:$NAME
perm "$ETC/config.toml" 640 root:$NAME
perm "$STATE" 750 $NAME:$NAME
perm /usr/share/$NAME/grafana/$NAME.json 644 root:root
grep -qx "ExecStart=/usr/bin/$NAME run --config $ETC/config.toml" /lib/systemd/system/$NAME.service \
  || fail "the unit does not start /usr/bin/$NAME"
grep -qx "path = \"$STATE/metrics.redb\"" "$ETC/config.toml" || fail "storage.path is not in $STATE"
[ -L /etc/systemd/system/multi-user.target.wants/$NAME.service ] || fail "the unit is not enabled"
echo "    unit enabled (multi-user.target.wants)"
if [ -d /run/systemd/system ]; then
  ! systemctl is-active --quiet $NAME || fail "the unit was started although no remote.url is set"
  echo "    systemd running: unit enabled, not active (no remote.url)"
fi
/usr/bin/$NAME --version
/usr/bin/$NAME check-config --config "$ETC/config.toml" >/dev/null || fail "check-config refuses the installed config"
# The agent's own user can read its config (the unit runs it as that user).
runuser -u "$NAME" -- /usr/bin/$NAME check-config --config "$ETC/config.toml" >/dev/null \
  || fail "check-config as $NAME refuses the installed config"
echo "    check-config: ok (root and $NAME)"

step "local config change, and an agent run as $NAME that creates the store"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i -e 's/^id = ""$/id = "deb-test"/' -e "s/^address = \"127.0.0.1:9100\"\$/address = \"127.0.0.1:$port\"/" \
  -e 's/^interval = "10s"$/interval = "1s"/' -e 's/^flush_interval = "10s"$/flush_interval = "1s"/' "$ETC/config.toml"
grep -q '^id = "deb-test"$' "$ETC/config.toml" || fail "could not edit the config"
echo "# local change kept across upgrades" >>"$ETC/config.toml"
run_agent() {
  # setpriv execs the agent (runuser would stay as its parent and turn SIGTERM into a failure).
  # umask 0027 as the unit's UMask=.
  (umask 0027; exec setpriv --reuid="$NAME" --regid="$NAME" --init-groups \
    /usr/bin/$NAME run --config "$ETC/config.toml" 2>"$tmp/agent-$1.log") &
  agent_pid=$!
  for _ in $(seq 1 100); do
    if /usr/bin/$NAME status --config "$ETC/config.toml" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  sleep 3
  kill -TERM "$agent_pid"
  wait "$agent_pid" || fail "the agent exited with $?: $(cat "$tmp/agent-$1.log")"
  agent_pid=""
}
run_agent 1
perm "$STATE/metrics.redb" 640 $NAME:$NAME
n1=$(/usr/bin/$NAME store export --config "$ETC/config.toml" | grep -c '"deb-test"' || true)
[ "$n1" -gt 0 ] || fail "the store holds no samples of deb-test: $(cat "$tmp/agent-1.log")"
echo "    store: $n1 samples"
conf_sum=$(sha256sum <"$ETC/config.toml")

step "upgrade: a rebuilt package with a newer version and a changed default config"
v2="${v1%-*}-99"
deb2=$(systemd/debian/build-deb.sh amd64 --deb-version "$v2")
# The new version's own config.toml differs too: dpkg must ask, and --force-confold keeps ours.
mkdir "$tmp/pkg"
dpkg-deb -R "$deb2" "$tmp/pkg"
echo "# changed default in $v2" >>"$tmp/pkg/etc/$NAME/config.toml"
(cd "$tmp/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
fakeroot dpkg-deb -b "$tmp/pkg" "$tmp/$NAME-$v2.deb" >/dev/null
dpkg -i --force-confold "$tmp/$NAME-$v2.deb"
[ "$(dpkg-query -W -f='${Version}' "$NAME")" = "$v2" ] || fail "not upgraded to $v2"
[ "$(sha256sum <"$ETC/config.toml")" = "$conf_sum" ] || fail "the upgrade changed the local config"
[ -f "$ETC/config.toml.dpkg-dist" ] || fail "the new default config is not beside it as config.toml.dpkg-dist"
echo "    local config kept; new default as config.toml.dpkg-dist"
[ "$(getent passwd "$NAME" | cut -d: -f3)" = "$uid" ] || fail "the upgrade changed the user"
perm "$ETC" 750 root:$NAME
perm "$ETC/config.toml" 640 root:$NAME
perm "$STATE" 750 $NAME:$NAME
perm "$STATE/metrics.redb" 640 $NAME:$NAME
run_agent 2
n2=$(/usr/bin/$NAME store export --config "$ETC/config.toml" | grep -c '"deb-test"' || true)
[ "$n2" -gt "$n1" ] || fail "after the upgrade the store holds $n2 samples, before $n1"
echo "    store kept and reopened by the new binary: $n1 -> $n2 samples"

step "dpkg -r: binary and unit gone; config, store and user stay"
dpkg -r "$NAME"
gone /usr/bin/$NAME
gone /lib/systemd/system/$NAME.service
gone /usr/share/$NAME
[ -f "$ETC/config.toml" ] || fail "dpkg -r removed the conffile"
[ -f "$STATE/metrics.redb" ] || fail "dpkg -r removed the store"
getent passwd "$NAME" >/dev/null || fail "dpkg -r removed the user"

step "dpkg -P: config, state, user and group gone"
dpkg -P "$NAME"
gone "$ETC"
gone "$STATE"
! getent passwd "$NAME" >/dev/null || fail "user $NAME still exists"
! getent group "$NAME" >/dev/null || fail "group $NAME still exists"
gone /etc/systemd/system/multi-user.target.wants/$NAME.service
[ -z "$(dpkg-query -W -f='${Status}' "$NAME" 2>/dev/null || true)" ] || fail "dpkg still knows $NAME"

step "deb-package: OK"
