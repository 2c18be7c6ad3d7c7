#!/usr/bin/env bash
# What installing swtrace costs, and how the release binary starts and scrapes, for
# BENCHMARKS.md ("Install size, start-up and scrapes"). Needs root, the package (make deb)
# and the clean-root cache (scripts/package/root.sh); takes a few minutes.
#
#   1. the package: .deb size, Installed-Size, and what apt-get install adds to a clean
#      Debian 12 minbase root (swtrace with its dependencies), next to what apt-get would add
#      for bpftrace in the same root (its summary, answered "no")
#   2. start-up of BINARY (default: the packaged /usr/bin/swtrace, run in the clean root):
#      wall time and peak RSS (/usr/bin/time) of `swtrace --version`, of `swtrace check -e
#      MISSION` and of `swtrace -c true -e MISSION` (attach, detach), median of REPEATS
#   3. scrapes: swtrace --metrics with @h[len] = hist(len) over 10,240 lengths (datagrams of
#      payload 1...10240 to 127.0.0.1), then one scrape, and 20 at once: wall time (curl),
#      response size, and swtrace's peak RSS (VmHWM) before and after
#
# Environment: BINARY=path measures that binary on this host instead of the packaged one
# (to compare with another build), REPEATS (default 7), PKTGEN (default .build/debug or
# release swtrace-pktgen). Holds /tmp/swtrace-e2e.lock while loading BPF.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEATS=${REPEATS:-7}
say() { echo "bench: $*" >&2; }
die() {
  echo "bench: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v curl >/dev/null || scripts/deps.sh curl >&2
[ -x /usr/bin/time ] || scripts/deps.sh time >&2
pktgen=${PKTGEN:-}
for candidate in .build/release/swtrace-pktgen .build/debug/swtrace-pktgen; do
  [ -n "$pktgen" ] || { [ -x "$candidate" ] && pktgen=$candidate; }
done
[ -n "$pktgen" ] || die "no swtrace-pktgen: swift build first"
mission='skb:* /mark==0xdead/ < print(len, gso_type) >'
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

work=$(mktemp -d /tmp/swtrace-bench-package.XXXXXX)
cleanup() {
  if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. install sizes -------------------------------------------------------------------
run=()
if [ -z "${BINARY:-}" ]; then
  deb=$(find dist -maxdepth 1 -name 'swtrace_*.deb' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
  [ -n "$deb" ] || die "no dist/swtrace_*.deb: make deb first"
  root=$work/root
  scripts/package/root.sh new "$root"
  cp "$deb" "$root/tmp/"
  summary() { grep -E "^(Need to get|After this operation)" | tr '\n' ' '; }
  bpftrace_summary=$(scripts/package/root.sh run "$root" apt-get install --assume-no --no-install-recommends bpftrace 2>/dev/null | summary || true)
  swtrace_summary=$(scripts/package/root.sh run "$root" apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")" 2>/dev/null | summary)
  echo "| package | file | Installed-Size | apt-get install in a clean Debian 12 minbase root |"
  echo "|---|---|---|---|"
  echo "| $(basename "$deb") | $(stat -c %s "$deb") bytes | $(dpkg-deb -f "$deb" Installed-Size) KiB | $swtrace_summary |"
  echo "| bpftrace (Debian 12) | | | $bpftrace_summary |"
  echo
  run=(scripts/package/root.sh run "$root")
  binary=/usr/bin/swtrace
else
  binary=$BINARY
fi

# --- 2. start-up ------------------------------------------------------------------------
measure() { # label, command...
  local label=$1 walls=() rsss=() i t0 t1 rss
  shift
  for i in $(seq "$REPEATS"); do
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$work/time" "${run[@]}" "$@" >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    rss=$(tail -1 "$work/time")
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    rsss+=("$rss")
  done
  echo "| $label | $(printf '%s\n' "${walls[@]}" | median) ms | $(printf '%s\n' "${rsss[@]}" | median) KiB |"
}
echo "| $binary ($("${run[@]}" "$binary" --version)), median of $REPEATS | wall | peak RSS |"
echo "|---|---|---|"
measure "swtrace --version" "$binary" --version
measure "swtrace check -e MISSION" "$binary" check -e "$mission"
exec 9>/tmp/swtrace-e2e.lock
flock 9
measure "swtrace -c true -e MISSION" "$binary" -c true -e "$mission"
echo

# --- 3. scrapes ---------------------------------------------------------------------------
port=19477
"${run[@]}" "$binary" --metrics "127.0.0.1:$port" -d 300 -e 'skb:net_dev_queue /mark == 0x8a30/ { @h[len] = hist(len) }' \
  >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
"$pktgen" udp --dst 127.0.0.1 --port 9830 --count 10240 --sizes 1-10240 --mark 0x8a30 --max-seconds 60 >/dev/null
sleep 2
pid=$server
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$pid/status"; }
rss_before=$(hwm)
series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c '^swtrace_h_count' || true)
sleep 2
one=$(curl -s -o "$work/one" -w '%{time_total}' "http://127.0.0.1:$port/metrics")
rss_one=$(hwm)
sleep 2
t0=$EPOCHREALTIME
clients=()
for i in $(seq 20); do
  curl -s -o "$work/many.$i" "http://127.0.0.1:$port/metrics" &
  clients+=("$!")
done
wait "${clients[@]}" || true
t1=$EPOCHREALTIME
rss_many=$(hwm)
kill -TERM "$server"
wait "$server" || true
server=
echo "| scrape of a 10,240-key histogram ($series series, $(stat -c %s "$work/one") bytes) | wall | swtrace peak RSS |"
echo "|---|---|---|"
echo "| before any scrape | | $rss_before KiB |"
echo "| one scrape | $(awk -v t="$one" 'BEGIN { printf "%.2f", t }') s | $rss_one KiB |"
echo "| 20 scrapes at once | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s for all | $rss_many KiB |"
