#!/usr/bin/env bash
# swtrace versus bpftrace on this machine: start-up, in-kernel cost per event, program size,
# event delivery and front-end time; then check time (bench/check-time.sh, which also runs on
# its own). Writes bench/results/latest.json and prints a markdown table of medians and ratios
# (swtrace/bpftrace) to stdout; progress goes to stderr.
#
#   bench/run.sh                      (as root; `make bench` runs it)
#
# Environment:
#   SWTRACE_BIN_DIR  use the swtrace and swtrace-pktgen binaries in this folder instead of
#                    building with `swift build -c release --scratch-path .build-bench`
#   REPEATS          runs per measurement (default 5; start-up uses REPEATS+2)
#   RATES            offered rates for the delivery test, datagrams/s; "max" is the one-core flood,
#                    the sender as fast as it goes (default "50000 100000 200000 400000 max")
#   PIN              "TRACER SENDER": the cores the delivery test pins the tracer and the sender
#                    to with taskset (default "0 1" on two cores or more; "" pins nothing)
#   SECTIONS         which sections to run (default "startup kernel delivery eventpath frontend check");
#                    the report says n/a for the others; `check` alone is also bench/check-time.sh
#
# Traffic: UDP datagrams from swtrace-pktgen to 127.0.0.1:9999 (nothing listens there), every
# send bounded by --count and --max-seconds. kernel.bpf_stats_enabled is set to 1 for the
# in-kernel cost section only and restored afterwards (also on error or Ctrl-C); tracefs is
# mounted for bpftrace if it is not, and unmounted again at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPEATS=${REPEATS:-5}
RATES=${RATES:-"50000 100000 200000 400000 max"}
if (($(nproc) >= 2)); then PIN=${PIN-"0 1"}; else PIN=${PIN-""}; fi
read -r PIN_TRACER PIN_SENDER <<<"$PIN" || true
START_REPEATS=$((REPEATS + 2))
PORT=9999
DST=127.0.0.1

SECTIONS=${SECTIONS:-"startup kernel delivery eventpath frontend check"}

log() { printf 'bench: %s\n' "$*" >&2; }
wanted() { [[ " $SECTIONS " == *" $1 "* ]]; }
die() { log "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (BPF, SO_MARK, sysctl)"

# ---------------------------------------------------------------- set-up and clean-up

WORK=$(mktemp -d /tmp/swtrace-bench.XXXXXX)
SHM=$(mktemp -d /dev/shm/swtrace-bench.XXXXXX)
RAW=$WORK/raw.jsonl
: >"$RAW"
BG_PIDS=()
STATS_SAVED=""
MOUNTED_TRACEFS=0

cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null || true
      sleep 1
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n $STATS_SAVED ]]; then sysctl -q -w kernel.bpf_stats_enabled="$STATS_SAVED" || true; fi
  if [[ $MOUNTED_TRACEFS == 1 ]]; then umount /sys/kernel/tracing 2>/dev/null || true; fi
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_pkg() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
}
need_pkg bpftrace bpftrace
need_pkg bpftool bpftool
need_pkg python3 python3
[[ -x /usr/bin/time ]] || need_pkg /usr/bin/time time
need_pkg hyperfine hyperfine || log "hyperfine not available: front-end timing uses its own loop"

if [[ -n ${SWTRACE_BIN_DIR:-} ]]; then
  BIN=$(cd "$SWTRACE_BIN_DIR" && pwd)
  SOURCE="prebuilt binaries in $BIN"
else
  SOURCE="git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') with \
$(git -C "$ROOT" status --porcelain -- Sources 2>/dev/null | wc -l) uncommitted changes under Sources/"
  command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
  log "building swtrace (release, .build-bench)"
  (cd "$ROOT" && swift build -c release --scratch-path .build-bench >&2)
  BIN=$ROOT/.build-bench/release
fi
SWTRACE=$BIN/swtrace
PKTGEN=$BIN/swtrace-pktgen
[[ -x $SWTRACE && -x $PKTGEN ]] || die "no swtrace binaries in $BIN"

