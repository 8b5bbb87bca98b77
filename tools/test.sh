#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds everything, runs every
# test (tests tagged "root" — network namespaces, veth, real daemons — run when
# this is root), and ends with one line "N passed, N failed".
#
#   bash tools/test.sh                 # everything
#   bash tools/test.sh //tests/cli/... # a subset
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then
  bash tools/bootstrap.sh || exit 1
  tag_filter=""
else
  echo "test: not root — skipping the bootstrap and the tests tagged 'root'" >&2
  tag_filter="--test_tag_filters=-root"
fi

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(//...)

log=$(mktemp /tmp/offload-test.XXXXXX.log)
trap 'rm -f "$log"' EXIT

echo "test: building ${targets[*]}"
if ! bazel build --keep_going "${targets[@]}" 2>&1 | tee -a "$log" | grep -E '^(ERROR|FAILED|INFO: Build)' ; then
  :
fi
echo "test: running tests"
bazel test --keep_going --test_summary=short ${tag_filter:+"$tag_filter"} "${targets[@]}" >>"$log" 2>&1
bazel_rc=$?
grep -vE 'linux-sandbox|^\s*$' "$log" | grep -E '^(//|ERROR|FAIL|Executed|INFO: Build)' | awk '!seen[$0]++'
# A target that failed to load, analyze or build is a failure even when every
# test that did run passed: count_tests.py is told bazel's exit code.
python3 tools/count_tests.py "$log" "$(bazel info bazel-testlogs 2>/dev/null)" "$bazel_rc"
