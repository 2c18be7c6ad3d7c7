#!/usr/bin/env bash
# Builds swtrace and its whole test suite with AddressSanitizer (in .build-asan) and runs
# every unit suite (Syntax, BTF, Sema, BPF, CodeGen, Output, PrometheusExport, the fuzzer's
# regressions, and as root the runtime's and the differential tests, which load programs
# through Runtime) and, as root, the end-to-end robustness, privilege and walking-skeleton
# tests, which then run the ASan-built swtrace (the e2e tests use the binaries next to the
# test runner). Any report from AddressSanitizer fails the run.
#
# Usage: scripts/asan.sh [FILTER]   (a swift-testing --filter regex; default below)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

scratch="${ASAN_SCRATCH:-.build-asan}"
filter="${1:-${ASAN_FILTER:-^(SyntaxTests|BTFTests|SemaTests|BPFTests|CodeGenTests|OutputTests|PrometheusExportTests|RuntimeTests|DifferentialTests|FuzzRegressionTests)\.|^EndToEndTests\.(BadInputTests|ExitTests|PrivilegeTests|WalkingSkeletonTests)/}}"

started=$SECONDS
swift build --build-tests --sanitize=address --scratch-path "$scratch"
echo "asan: built in $((SECONDS - started)) s"

# Every process, the test runner and each swtrace it starts, writes its reports to
# $scratch/reports/asan.PID as well, so that a report from a child is not lost in its
# captured stderr. halt_on_error: the first report ends the process, so nothing hides
# behind it. exitcode=86: never mistaken for swtrace's own statuses 1 and 2.
# detect_leaks=0: Swift's runtime keeps metadata and caches alive until exit on purpose,
# which LeakSanitizer reports by the hundred; use-after-free, overflows and double frees
# are what this run is for.
reports="$PWD/$scratch/reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=0:exitcode=86:log_path=$reports/asan}"
# The differential test's sample, smaller under ASan (its full run is `make differential`).
export SWTRACE_DIFFERENTIAL_PROGRAMS="${SWTRACE_DIFFERENTIAL_PROGRAMS:-200}"
started=$SECONDS
status=0
"$scratch/debug/swtracePackageTests.xctest" --testing-library swift-testing --filter "$filter" || status=$?
echo "asan: tests ran in $((SECONDS - started)) s (status $status)"
if [ -n "$(ls -A "$reports")" ]; then
  echo "asan: AddressSanitizer reported problems:" >&2
  head -n 40 "$reports"/* >&2
  exit 1
fi
exit "$status"
