#!/bin/bash
# The README's echo example, run: api/examples/echo_server serves three
# connections on a kernel-picked 127.0.0.1 port; echo_client sends text
# through it three times (short lines, long lines, an empty input) and must
# get exactly its input back; the server must then exit 0 by itself. Then
# checks that every code block of README.md marked "from
# api/examples/FILE" appears verbatim in that file, so the README shows code
# that compiles and runs. No fixed sleeps: waits on the server's output,
# bounded.
set -u
RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
SERVER="$RUNFILES/api/examples/echo_server"
CLIENT="$RUNFILES/api/examples/echo_client"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/echo.XXXXXX")"
SERVER_PID=""
FAILURES=0
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok:   $*"; }

"$SERVER" 0 3 >"$WORK/server.out" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 400); do
  ADDR="$(sed -n 's/^listening on //p' "$WORK/server.out")"
  [[ -n "$ADDR" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.05
done
if [[ -z "$ADDR" ]]; then
  echo "FAIL: echo_server did not start:"; cat "$WORK/server.out"; exit 1
fi
pass "echo_server listening on $ADDR"

printf 'hello\nworld\n' >"$WORK/in1"
seq 1 2000 | sed 's/$/ the quick brown fox jumps over the lazy dog/' >"$WORK/in2"
: >"$WORK/in3"
for i in 1 2 3; do
  if "$CLIENT" "$ADDR" <"$WORK/in$i" >"$WORK/out$i" 2>"$WORK/err$i"; then
    if cmp -s "$WORK/in$i" "$WORK/out$i"; then
      pass "echo_client run $i: $(wc -c <"$WORK/in$i") bytes echoed"
    else
      fail "echo_client run $i: output differs from input"
    fi
  else
    fail "echo_client run $i exited $?: $(cat "$WORK/err$i")"
  fi
done
wait "$SERVER_PID"; rc=$?; SERVER_PID=""
if [[ $rc -eq 0 ]]; then pass "echo_server exited 0 after 3 connections"
else fail "echo_server exited $rc"; fi
if "$CLIENT" "$ADDR" </dev/null 2>"$WORK/err4"; then
  fail "echo_client succeeded with no server"
else
  pass "echo_client without a server: $(cat "$WORK/err4")"
fi

python3 - "$RUNFILES" <<'PY' || FAILURES=$((FAILURES + 1))
import os, re, sys
root = sys.argv[1]
readme = open(os.path.join(root, "README.md")).read()
blocks = re.findall(r"<!-- from (api/examples/\S+) -->\s*```cpp\n(.*?)```",
                    readme, re.S)
if len(blocks) < 2:
    print("FAIL: README.md has %d marked example blocks, expected 2"
          % len(blocks))
    sys.exit(1)
bad = 0
for path, code in blocks:
    src = open(os.path.join(root, path)).read()
    if code not in src:
        print("FAIL: a README.md block marked 'from %s' is not in that file:"
              % path)
        print(code)
        bad += 1
    else:
        print("ok:   README.md block from %s (%d lines) is the compiled code"
              % (path, code.count("\n")))
sys.exit(1 if bad else 0)
PY

if (( FAILURES > 0 )); then echo "$FAILURES check(s) failed"; exit 1; fi
