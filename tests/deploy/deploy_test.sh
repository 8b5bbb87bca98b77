#!/usr/bin/env bash
# Checks the files in deploy/: the systemd unit verifies cleanly (no warning)
# with the built daemon, names only real capabilities, the shipped
# offloadd.conf is a valid configuration, and the shipped rules.conf and the
# examples inside it parse.
#
# Usage: deploy_test.sh OFFLOADD OFFLOADCTL SERVICE CONF RULES
set -uo pipefail
# launch_daemon (the one way tests start offloadd); this script keeps its
# own ok/bad/cleanup, defined below.
source "$(dirname "$0")/../integration/lib/harness.sh"
offloadd=$1 offloadctl=$2 service=$3 conf=$4 rules=$5
work=$(mktemp -d /tmp/offload-deploy-test.XXXXXX)
daemon_pid=""
cleanup() {
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }

# 1. The unit file, with ExecStart pointing at the binary we built.
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/sbin/offloadd#$(realpath "$offloadd")#" "$service" >"$work/offloadd.service"
  out=$(systemd-analyze verify "$work/offloadd.service" 2>&1)
  if [[ $? -eq 0 && -z $out ]]; then ok "systemd-analyze verify: clean"; else bad "systemd-analyze verify: $out"; fi
else
  echo "note: systemd-analyze not installed; unit syntax not verified"
fi
caps=$(grep -E '^(CapabilityBoundingSet|AmbientCapabilities)=' "$service" | cut -d= -f2 | tr ' ' '\n' | sort -u)
for cap in $caps; do
  if grep -q "define $cap\b" /usr/include/linux/capability.h; then :; else bad "unknown capability $cap"; fi
done
ok "capabilities are real: $(echo $caps)"
for key in RuntimeDirectory=offloadd LimitMEMLOCK=infinity Restart=on-failure; do
  grep -q "^$key" "$service" && ok "unit has $key" || bad "unit lacks $key"
done

# 2. The default config validates.
out=$("$offloadd" --check-config --config "$conf" 2>&1)
[[ $? -eq 0 ]] && ok "offloadd.conf is valid" || bad "offloadd.conf: $out"
# ...and every commented example line is a real field: uncomment and check.
sed -E 's/^# ([a-z_]+: .*)$/\1/' "$conf" | grep -v '^#' >"$work/all.conf"
# interfaces block examples are multi-line; keep them commented.
sed -i '/interfaces {/,/}/d' "$work/all.conf"
out=$("$offloadd" --check-config --config "$work/all.conf" 2>&1)
[[ $? -eq 0 ]] && ok "uncommented offloadd.conf examples are valid" || bad "examples: $out"

# 3. The rules file parses (empty table) and its examples parse too.
mkdir -p "$work/run"
sed -E 's/^# (use |application-id )/\1/' "$rules" >"$work/examples.conf"
OFFLOADD=$offloadd OFFLOADCTL=$offloadctl
launch_daemon "" "$work/run" "$work/log" --rules "$work/examples.conf" || bad "offloadd did not start"
daemon_pid=$DAEMON_PID
out=$("$offloadctl" --socket "$work/run/control.sock" rules 2>&1)
n=$(grep -c '^[0-9]' <<<"$out")
[[ $n -eq 4 ]] && ok "rules.conf examples parse ($n rules)" || bad "rules.conf examples: $out $(cat "$work/log")"
[[ $out == *"use offload tcp_client 192.168.1.0/24:*:*:*"*"sockperf B1"* ]] &&
  ok "VMA manual example kept its section" || bad "section: $out"

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
