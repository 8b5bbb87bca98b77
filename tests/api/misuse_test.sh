#!/bin/bash
# The compile-fail test: every misuse snippet of misuse.cc failed to compile
# with its expected diagnostic, and the control compiled (see the genrule
# misuse_results in BUILD, which ran the compiler at build time).
set -u
RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
RESULTS="$RUNFILES/tests/api/misuse_results.txt"
cat "$RESULTS"
cases=$(grep -c 'defined(MISUSE_' "$RUNFILES/tests/api/misuse.cc")
oks=$(grep -c '^ok ' "$RESULTS")
if grep -q '^FAIL' "$RESULTS"; then echo "misuse test FAILED"; exit 1; fi
if [[ "$oks" -ne $((cases + 1)) ]]; then
  echo "expected $((cases + 1)) ok lines (control + $cases cases), got $oks"
  exit 1
fi
echo "misuse test: control compiles, $cases misuses do not"
