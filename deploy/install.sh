#!/usr/bin/env bash
# Installs offload from this checkout: builds with Bazel, then puts the
# binaries, the preload library, the systemd unit and the default
# configuration in place. Existing files under /etc/offloadd are kept.
#
#   sudo deploy/install.sh                  # install into /
#   deploy/install.sh --destdir /tmp/root   # stage into a directory (no root needed)
#   sudo deploy/install.sh --no-build       # use what bazel-bin already has
set -euo pipefail
cd "$(dirname "$0")/.."

destdir=""
build=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $build -eq 1 ]]; then
  bazel build //daemon:offloadd //cli:offloadctl //client:liboffload.so //client:offload
fi
bin=$(bazel info bazel-bin 2>/dev/null)

install -d "$destdir/usr/sbin" "$destdir/usr/bin" "$destdir/usr/lib/offload" \
  "$destdir/lib/systemd/system" "$destdir/etc/offloadd" "$destdir/usr/share/doc/offload"
install -m 0755 "$bin/daemon/offloadd" "$destdir/usr/sbin/offloadd"
install -m 0755 "$bin/cli/offloadctl" "$destdir/usr/bin/offloadctl"
install -m 0755 "$bin/client/liboffload.so" "$destdir/usr/lib/offload/liboffload.so"
install -m 0755 "$bin/client/offload" "$destdir/usr/bin/offload"
install -m 0644 deploy/offloadd.service "$destdir/lib/systemd/system/offloadd.service"
for f in offloadd.conf rules.conf; do
  if [[ -e $destdir/etc/offloadd/$f ]]; then
    echo "install: keeping existing /etc/offloadd/$f"
  else
    install -m 0644 "deploy/$f" "$destdir/etc/offloadd/$f"
  fi
done
install -m 0644 README.md "$destdir/usr/share/doc/offload/README.md"

if [[ -z $destdir ]]; then
  if ! getent group offload >/dev/null; then
    groupadd --system offload
    echo "install: created group 'offload' (members may change rules: usermod -aG offload USER)"
  fi
  if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
    echo "install: done; start with: systemctl enable --now offloadd"
  else
    echo "install: done (no systemd running here; start with: offloadd &)"
  fi
else
  echo "install: staged into $destdir"
fi
