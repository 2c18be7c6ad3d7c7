#!/bin/sh
# The WireGuard scenarios of the VM lane (issue 23), sourced by scenarios.sh, whose helpers
# (selected, pass, fail, run_swtrace, $OUT, $ERR) they use. The story of the seed talk: a
# kernel engineer loses a marked packet inside a WireGuard tunnel because encryption scrubs
# the mark; specs/wireguard-path.spec is the runbook, and these scenarios run it.
#
# Two namespaces, wga and wgb, joined by a veth pair (wgva 10.200.60.1, wgvb 10.200.60.2: the
# underlay) and a WireGuard tunnel over it (wg0 10.200.61.1 in wga, wg1 10.200.61.2 in wgb).
# The modules come from the booted kernel's package (run.sh lists them in load order), wg
# from Debian's wireguard-tools, and the keys are generated here.
#
# Every run sends WG_N datagrams marked 0xdead from wga to a sink in wgb, with payloads of
# 100, 200, ... bytes: a length names its datagram at every stage of the tunnel (WireGuard
# adds at most 12 bytes of padding, 16 of authentication tag and 16 of header, the outer
# UDP/IP 28 and Ethernet 14: less than the 100 between two datagrams).
#
#   wireguard-mark-lost  the spec alone (a mark filter over skb:*): each datagram's last event
#                        is where the mark is still set; WireGuard's encryption worker scrubs
#                        it in skb_scrub_packet (wg_reset_packet in drivers/net/wireguard/queueing.h)
#   wireguard-track      the spec with --track -f paths: one path per datagram from the sending
#                        socket through encryption, the outer UDP/IP, the veth, decryption and
#                        delivery to the receiving socket
#   wireguard-drop       wgb's peer no longer allows wga's inner address: WireGuard frees each
#                        decrypted datagram with consume_skb (its "dishonest peer" path, counted
#                        in wg1's rx_frame_errors); swtrace names where, and that no drop
#                        reason exists

# shellcheck disable=SC2154  # status and took are set by scenarios.sh's run_swtrace
WG_N=5
WG_PORT=9000
WG_SIZES="100,200,300,400,500"
WG_SPEC=/wireguard-path.spec
WG_LOG=/tmp/wg-setup.log
WG_SCENARIOS="wireguard-mark-lost wireguard-track wireguard-drop"
# iproute2's ip by its path: busybox sh runs its own applets before looking at PATH.
IP=/usr/local/bin/ip

wg_wanted() {
  for scenario in $WG_SCENARIOS; do
    if selected "$scenario"; then return 0; fi
  done
  return 1
}

# Loads the modules and builds the namespaces, the veth pair and the tunnel (sh -e: the first
# failing step ends it, and the trace in $WG_LOG shows which).
wg_setup() {
  sh -ex <<EOF
while read -r module; do insmod "/lib/modules/\$module"; done </etc/swtrace-vm.modules
mkdir -p /var
ln -sfn /run /var/run
$IP netns add wga
$IP netns add wgb
$IP -n wga link set lo up
$IP -n wgb link set lo up
$IP link add wgva netns wga type veth peer name wgvb netns wgb
$IP -n wga addr add 10.200.60.1/24 dev wgva
$IP -n wgb addr add 10.200.60.2/24 dev wgvb
$IP -n wga link set wgva up
$IP -n wgb link set wgvb up
umask 077
wg genkey >/tmp/wga.key
wg genkey >/tmp/wgb.key
wg pubkey </tmp/wga.key >/tmp/wga.pub
wg pubkey </tmp/wgb.key >/tmp/wgb.pub
$IP -n wga link add wg0 type wireguard
$IP -n wgb link add wg1 type wireguard
$IP netns exec wga wg set wg0 listen-port 51820 private-key /tmp/wga.key \
  peer "\$(cat /tmp/wgb.pub)" allowed-ips 10.200.61.2/32 endpoint 10.200.60.2:51820
$IP netns exec wgb wg set wg1 listen-port 51820 private-key /tmp/wgb.key \
  peer "\$(cat /tmp/wga.pub)" allowed-ips 10.200.61.1/32 endpoint 10.200.60.1:51820
$IP -n wga addr add 10.200.61.1/24 dev wg0
$IP -n wgb addr add 10.200.61.2/24 dev wg1
$IP -n wga link set wg0 up
$IP -n wgb link set wg1 up
# The handshake and the underlay's ARP happen now, not in a traced run: one unmarked
# datagram through the tunnel, received in wgb.
$IP netns exec wgb swtrace-pktgen sink --port $WG_PORT --count 1 --max-seconds 30 >/tmp/wg-warmup.out &
sleep 0.5
$IP netns exec wga swtrace-pktgen udp --dst 10.200.61.2 --port $WG_PORT --count 1 --sizes 100
wait
grep '^received 1 ' /tmp/wg-warmup.out
EOF
}

