#!/bin/bash
# offload launcher: help, usage errors, LD_PRELOAD and environment.
set -u
OFFLOAD=$1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

out=$("$OFFLOAD" --help); rc=$?
check "--help exits 0" '[ $rc = 0 ]'
check "--help explains" 'grep -q "usage: offload" <<<"$out" && grep -q -- "--app-id" <<<"$out"'
"$OFFLOAD" --bogus -- true >/dev/null 2>&1; rc=$?
check "unknown option exits 2" '[ $rc = 2 ]'
"$OFFLOAD" >/dev/null 2>&1; rc=$?
check "no command exits 2" '[ $rc = 2 ]'
env_out=$("$OFFLOAD" --debug --app-id web --no-offload --run-dir /nonexistent -- env)
check "LD_PRELOAD set" 'grep -q "^LD_PRELOAD=.*liboffload.so" <<<"$env_out"'
check "OFFLOAD_DEBUG" 'grep -q "^OFFLOAD_DEBUG=1$" <<<"$env_out"'
check "app id" 'grep -q "^OFFLOAD_APPLICATION_ID=web$" <<<"$env_out"'
check "opt-in" 'grep -q "^OFFLOAD_OFFLOADED_SOCKETS=0$" <<<"$env_out"'
check "run dir" 'grep -q "^OFFLOAD_RUN_DIR=/nonexistent$" <<<"$env_out"'
"$OFFLOAD" -- /nonexistent/program >/dev/null 2>&1; rc=$?
check "missing command exits 127" '[ $rc = 127 ]'
# With no daemon the program runs normally and its stderr stays clean.
err=$("$OFFLOAD" --run-dir /nonexistent -- sh -c 'exec 3<>/dev/null; echo ok' 2>&1)
check "runs without a daemon" '[ "$err" = ok ]'
exit $fail
