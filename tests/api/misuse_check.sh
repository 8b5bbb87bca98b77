#!/bin/bash
# Compiles misuse.cc once as the control (must compile) and once per
# MISUSE_* case (must fail with the diagnostic named after "want:"), and
# prints one "ok ..." or "FAIL ..." line per compile. Always exits 0: the
# verdict is misuse_test's, which reads this output.
#
# Usage: misuse_check.sh COMPILER misuse.cc   (from the execroot, so that
# "api/sock.h" resolves with -I.)
set -u
CC="$1"
SRC="$2"
ERR="$(mktemp)"
trap 'rm -f "$ERR"' EXIT
# -fno-exceptions: the headers must not need them.
FLAGS=(-x c++ -std=c++17 -fsyntax-only -fno-exceptions -Wall -Wextra -Werror
       -Wno-unused-parameter -I.)

if "$CC" "${FLAGS[@]}" "$SRC" 2>"$ERR"; then
  echo "ok control compiles"
else
  echo "FAIL control does not compile:"
  sed 's/^/  /' "$ERR" | head -40
fi

sed -n 's/^#.*defined(MISUSE_\([A-Z_]*\)).*\/\/ want: \(.*\)$/\1|\2/p' "$SRC" |
while IFS='|' read -r name want; do
  if "$CC" "${FLAGS[@]}" "-DMISUSE_$name" "$SRC" 2>"$ERR"; then
    echo "FAIL $name compiles"
  elif grep -qF -- "$want" "$ERR"; then
    echo "ok $name does not compile: $(grep -m1 -F -- "$want" "$ERR" |
      sed 's/^[^ ]* //' | cut -c1-160)"
  else
    echo "FAIL $name fails, but not with '$want':"
    sed 's/^/  /' "$ERR" | head -20
  fi
done
