#!/usr/bin/env python3
"""Counts real test results after `bazel test`.

Reads the per-target summary lines bazel printed (from a log file) and each
target's JUnit XML under bazel-testlogs/, then prints one line:

    N passed, N failed

Test cases are counted from the XML (gtest writes one <testcase> per TEST;
bazel writes one for a shell test, unless the test writes its own to
XML_OUTPUT_FILE, as tests/integration/lib/harness.sh does with one case per
check). Cases marked not run (status="notrun" or result="suppressed") are
skipped: a target whose cases were all skipped is not a pass, and the line
then reads "N passed, N failed, N skipped". A target that failed to build, timed out
or left no XML counts as one failure, and so does every load/analysis/build
error when bazel's exit code (third argument) says the build did not
complete. Exits 0 only when nothing failed.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|"
                    r"NO STATUS|FLAKY|INCOMPLETE|REMOTE FAILURE|SKIPPED)\b")


def xml_counts(path):
    """(passed, failed, skipped) test cases in a JUnit XML file, or None."""
    passed = failed = skipped = 0
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    for case in root.iter("testcase"):
        bad = case.find("failure") is not None or case.find("error") is not None
        if case.get("result") == "suppressed" or case.get("status") == "notrun":
            skipped += 1
            continue
        if bad:
            failed += 1
        else:
            passed += 1
    return passed, failed, skipped


def main():
    log, testlogs = sys.argv[1], sys.argv[2]
    bazel_rc = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    passed = failed = skipped = 0
    failures = []
    seen = set()
    with open(log, errors="replace") as f:
        for line in f:
            m = STATUS.match(line.strip())
            if not m or m.group(1) in seen:
                continue
            target, status = m.group(1), m.group(2)
            seen.add(target)
            pkg, _, name = target[2:].partition(":")
            xml = os.path.join(testlogs, pkg, name, "test.xml")
            counts = xml_counts(xml) if status in ("PASSED", "FAILED", "FLAKY") else None
            if counts is not None and counts[:2] == (0, 0) and counts[2] > 0 and \
                    status in ("PASSED", "FLAKY"):
                skipped += counts[2]  # e.g. a root test run without root
                continue
            if counts is None or counts[:2] == (0, 0):
                if status in ("PASSED", "FLAKY"):
                    passed += 1
                else:
                    failed += 1
                    failures.append(f"{target} {status}")
                continue
            p, fl, sk = counts
            skipped += sk
            if status == "FAILED" and fl == 0:
                fl = 1  # crashed or exited non-zero outside a test case
            passed += p
            failed += fl
            if fl:
                failures.append(f"{target} {status} ({fl} failing case(s))")
    for f in failures:
        print("FAILED:", f)
    if not seen:
        print("no test results found in", log)
        failed += 1
    # bazel exits 3 when tests failed (already counted above) and 1 when
    # something did not load, analyze or build: that is a failure of its own.
    if bazel_rc not in (0, 3):
        errors = set()
        with open(log, errors="replace") as f:
            for line in f:
                if line.startswith("ERROR:") and "not all targets were analyzed" not in line:
                    errors.add(line.strip()[:300])
        for e in sorted(errors):
            print("BUILD", e)
        print(f"FAILED: bazel test exited {bazel_rc}: targets above did not load or build")
        failed += max(1, len(errors))
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
