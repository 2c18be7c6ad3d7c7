#!/usr/bin/env bash
# A first look at swtrace, in under a minute.
#
# Makes two private network namespaces joined by a veth pair (10.200.250.1 <-> .2),
# then lets swtrace trace every skb tracepoint while swtrace-pktgen sends 5 UDP
# datagrams marked 0xdead and 5 unmarked ones across the veth. Only the marked ones
# pass the filter `/mark==0xdead/`. Everything created here is removed on exit.
#
# Needs root. Usage: scripts/demo.sh   (binaries from $SWTRACE_BIN_DIR, else .build/release)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin_dir=$(cd "${SWTRACE_BIN_DIR:-.build/release}" && pwd)
swtrace=$bin_dir/swtrace
pktgen=$bin_dir/swtrace-pktgen
for binary in "$swtrace" "$pktgen"; do
  if [ ! -x "$binary" ]; then
    echo "demo: $binary not found; build first: make release" >&2
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, SO_MARK and BPF)" >&2
  exit 1
fi

ns_a=swtdemo$$-a
ns_b=swtdemo$$-b
veth_a=swtdemo$$a
veth_b=swtdemo$$b
addr_a=10.200.250.1
addr_b=10.200.250.2
spec='skb:* /mark==0xdead/ < print(len, gso_type) >'
sink_pid=

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  if [ -n "$sink_pid" ]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  fi
  ip netns delete "$ns_a" 2>/dev/null || true
  ip netns delete "$ns_b" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== creating namespaces $ns_a ($addr_a) and $ns_b ($addr_b), joined by a veth pair"
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
for ns_link in "$ns_a:$veth_a" "$ns_a:lo" "$ns_b:$veth_b" "$ns_b:lo"; do
  ip -n "${ns_link%%:*}" link set "${ns_link#*:}" up
done

# A receiver in B, so B has no reason to answer with ICMP errors. Bounded: 10 datagrams or 60 s.
ip netns exec "$ns_b" "$pktgen" sink --port 9000 --count 10 --max-seconds 60 >/dev/null &
sink_pid=$!

send_marked="ip netns exec $ns_a $pktgen udp --dst $addr_b --port 9000 --count 5 --sizes 100,200,300,400,500 --mark 0xdead --max-seconds 10"
send_plain="ip netns exec $ns_a $pktgen udp --dst $addr_b --port 9000 --count 5 --sizes 600,700,800,900,1000 --max-seconds 10"

cat <<EOF

== tracing: swtrace -c '<send 5 marked, then 5 unmarked datagrams>' -e '$spec'
   Expect the 5 marked datagrams (payloads 100..500 bytes) leaving $veth_a: at
   net_dev_queue and net_dev_start_xmit with len = payload + 42 (UDP 8 + IPv4 20 +
   Ethernet 14), i.e. 142 242 342 442 542, and gso_type none. Other skb tracepoints may
   show one too (consume_skb, say, with the IP-level len = payload + 28). The unmarked
   datagrams (lens 642..1042) never pass the filter, nor does anything arriving in
   $ns_b: veth clears the mark when a packet crosses into another namespace.

EOF
status=0
timeout --foreground 120 "$swtrace" -c "$send_marked >/dev/null && $send_plain >/dev/null" -e "$spec" || status=$?
echo
if [ "$status" -eq 0 ]; then
  echo "== done; removing $ns_a and $ns_b"
else
  echo "== swtrace exited with status $status (1: spec error, 2: the system refused, 3: the -c command failed, 124: timed out)" >&2
fi
exit "$status"
