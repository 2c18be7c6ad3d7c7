#!/bin/sh
# Attach and detach time of `skb:*` per function backend (VM_BENCH=1), run by /init in the
# guest after the scenarios. Times come from /proc/uptime (10 ms steps) stamped on swtrace's
# progress lines:
#   load    start -> "Attaching N probes..."   (BTF, compile, pre-check, load every program)
#   attach  "Attaching ..." -> "N attached, M skipped"
#   detach  the -c command's end -> swtrace's exit (detach, print the map, free programs)
# Printed as "VMBENCH ..." lines, then the ratios of each backend to fentry.

uptime_s() { awk '{ print $1 }' /proc/uptime; }
stamp() { while IFS= read -r line; do echo "$(uptime_s) $line"; done; }
RESULTS=/tmp/bench.results
: >"$RESULTS"

if ! swtrace help trace 2>&1 | grep -q -- '--backend'; then
  echo "VMBENCH skipped: this swtrace has no --backend option"
  exit 0
fi

# bench_one LABEL BACKEND KPROBE_METHOD
bench_one() {
  label=$1 backend=$2 method=$3
  rm -f /tmp/bench.cmd
  started=$(uptime_s)
  {
    SWTRACE_KPROBE_ATTACH=$method timeout -s KILL 1200 swtrace --backend "$backend" \
      -c 'cat /proc/uptime >/tmp/bench.cmd' -e 'skb:* { @c = count() }' 2>&1 >/dev/null
    echo "exit $?"
  } | stamp >/tmp/bench.log
  ended=$(uptime_s)
  loaded=$(grep -m1 'Attaching' /tmp/bench.log | cut -d' ' -f1)
  attached_at=$(grep -m1 -E '[0-9]+ attached, [0-9]+ skipped' /tmp/bench.log | cut -d' ' -f1)
  counts=$(grep -m1 -oE '[0-9]+ attached, [0-9]+ skipped' /tmp/bench.log)
  command_end=$(cut -d' ' -f1 /tmp/bench.cmd 2>/dev/null)
  if [ -z "$loaded" ] || [ -z "$attached_at" ] || [ -z "$command_end" ]; then
    echo "VMBENCH $label: no timing (swtrace said:)"
    tail -n 5 /tmp/bench.log
    return
  fi
  awk -v l="$label" -v s="$started" -v lo="$loaded" -v a="$attached_at" -v c="$command_end" -v e="$ended" \
    -v n="$counts" 'BEGIN {
      printf "VMBENCH %-22s load %6.2f s  attach %6.2f s  detach %6.2f s  (%s)\n", l, lo - s, a - lo, e - c, n
      printf "%s %f %f %f\n", l, lo - s, a - lo, e - c >> "'"$RESULTS"'"
    }'
}

echo "VMBENCH skb:* attach/detach on $(uname -r), /proc/uptime resolution 0.01 s"
bench_one fentry fentry perf
bench_one kprobe-perf kprobe perf
# Kernels without fprobe (6.1) refuse kprobe.multi; that line then says why.
bench_one kprobe.multi kprobe multi
awk '
  $1 == "fentry" { fl = $2; fa = $3; fd = $4 }
  { label[NR] = $1; lo[NR] = $2; at[NR] = $3; de[NR] = $4 }
  END {
    if (fa <= 0) { print "VMBENCH ratios: no fentry baseline"; exit }
    for (i = 1; i <= NR; i++)
      printf "VMBENCH ratio %-14s / fentry: load %.3fx  attach %.3fx  detach %.3fx\n", label[i], lo[i] / fl, at[i] / fa, (fd > 0 ? de[i] / fd : 0)
  }' "$RESULTS"
