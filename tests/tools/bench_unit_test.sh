#!/bin/bash
# Runs the offload-bench unit tests (bench_unit_test.py) with the
# offload_bench package from tools/bench on the path.
set -eu
RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
export PYTHONPATH="$RUNFILES/tools/bench"
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$RUNFILES/tests/tools/bench_unit_test.py" -v