# The network namespace inode of a named namespace, as swtrace's netns field shows it.
wg_netns() { $IP netns exec "$1" readlink /proc/self/ns/net | sed 's/[^0-9]//g'; }

wg_rx_frame_errors() { $IP netns exec wgb cat /sys/class/net/wg1/statistics/rx_frame_errors; }

# Writes the traffic of one traced run, a script for swtrace -c, and prints how to run it: a
# sink in wgb expecting WG_N datagrams, the marked datagrams from wga, then (bounded) waiting
# for the sink. With "drop", nothing reaches the sink: the script waits instead (at most 30 s)
# for wg1 to count WG_N more rx_frame_errors, then ends the sink.
wg_traffic() {
  {
    echo "$IP netns exec wgb swtrace-pktgen sink --port $WG_PORT --count $WG_N --max-seconds 30 >/tmp/wg-sink.out 2>&1 &"
    echo "sink=\$!"
    echo "sleep 0.5"
    echo "$IP netns exec wga swtrace-pktgen udp --dst 10.200.61.2 --port $WG_PORT --count $WG_N --mark 0xdead --sizes $WG_SIZES >/dev/null"
    if [ "${1:-}" = drop ]; then
      echo "want=\$((\$(cat /tmp/wg-errors.before) + $WG_N))"
      echo "for i in \$(seq 1 300); do"
      echo "  [ \"\$($IP netns exec wgb cat /sys/class/net/wg1/statistics/rx_frame_errors)\" -ge \"\$want\" ] && break"
      echo "  sleep 0.1"
      echo "done"
      echo "kill \$sink"
    fi
    echo "wait"
  } >/tmp/wg-traffic.sh
  echo "sh /tmp/wg-traffic.sh"
}

# With VM_SHOW=1 (kernel parameter swtrace_show=1): what swtrace printed, as VMOUT lines.
wg_show() {
  if [ "${swtrace_show:-0}" = 1 ]; then sed "s/^/VMOUT $1: /" "$OUT"; fi
}

# field(LINE, NAME) in awk: the value printed as "NAME: value" in a text event or hop line.
WG_AWK_FIELD='function field(line, name,   s) { s = line; if (!sub(".*[( ]" name ": ", "", s)) return ""; sub(/[ )].*/, "", s); return s }'