if [[ ! -d /sys/kernel/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing && MOUNTED_TRACEFS=1
fi
[[ -d /sys/kernel/tracing/events ]] || die "tracefs is not available; bpftrace tracepoints need it"

# ---------------------------------------------------------------- the programs compared

# swtrace specs, one per case; bpftrace files are written below.
declare -A SW
SW[a]='tracepoint:net:netif_receive_skb /mark == 0xdead/ < print(len) >'
SW[b]='tracepoint:net:netif_receive_skb { @c[ifname] = count(); @h = hist(len) }'
SW[c]='skb:* /mark==0xdead/ < print(len, gso_type) >'
SW[floor]='tracepoint:net:netif_receive_skb /0/ < print(len) >'

cat >"$WORK/a.bt" <<'EOF'
tracepoint:net:netif_receive_skb /((struct sk_buff *)args->skbaddr)->mark == 0xdead/ {
  printf("%llu %u %s (len: %u)\n", nsecs, cpu, probe, args->len);
}
EOF
cat >"$WORK/b.bt" <<'EOF'
tracepoint:net:netif_receive_skb {
  @c[((struct sk_buff *)args->skbaddr)->dev->name] = count();
  @h = hist(args->len);
}
EOF
"$SWTRACE" -lv 'skb:*' 2>/dev/null | python3 "$HERE/gen_bpftrace.py" "$WORK/c.bt" --summary "$WORK/c.summary"
cat >"$WORK/floor.bt" <<'EOF'
tracepoint:net:netif_receive_skb { }
EOF
read -r C_BT_PROBES C_SW_POINTS C_BT_MISSING <"$WORK/c.summary" || true

# Start-up variants: exit as soon as everything is attached (bpftrace runs BEGIN after attaching).
for c in a b c floor; do
  { cat "$WORK/$c.bt"; echo 'BEGIN { exit(); }'; } >"$WORK/$c.start.bt"
  # Long-running variants: READY once attached; a bound on the running time.
  { cat "$WORK/$c.bt"; printf '%s\n' 'BEGIN { printf("READY\n"); } interval:s:120 { exit(); }'; } >"$WORK/$c.session.bt"
done

# JSON helpers: every measurement is one line of $RAW.
jstr() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
record() { printf '%s\n' "$1" >>"$RAW"; }

record "{\"section\":\"meta\",\"date\":$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),\"kernel\":$(jstr "$(uname -r)"),\
\"cpu\":$(jstr "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),\"cores\":$(nproc),\
\"mem_kb\":$(awk '/MemTotal/{print $2}' /proc/meminfo),\"bpftrace\":$(jstr "$(bpftrace --version 2>/dev/null)"),\
\"swtrace\":$(jstr "$("$SWTRACE" --version 2>/dev/null)"),\"swtrace_bin\":$(jstr "$BIN"),\
\"swtrace_source\":$(jstr "$SOURCE"),\
\"loadavg\":$(jstr "$(cut -d' ' -f1-3 /proc/loadavg)"),\"repeats\":$REPEATS,\"pin\":$(jstr "$PIN"),\
\"c_bpftrace_probes\":${C_BT_PROBES:-0},\"c_swtrace_points\":${C_SW_POINTS:-0},\"c_bpftrace_missing\":$(jstr "${C_BT_MISSING:-}")}"

# ---------------------------------------------------------------- 1. start-up

# One timed run: wall time from process start to exit (EPOCHREALTIME around /usr/bin/time),
# peak RSS, user and system CPU from /usr/bin/time; and how many probes were attached.
startup_run() { # tool case rep
  local tool=$1 case=$2 rep=$3 t0 t1 rss user sys status attached
  local out=$WORK/st.out err=$WORK/st.err tm=$WORK/st.time
  if [[ $tool == swtrace ]]; then
    t0=$EPOCHREALTIME
    timeout 60 /usr/bin/time -f '%M %U %S %x' -o "$tm" "$SWTRACE" -c true -e "${SW[$case]}" >"$out" 2>"$err" || true
    t1=$EPOCHREALTIME
    attached=$(sed -n 's/^swtrace: \([0-9]*\) attached.*/\1/p' "$err" | tail -1)
  else
    t0=$EPOCHREALTIME
    timeout 120 /usr/bin/time -f '%M %U %S %x' -o "$tm" bpftrace "$WORK/$case.start.bt" >"$out" 2>"$err" || true
    t1=$EPOCHREALTIME
    attached=$(sed -n 's/^Attaching \([0-9]*\) probes\{0,1\}\.\.\./\1/p' "$out" | tail -1)
    [[ -n $attached ]] && attached=$((attached - 1)) # BEGIN
  fi
  read -r rss user sys status < <(tail -1 "$tm")
  if [[ $status != 0 ]]; then
    log "start-up $tool $case exited with $status: $(grep -v RLIMIT "$err" | head -3 | tr '\n' ' ')"
  fi
  record "{\"section\":\"startup\",\"tool\":\"$tool\",\"case\":\"$case\",\"rep\":$rep,\
\"wall_s\":$(python3 -c "print(round($t1 - $t0, 6))"),\"rss_kb\":$rss,\"user_s\":$user,\"sys_s\":$sys,\
\"status\":$status,\"attached\":${attached:-0}}"
}

if wanted startup; then
  log "1/5 start-up: $START_REPEATS runs of each case, swtrace and bpftrace interleaved"
  for rep in $(seq 1 "$START_REPEATS"); do
    for case in a b c; do
      startup_run swtrace "$case" "$rep"
      startup_run bpftrace "$case" "$rep"
    done
  done
fi

# ---------------------------------------------------------------- 2+3. in-kernel cost, size

# Waits (bounded) until FILE contains PATTERN.
wait_for() { # file pattern seconds
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Starts a tool on a case in the background; sets TOOL_PID, TOOL_OUT, TOOL_ERR. With a core,
# the tool runs pinned to it (taskset execs the tool, so TOOL_PID is the tool's own).
start_tool() { # tool case [output-format] [core]
  TOOL_OUT=$SHM/$1.$2.out
  TOOL_ERR=$WORK/$1.$2.err
  local pin=()
  [[ -n ${4:-} ]] && pin=(taskset -c "$4")
  if [[ $1 == swtrace ]]; then
    "${pin[@]}" "$SWTRACE" -f "${3:-text}" -d 120 -e "${SW[$2]}" >/dev/null 2>"$TOOL_ERR" &
    TOOL_PID=$!
    BG_PIDS+=("$TOOL_PID")
    wait_for "$TOOL_ERR" ' attached, ' 60 || die "swtrace $2 did not attach: $(cat "$TOOL_ERR")"
  else
    "${pin[@]}" bpftrace "$WORK/$2.session.bt" >"$TOOL_OUT" 2>"$TOOL_ERR" &
    TOOL_PID=$!
    BG_PIDS+=("$TOOL_PID")
    wait_for "$TOOL_OUT" '^READY' 90 || die "bpftrace $2 did not attach: $(grep -v RLIMIT "$TOOL_ERR")"
  fi
  sleep 0.5
}

# Stops the tool started last (SIGINT, as Ctrl-C) and waits for it (bounded).
stop_tool() {
  kill -INT "$TOOL_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$TOOL_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$TOOL_PID" 2>/dev/null || true
  wait "$TOOL_PID" 2>/dev/null || true
}

# Sends COUNT datagrams at RATE/s ("max": as fast as the sender goes), bounded by MAX seconds,
# pinned to CORE when one is given; prints how many were sent.
send() { # count rate max-seconds [mark] [core]
  local args=(udp --dst "$DST" --port "$PORT" --count "$1" --max-seconds "$3") pin=()
  [[ $2 != max ]] && args+=(--rate "$2")
  [[ -n ${4:-} ]] && args+=(--mark "$4")
  [[ -n ${5:-} ]] && pin=(taskset -c "$5")
  { "${pin[@]}" "$PKTGEN" "${args[@]}" 2>&1 || true; } | sed -n 's/^sent \([0-9]*\).*/\1/p' | tail -1
}

# Per session: 5 bursts of 2,000 marked (0xdead) and 2,000 unmarked datagrams at 10,000/s
# (20,000 in all), the tool's programs sampled before and after every burst.
BURST=$((20000 / REPEATS / 2))
kernel_session() { # tool case
  start_tool "$1" "$2"
  record "{\"section\":\"kernel\",\"tool\":\"$1\",\"case\":\"$2\",\"burst\":0,\"sample\":$(python3 "$HERE/progstats.py" "$TOOL_PID")}"
  local b
  for b in $(seq 1 "$REPEATS"); do
    send "$BURST" 10000 10 0xdead >/dev/null
    send "$BURST" 10000 10 >/dev/null
    record "{\"section\":\"kernel\",\"tool\":\"$1\",\"case\":\"$2\",\"burst\":$b,\"sample\":$(python3 "$HERE/progstats.py" "$TOOL_PID")}"
  done
  stop_tool
  local lost=0
  if [[ $1 == swtrace ]]; then
    lost=$(sed -n 's/^Samples: [0-9]* Lost: \([0-9]*\)/\1/p' "$TOOL_ERR" | tail -1)
  else
    lost=$(awk '/^Lost [0-9]+ events/ {s += $2} END {print s + 0}' "$TOOL_OUT")
  fi
  record "{\"section\":\"kernel_lost\",\"tool\":\"$1\",\"case\":\"$2\",\"lost\":${lost:-0}}"
  rm -f "$TOOL_OUT"
}

if wanted kernel; then
  log "2/5 in-kernel cost and 3/5 program size: kernel.bpf_stats_enabled=1 during this section"
  STATS_SAVED=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -q -w kernel.bpf_stats_enabled=1
  for case in floor a b c; do
    for tool in swtrace bpftrace; do
      log "  $tool $case"
      kernel_session "$tool" "$case"
    done
  done
  sysctl -q -w kernel.bpf_stats_enabled="$STATS_SAVED"
  STATS_SAVED=""
fi

# ---------------------------------------------------------------- 4. event delivery

# The mission one-liner (case c) with output: swtrace -f json (or text) to /dev/null, bpftrace
# printf to a tmpfs file (its "Lost N events" lines are in its output). The tracer and the
# sender are pinned to cores of their own (PIN); on loopback the programs run in the sender's
# context, on its core, so the tracer's core does nothing but read and format. All datagrams
# marked; RATE datagrams per run (one second of traffic if the sender keeps up, at most 5 s;
# "max" sends up to 1,000,000 as fast as it can, at most 5 s); the tool gets 1 s after the
# last datagram to drain, then SIGINT.
delivery_run() { # tool rate rep [swtrace's output format]
  local tool=$1 rate=$2 rep=$3 format=${4:-json} t0 t1 sent samples lost label=$1 count=$2
  [[ $tool == swtrace && $format != json ]] && label=swtrace-$format
  [[ $rate == max ]] && count=1000000
  start_tool "$tool" c "$format" "$PIN_TRACER"
  t0=$EPOCHREALTIME
  sent=$(send "$count" "$rate" 5 0xdead "$PIN_SENDER")
  t1=$EPOCHREALTIME
  sleep 1
  stop_tool
  if [[ $tool == swtrace ]]; then
    samples=$(sed -n 's/^Samples: \([0-9]*\) Lost: [0-9]*/\1/p' "$TOOL_ERR" | tail -1)
    lost=$(sed -n 's/^Samples: [0-9]* Lost: \([0-9]*\)/\1/p' "$TOOL_ERR" | tail -1)
  else
    samples=$(grep -c '^[0-9]' "$TOOL_OUT" || true)
    lost=$(awk '/^Lost [0-9]+ events/ {s += $2} END {print s + 0}' "$TOOL_OUT")
  fi
  rm -f "$TOOL_OUT"
  [[ $rate == max ]] && rate=0
  record "{\"section\":\"delivery\",\"tool\":\"$label\",\"rate\":$rate,\"rep\":$rep,\"sent\":${sent:-0},\
\"seconds\":$(python3 -c "print(round($t1 - $t0, 4))"),\"samples\":${samples:-0},\"lost\":${lost:--1}}"
}

if wanted delivery; then
  log "4/5 event delivery: rates $RATES, $REPEATS runs each, tracer and sender on cores ${PIN:-(not pinned)}"
  for rep in $(seq 1 "$REPEATS"); do
    for rate in $RATES; do
      delivery_run swtrace "$rate" "$rep" json
      delivery_run swtrace "$rate" "$rep" text
      delivery_run bpftrace "$rate" "$rep"
    done
    log "  run $rep of $REPEATS done"
  done
fi

# ---------------------------------------------------------------- 4b. the event path alone

# User space only, no kernel: `swtrace check --event-path-bench N` builds ring buffer records
# of the spec's print layout with plausible values and runs N of them through the run loop's
# decoding, formatting and writing to /dev/null; it prints CPU ns per event, text and JSON.
EVENTPATH_SPEC='skb:* /mark == 0xdead/ { print(len, ifname, ip.saddr, udp.dport) }'
if wanted eventpath; then
  log "4b event path: $REPEATS runs of 1,000,000 events per format"
  for rep in $(seq 1 "$REPEATS"); do
    while read -r format ns _; do
      record "{\"section\":\"eventpath\",\"format\":\"$format\",\"rep\":$rep,\"ns_per_event\":$ns}"
    done < <("$SWTRACE" check --event-path-bench 1000000 -e "$EVENTPATH_SPEC" 2>/dev/null)
  done
fi

# ---------------------------------------------------------------- 5. front end

SPECS=("$ROOT"/specs/*.spec)
frontend() { # name runs command...
  local name=$1 runs=$2
  shift 2
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 1 --runs "$runs" --export-json "$WORK/hf.json" "$(printf '%q ' "$@")" >/dev/null 2>&1
    record "{\"section\":\"frontend\",\"name\":\"$name\",\"tool\":\"hyperfine\",\"times\":$(python3 -c \
      'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["results"][0]["times"]))' "$WORK/hf.json")}"
  else
    local times=() t0
    for _ in $(seq 1 "$runs"); do
      t0=$EPOCHREALTIME
      "$@" >/dev/null 2>&1
      times+=("$(python3 -c "print($EPOCHREALTIME - $t0)")")
    done
    record "{\"section\":\"frontend\",\"name\":\"$name\",\"tool\":\"loop\",\"times\":[$(IFS=,; echo "${times[*]}")]}"
  fi
}
if wanted frontend; then
  log "5/5 front end: swtrace check specs/*.spec; swtrace check versus bpftrace --emit-elf for case c"
  "$SWTRACE" check "${SPECS[@]}" >/dev/null 2>&1 || die "swtrace check specs/*.spec failed"
  frontend swtrace_check_specs $((REPEATS * 2)) "$SWTRACE" check "${SPECS[@]}"
  record "{\"section\":\"frontend_specs\",\"count\":${#SPECS[@]},\"programs\":$("$SWTRACE" check "${SPECS[@]}" 2>&1 |
    sed -n 's/.*: ok (\([0-9]*\) programs*)$/\1/p' | awk '{s += $1} END {print s + 0}')}"
  frontend swtrace_check_c $((REPEATS * 2)) "$SWTRACE" check -e "${SW[c]}"
  frontend bpftrace_emit_elf_c "$REPEATS" bpftrace --emit-elf "$WORK/c.elf" "$WORK/c.bt"
fi

# ---------------------------------------------------------------- report

mkdir -p "$HERE/results"
# The raw measurements first: a report that fails can be made again from them.
cp "$RAW" "$HERE/results/latest.raw.jsonl"
python3 "$HERE/report.py" "$RAW" "$HERE/results/latest.json" | tee "$HERE/results/latest.md"
cp "$WORK/c.bt" "$HERE/results/skb-all.bt"
log "wrote bench/results/latest.json"

# ---------------------------------------------------------------- check time

# Loading BTF and type-checking the mission in process, per phase; also `make bench-check`.
if wanted check; then
  log "check time: bench/check-time.sh"
  echo | tee -a "$HERE/results/latest.md"
  SWTRACE_BIN_DIR=$BIN "$HERE/check-time.sh" | tee -a "$HERE/results/latest.md"
fi
