#!/usr/bin/env bash
# Check time (issue #4: "loading the running kernel's BTF and type-checking the mission
# one-liner takes under 20 ms"): swtrace's phases in one process, the same from fresh processes,
# whole `swtrace check` processes, and bpftrace's nearest figure. Prints a markdown table to
# stdout and writes it to bench/results/check-time.md; progress goes to stderr.
#
#   bench/check-time.sh               (`make bench-check`; bench/run.sh runs it last)
#
# Environment:
#   SWTRACE_BIN_DIR  use the swtrace binary in this folder instead of building with
#                    `swift build -c release --scratch-path .build-bench`
#   RUNS             checks in one process (default 50)
#   PROCESSES        fresh processes for the first-run and whole-process figures (default 15)
#   BPFTRACE_RUNS    bpftrace runs (default 3; each takes seconds; 0 skips bpftrace, as does
#                    running without root or without bpftrace installed)
#
# Needs no root for swtrace. bpftrace needs root and tracefs, which is mounted for it if it is
# not and unmounted again at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-50}
PROCESSES=${PROCESSES:-15}
BPFTRACE_RUNS=${BPFTRACE_RUNS:-3}
MISSION='skb:* /mark==0xdead/ < print(len, gso_type) >'

log() { printf 'check-time: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

WORK=$(mktemp -d /tmp/swtrace-check-time.XXXXXX)
MOUNTED_TRACEFS=0
cleanup() {
  if [[ $MOUNTED_TRACEFS == 1 ]]; then umount /sys/kernel/tracing 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v python3 >/dev/null || die "needs python3"
[[ -r /sys/kernel/btf/vmlinux ]] || die "the running kernel has no BTF at /sys/kernel/btf/vmlinux"

if [[ -n ${SWTRACE_BIN_DIR:-} ]]; then
  SWTRACE=$(cd "$SWTRACE_BIN_DIR" && pwd)/swtrace
else
  command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
  log "building swtrace (release, .build-bench)"
  (cd "$ROOT" && swift build -c release --product swtrace --scratch-path .build-bench >&2)
  SWTRACE=$ROOT/.build-bench/release/swtrace
fi
[[ -x $SWTRACE ]] || die "no swtrace binary at $SWTRACE"
"$SWTRACE" check -e "$MISSION" >/dev/null 2>&1 || die "swtrace check of the mission one-liner failed"

# Median of the numbers on stdin, one a line.
median() { python3 -c 'import statistics, sys; print(statistics.median(float(l) for l in sys.stdin if l.strip()))'; }

# Whole-process times in seconds of RUNS runs of a command (after one warm-up), one run a
# line: wall, user CPU, system CPU, from the child's rusage (GNU time rounds to 10 ms).
process_times() { # runs command...
  python3 -c '
import os, subprocess, sys, time
runs, command = int(sys.argv[1]), sys.argv[2:]
for run in range(runs + 1):
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if run > 0:
        print(wall, usage.ru_utime, usage.ru_stime)
' "$@"
}

log "1/4 in one process: $RUNS checks, each from a fresh BTF load"
"$SWTRACE" check --timings "$RUNS" -e "$MISSION" >"$WORK/inprocess.txt"

log "2/4 first run of $PROCESSES fresh processes"
for _ in $(seq 1 "$PROCESSES"); do
  "$SWTRACE" check --timings 1 -e "$MISSION"
done >"$WORK/fresh.txt"

log "3/4 whole processes: swtrace check -e, and swtrace --version for process start-up alone"
process_times "$PROCESSES" "$SWTRACE" check -e "$MISSION" >"$WORK/process.txt"
process_times "$PROCESSES" "$SWTRACE" --version >"$WORK/version.txt"

# bpftrace 0.17 cannot stop after type checking, so it gets the mission (bench/gen_bpftrace.py's
# translation) with one type error appended: it exits at that error, after loading BTF, parsing
# the kernel headers with clang and checking every probe, before any code generation.
BPFTRACE_NOTE="not measured"
if [[ $BPFTRACE_RUNS -gt 0 && $(id -u) == 0 ]] && command -v bpftrace >/dev/null; then
  log "4/4 bpftrace until it reports a type error in the mission ($BPFTRACE_RUNS runs)"
  if [[ ! -d /sys/kernel/tracing/events ]]; then
    mount -t tracefs nodev /sys/kernel/tracing && MOUNTED_TRACEFS=1
  fi
  "$SWTRACE" -lv 'skb:*' 2>/dev/null | python3 "$HERE/gen_bpftrace.py" "$WORK/c.bt" 2>/dev/null
  { cat "$WORK/c.bt"; echo 'BEGIN { @x = 1 + "a"; }'; } >"$WORK/c-type-error.bt"
  bpftrace "$WORK/c-type-error.bt" >"$WORK/bt-first.txt" 2>&1 || true
  if grep -q "Type mismatch" "$WORK/bt-first.txt"; then
    for _ in $(seq 1 "$BPFTRACE_RUNS"); do
      /usr/bin/time -f '%e %U %S' -o "$WORK/bt-time.txt" bpftrace "$WORK/c-type-error.bt" >/dev/null 2>&1 || true
      # The last line: GNU time puts "Command exited with non-zero status 1" before it.
      tail -n 1 "$WORK/bt-time.txt"
    done >"$WORK/bpftrace.txt"
    BPFTRACE_NOTE="$(bpftrace --version)"
  else
    BPFTRACE_NOTE="bpftrace did not report the type error; not measured"
  fi
else
  log "4/4 bpftrace skipped (needs root, bpftrace and BPFTRACE_RUNS > 0)"
fi

mkdir -p "$HERE/results"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$WORK" "$RUNS" "$PROCESSES" "$BPFTRACE_NOTE" "$LOAD" <<'EOF' | tee "$HERE/results/check-time.md"
import os, statistics, sys

work, runs, processes, bpftrace_note, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def table(path):
    """phase -> list of (median, min, cpu median, first) rows, one per --timings report."""
    rows = {}
    for line in open(path):
        if line.startswith("#") or line.startswith("phase"):
            continue
        name, *values = line.split()
        rows.setdefault(name, []).append([float(v) for v in values])
    return rows

def ms(value):
    return "-" if value is None else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"

inprocess, fresh = table(f"{work}/inprocess.txt"), table(f"{work}/fresh.txt")
def times(path):
    """(wall, cpu) in ms per run."""
    rows = [[float(v) * 1000 for v in l.split()] for l in open(path) if l.strip()]
    return [(r[0], r[1] + r[2]) for r in rows]

def wall_cpu(rows):
    return f"{ms(statistics.median(r[0] for r in rows))} wall, {ms(statistics.median(r[1] for r in rows))} cpu"

process, version = times(f"{work}/process.txt"), times(f"{work}/version.txt")
bpftrace = []
if os.path.exists(f"{work}/bpftrace.txt"):
    bpftrace = [[float(v) for v in l.split()] for l in open(f"{work}/bpftrace.txt") if l.strip()]

target = inprocess["load+check"][0][0]
print("Check time of `skb:* /mark==0xdead/ < print(len, gso_type) >` against the running kernel's BTF")
print()
print(f"| phase | in one process, {runs} runs: median | min | cpu median | first run of a fresh process: median of {processes} |")
print("|---|---:|---:|---:|---:|")
for phase in ["btf-load", "environment", "parse", "resolve", "check", "desugar", "codegen", "precheck", "load+check", "total"]:
    row = inprocess[phase][0]
    first = statistics.median(r[0] for r in fresh[phase])
    label = {"load+check": "**load BTF + type-check**", "total": "all of `swtrace check`"}.get(phase, phase)
    print(f"| {label} | {ms(row[0])} | {ms(row[1])} | {ms(row[2])} | {ms(first)} |")
print()
print("| measure | swtrace | bpftrace | target | met |")
print("|---|---:|---:|---|---|")
print(f"| load running kernel BTF + type-check the mission, in process (median of {runs}) | {ms(target)} | - | < 20 ms | {'**yes**' if target < 20 else 'no'} |")
first = statistics.median(r[0] for r in fresh["load+check"])
print(f"| the same, first run of a fresh process (median of {processes}) | {ms(first)} | - | - | - |")
bt = f"{statistics.median(r[0] for r in bpftrace):.2f} s wall, {statistics.median(r[1] + r[2] for r in bpftrace):.2f} s cpu" if bpftrace else "-"
print(f"| whole process: `swtrace check -e` / bpftrace until it reports a type error (median of {processes} / {len(bpftrace)}) | {wall_cpu(process)} | {bt} | - | - |")
print(f"| process start-up alone: `swtrace --version` (median of {processes}) | {wall_cpu(version)} | - | - | - |")
print()
print(f"bpftrace: {bpftrace_note}. Load average at the end: {load} on {os.cpu_count()} CPUs; wall times")
print("under load stretch with it, the cpu column much less.")
EOF