# (wireguard-mark-lost) The spec as it is, a plain mark filter over skb:*, in text mode.
wg_mark_lost() {
  run_swtrace -c "$(wg_traffic)" "$WG_SPEC"
  wg_show wireguard-mark-lost
  received=$(sed -n 's/^received \([0-9]*\) .*/\1/p' /tmp/wg-sink.out)
  netns_b=$(wg_netns wgb)
  # Per datagram (named by its length): its last event, its device and process there, and
  # whether any of its events shows it in wgb.
  verdicts=$(awk -v n="$WG_N" -v netns_b="$netns_b" "$WG_AWK_FIELD"'
    $3 ~ /^[a-z_0-9]+$/ && / \(len: / {
      len = field($0, "len") + 0
      d = int((len - 128) / 100)
      if (len < 128 || d >= n) { stray++; next }
      ifname = field($0, "ifname")
      last[d] = $3 " " (ifname == "" ? "-" : ifname) " " field($0, "comm")
      if (field($0, "netns") == netns_b) in_b[d]++
    }
    END {
      for (d = 0; d < n; d++) print d, (d in last ? last[d] : "none - - "), in_b[d] + 0
      print "stray", stray + 0
    }' "$OUT")
  # Every datagram's last marked event: skb_scrub_packet on wg0 in a kworker (the encryption worker).
  scrubbed=$(echo "$verdicts" | awk '$2 == "skb_scrub_packet" && $3 == "wg0" && $4 ~ /^kworker/ && $5 == 0' | wc -l)
  last=$(echo "$verdicts" | awk '$1 == 0 { print $2 " on " $3 " in " $4 }')
  summary="last event with the mark: $last; $scrubbed of $WG_N datagrams end there, none seen in wgb; sink received ${received:-?} (${took} s)"
  if [ "$status" = 0 ] && [ "$scrubbed" = "$WG_N" ] && [ "$received" = "$WG_N" ] \
    && echo "$verdicts" | grep -qx 'stray 0'; then
    pass wireguard-mark-lost "$summary"
  else
    fail wireguard-mark-lost "exited $status: $summary; per datagram: $(echo "$verdicts" | tr '\n' ';')"
  fi
}

# wg_check_paths NETNS_A NETNS_B MILESTONES LAST [FORBIDDEN]: checks the paths -f paths
# printed to $OUT; prints one line per path, "ok HOPS FIRSTLEN LASTLEN" when the path is
# complete, passes the milestones in order, ends in a hop matching LAST and has no hop
# matching FORBIDDEN, else "bad WHY". MILESTONES are "probe [device [namespace [process]]]"
# separated by "|"; hops are matched as "probe device A|B process". A hop's line is
# "  +T0us (+DTus) cpu N PROBE (values)": the probe is its fifth field.
wg_check_paths() {
  awk -v netns_a="$1" -v netns_b="$2" -v milestones="$3" -v last_wanted="$4" -v forbidden="${5:-^$}" "$WG_AWK_FIELD"'
    function verdict() {
      if (hops == 0) return
      if (!complete) why = "not freed while tracing"
      else if (step < steps) why = "missing " milestone[step + 1]
      else if (last !~ last_wanted) why = "ends at " last
      else if (bad != "") why = "passes " bad
      print (why == "" ? "ok " hops " " first_len " " last_len : "bad " why)
    }
    BEGIN { steps = split(milestones, milestone, "|") }
    /^packet skb / {
      verdict()
      hops = 0; step = 0; why = ""; bad = ""; complete = ($0 !~ /not freed/)
      next
    }
    /^  \+/ {
      hops++
      ns = field($0, "netns"); ns = (ns == netns_a ? "A" : (ns == netns_b ? "B" : ns))
      hop = $5 " " field($0, "ifname") " " ns " " field($0, "comm")
      if (hops == 1) first_len = field($0, "len")
      last_len = field($0, "len")
      last = hop
      if (hop ~ forbidden) bad = hop
      if (step < steps) {
        split(milestone[step + 1], want, " ")
        matched = (want[1] == $5)
        if (matched && want[2] != "") matched = (want[2] == field($0, "ifname"))
        if (matched && want[3] != "") matched = (want[3] == ns)
        if (matched && want[4] != "") matched = (index(field($0, "comm"), want[4]) == 1)
        if (matched) step++
      }
    }
    END { verdict() }' "$OUT"
}

# What every datagram passes on the way to wg1, in this order: into wg0, the encryption
# worker (which scrubs the mark), the outer UDP/IP, out of the veth in wga, into the veth in
# wgb, to WireGuard's UDP socket there.
WG_TO_WG1="net_dev_start_xmit wg0 A|skb_scrub_packet wg0 A kworker|iptunnel_xmit|net_dev_start_xmit wgva A|netif_receive_skb wgvb B|udp_queue_rcv_one_skb wgvb B"
# Then, decrypted, into the stack on wg1 and to the receiving socket.
WG_DELIVERED="$WG_TO_WG1|napi_gro_receive_entry wg1 B|__udp_enqueue_schedule_skb wg1 B"

# (wireguard-track) The spec with --track -f paths.
wg_track() {
  run_swtrace --track -f paths -c "$(wg_traffic)" "$WG_SPEC"
  wg_show wireguard-track
  received=$(sed -n 's/^received \([0-9]*\) .*/\1/p' /tmp/wg-sink.out)
  verdicts=$(wg_check_paths "$(wg_netns wga)" "$(wg_netns wgb)" "$WG_DELIVERED" '^consume_skb .* swtrace-pktgen$')
  good=$(echo "$verdicts" | grep -c '^ok ')
  # Each datagram: first seen with its UDP and IP headers (payload + 28), last as the payload
  # the receiver reads; one path per payload sent.
  lengths=$(echo "$verdicts" | awk '$1 == "ok" { print $3 - 28 "/" $4 }' | sort -n | tr '\n' ' ')
  want_lengths=$(echo "$WG_SIZES" | tr ',' '\n' | awk '{ print $1 "/" $1 }' | sort -n | tr '\n' ' ')
  hops=$(echo "$verdicts" | awk '$1 == "ok" { if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
    END { print (min == max ? min : min "-" max) }')
  summary="$good of $WG_N datagrams followed from the sending socket through wg0, encryption (mark scrubbed), the outer UDP/IP, the veth, decryption on wg1 and delivery: $hops hops each, one skb end to end; sink received ${received:-?} (${took} s)"
  if [ "$status" = 0 ] && [ "$good" = "$WG_N" ] && [ "$(echo "$verdicts" | wc -l)" = "$WG_N" ] \
    && [ "$lengths" = "$want_lengths" ] && [ "$received" = "$WG_N" ]; then
    pass wireguard-track "$summary"
  else
    fail wireguard-track "exited $status: $summary; paths: $(echo "$verdicts" | tr '\n' ';') lengths sent/read: $lengths (want $want_lengths)"
  fi
}

# (wireguard-drop) wgb's peer stops allowing 10.200.61.1. The spec with --track -f paths
# shows where each datagram ends (a kfree_skb with its drop reason would end the path too);
# where the kernel freed it comes from the consume_skb tracepoint on wg1 (its location needs
# Linux 6.3+), in the clause the spec's header suggests. It selects by device, not by
# tracking: a tracked packet's path, and its tracking, end at the first free point it reaches
# (consume_skb's function entry, before its tracepoint).
wg_drop() {
  $IP netns exec wgb wg set wg1 peer "$(cat /tmp/wga.pub)" allowed-ips 10.200.62.0/24
  wg_rx_frame_errors >/tmp/wg-errors.before
  spec="$(grep -v -e '^#!' -e '^//' "$WG_SPEC")
tracepoint:skb:consume_skb /ifname == \"wg1\"/ { @freed[len, ksym(location)] = count() }"
  run_swtrace --track -f paths -c "$(wg_traffic drop)" -e "$spec"
  wg_show wireguard-drop
  errors=$(($(wg_rx_frame_errors) - $(cat /tmp/wg-errors.before)))
  received=$(sed -n 's/^received \([0-9]*\) .*/\1/p' /tmp/wg-sink.out)
  $IP netns exec wgb wg set wg1 peer "$(cat /tmp/wga.pub)" allowed-ips 10.200.61.1/32
  verdicts=$(wg_check_paths "$(wg_netns wga)" "$(wg_netns wgb)" "$WG_TO_WG1|skb_scrub_packet wgvb B" \
    '^consume_skb wg1 B ' '^(napi_gro_receive_entry|__udp_enqueue_schedule_skb) ')
  good=$(echo "$verdicts" | grep -c '^ok ')
  # @freed[LEN, LOCATION]: 1 per datagram, LEN its decrypted inner packet (payload + 28).
  # "@freed[128, wg_packet_rx_poll+0x35b [wireguard]]: 1" -> "128|wg_packet_rx_poll+0x35b [wireguard]|1"
  freed=$(sed -n 's/^@freed\[\([0-9]*\), \(.*\)\]: \([0-9]*\)$/\1|\2|\3/p' "$OUT")
  freed_lengths=$(echo "$freed" | awk -F'|' '$3 == 1 { print $1 - 28 }' | sort -n | tr '\n' ' ')
  want_lengths=$(echo "$WG_SIZES" | tr ',' '\n' | sort -n | tr '\n' ' ')
  locations=$(echo "$freed" | awk -F'|' '{ print $2 }' | sort -u)
  symbol=${locations%%+*}
  # The location is WireGuard's own code: /proc/kallsyms lists the function in the module.
  in_module=$(grep -c " $symbol	\[wireguard\]\$" /proc/kallsyms)
  case "$locations" in *" [wireguard]") ;; *) in_module=0 ;; esac
  summary="$good of $WG_N datagrams end in consume_skb on wg1 right after decryption, never reaching wg1's stack; consume_skb called from $locations (WireGuard consumes them: no drop reason); wg1 rx_frame_errors +$errors; sink received ${received:-0} (${took} s)"
  if [ "$status" = 0 ] && [ "$good" = "$WG_N" ] && [ "$(echo "$verdicts" | wc -l)" = "$WG_N" ] \
    && [ "$freed_lengths" = "$want_lengths" ] && [ "$(echo "$locations" | wc -l)" = 1 ] \
    && [ "$in_module" -ge 1 ] && [ "$errors" = "$WG_N" ] && [ "${received:-0}" = 0 ]; then
    pass wireguard-drop "$summary"
  else
    fail wireguard-drop "exited $status: $summary; paths: $(echo "$verdicts" | tr '\n' ';') @freed: $(echo "$freed" | tr '\n' ';') $symbol in the wireguard module: $in_module"
  fi
}

if wg_wanted; then
  if ! wg_setup >"$WG_LOG" 2>&1; then
    for scenario in $WG_SCENARIOS; do
      if selected "$scenario"; then
        echo "VMTEST FAIL ($scenario) WireGuard setup failed"
        tail -n 30 "$WG_LOG"
        echo "---"
      fi
    done
  else
    echo "VMINFO WireGuard tunnel wg0 -> wg1 over veth wgva -> wgvb: $($IP netns exec wga wg show wg0 latest-handshakes | wc -l) peer with a handshake"
    if selected wireguard-mark-lost; then wg_mark_lost; fi
    if selected wireguard-track; then wg_track; fi
    if selected wireguard-drop; then wg_drop; fi
  fi
fi
