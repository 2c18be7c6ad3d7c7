#!/bin/sh
# Generated from the documentation's blocks marked `doctest: vm` by DocumentationTests
# (SWTRACE_RECORD=1 swift test --filter DocumentationTests rewrites it); do not edit.
# scenarios.sh runs it in the guest, VMLaneTests compares what it prints with the docs.
echo "VMDOC BEGIN README.md#vm1 0"
cat >/tmp/doc-command <<'SWTRACE_DOC_COMMAND'
swtrace -q -e 'skb:ip_* /mark == 0xdead/ { print(len) }' \
    -c 'swtrace-pktgen udp --dst 127.0.0.1 --port 9 --count 1 --mark 0xdead >/dev/null'
SWTRACE_DOC_COMMAND
. /tmp/doc-command >/tmp/doc-output 2>&1
status=$?
sed 's/^/VMDOC | /' /tmp/doc-output
echo "VMDOC END README.md#vm1 0 $status"
