#!/usr/bin/env bash
# The VM lane: runs swtrace's function backends (kprobe, kretprobe, fentry, fexit,
# kprobe.multi) on a stock Debian kernel under qemu, since the machines this project runs
# on may have neither kprobes nor fentry.
#
#   1. builds swtrace and swtrace-pktgen in release mode (scratch path .build-vm)
#   2. fetches the kernel package with scripts/kernels/fetch-kernel.sh (cached, reused)
#   3. packs an initramfs: busybox, both binaries, every library they link (ldd), /init
#      and the scenario script
#   4. boots it under qemu (KVM when it works, TCG otherwise) with a hard timeout
#   5. prints the guest's PASS/FAIL line per scenario; exits 1 if any failed or is missing
#
# Needs root (apt-get for qemu, busybox and cpio; nothing else on the host is changed).
#
# Environment:
#   VM_KERNEL    kernel package(s) to try, in order (default: linux-image-6.12.117+deb12-amd64,
#                which has kprobes, fentry and kprobe.multi, then linux-image-6.12-amd64 and
#                linux-image-amd64 should the mirror have moved on; linux-image-6.1.0-56-amd64
#                has no fprobe, so kprobe probes there use perf kprobes)
#   VM_ACCEL     auto (default), kvm or tcg
#   VM_TIMEOUT   seconds before the VM is killed (default 1200)
#   VM_BENCH=1   also time attach and detach of skb:* per backend, printed as ratios
#   VM_ONLY      scenario letters to run, e.g. "a c" (default: all)
#   VM_SMP       guest CPUs (default 2)
#   VM_KEEP=1    keep the work directory (initramfs, console log) and print its path
#   VM_SHOW=1    the WireGuard scenarios also print what swtrace printed, as VMOUT lines
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

say() { echo "vm: $*" >&2; }
die() {
  echo "vm: $*" >&2
  exit 2
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || die "needs root (apt-get for qemu and busybox)"

lane_start=$(now)
kernels=${VM_KERNEL:-linux-image-6.12.117+deb12-amd64 linux-image-6.12-amd64 linux-image-amd64}
timeout_seconds=${VM_TIMEOUT:-1200}
accel=${VM_ACCEL:-auto}
smp=${VM_SMP:-2}

# --- 1. host tools and the release build -----------------------------------------------
scripts/deps.sh qemu-system-x86 busybox-static cpio xz-utils iproute2 >&2

step=$(now)
say "building release binaries (.build-vm)"
swift build -c release --scratch-path .build-vm --product swtrace >&2
swift build -c release --scratch-path .build-vm --product swtrace-pktgen >&2
bin_dir=$(swift build -c release --scratch-path .build-vm --show-bin-path)
say "build: $(since "$step") s"

# --- 2. the kernel -------------------------------------------------------------------------
step=$(now)
vmlinuz=""
for kernel in $kernels; do
  if vmlinuz=$(scripts/kernels/fetch-kernel.sh "$kernel"); then break; fi
  # A fresh machine's package lists may not know the package yet.
  say "fetch-kernel failed for $kernel; updating the package lists and retrying"
  apt-get update -q >&2 || true
  if vmlinuz=$(scripts/kernels/fetch-kernel.sh "$kernel"); then break; fi
  vmlinuz=""
done
[ -n "$vmlinuz" ] || die "could not fetch any of: $kernels"
release=$(basename "$vmlinuz")
release=${release#vmlinuz-}
say "kernel $release: $(since "$step") s"

# --- 3. the initramfs ----------------------------------------------------------------------
step=$(now)
wg=$(scripts/vm/fetch-wg.sh) || die "could not fetch wg from Debian's wireguard-tools"
work=$(mktemp -d /tmp/swtrace-vm.XXXXXX)
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  if [ -n "${qemu_pid:-}" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
  if [ "${VM_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,etc}

busybox=$(command -v busybox) || die "busybox not found"
cp "$busybox" "$root/bin/busybox"
# Every applet as a link, so /init and the scenarios run as on a small system.
while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)

copy_with_libraries() {
  local binary=$1 library
  cp "$binary" "$root/usr/local/bin/"
  # ldd prints "name => /path (addr)" or "/path (addr)"; copy each path where it was found,
  # so the binary's RUNPATH and the loader's default paths find them in the guest too.
  while read -r library; do
    [ -e "$root$library" ] || cp -L --parents "$library" "$root"
  done < <(ldd "$binary" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
}
copy_with_libraries "$bin_dir/swtrace"
copy_with_libraries "$bin_dir/swtrace-pktgen"
# The WireGuard scenarios (scripts/vm/wireguard.sh) need iproute2's ip (busybox's has no
# netns, veth or wireguard links), wg from Debian's wireguard-tools, and the kernel's modules.
copy_with_libraries "$(command -v ip)"
copy_with_libraries "$wg"
# tools/tcpsynbl.bt's scenario reads the listener's backlog limit with iproute2's ss, over
# the tcp_diag module (busybox has no ss).
copy_with_libraries "$(command -v ss)"

# Kernel modules, decompressed into /lib/modules with their load order in
# /etc/swtrace-vm.modules: every module a wanted one depends on comes before it. The package
# has no modules.dep (depmod runs at install time), so the dependencies come from each
# module's own .modinfo "depends=" field.
modules_dir=$(dirname "$vmlinuz")/../lib/modules/$release
mkdir -p "$root/lib/modules"
: >"$root/etc/swtrace-vm.modules"
module_path() {
  # depends= names modules the way their files are named, but "-" and "_" are interchangeable.
  find "$modules_dir/kernel" \( -name "$1.ko*" -o -name "${1//-/_}.ko*" -o -name "${1//_/-}.ko*" \) -print -quit
}
unpacked_module() {
  case "$1" in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
  esac
}
add_module() {
  local name=$1 file dependency
  [ -e "$root/lib/modules/$name.ko" ] && return 0
  file=$(module_path "$name")
  [ -n "$file" ] || die "module $name is not in $modules_dir"
  unpacked_module "$file" >"$root/lib/modules/$name.ko"
  for dependency in $(tr '\0' '\n' <"$root/lib/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dependency"
  done
  echo "$name.ko" >>"$root/etc/swtrace-vm.modules"
}
for module in veth wireguard; do add_module "$module"; done
# ss in the tcpsynbl scenario needs tcp_diag (and inet_diag under it); that scenario loads
# them itself, so they stay out of the list wireguard.sh loads (under sh -e, a second insmod
# of a module fails).
for module in inet_diag tcp_diag; do
  file=$(module_path "$module")
  [ -n "$file" ] || die "module $module is not in $modules_dir"
  unpacked_module "$file" >"$root/lib/modules/$module.ko"
done
library_path=$(find "$root" -name '*.so*' -printf '%h\n' | sed "s#^$root##" | sort -u | paste -sd:)

cp scripts/vm/init "$root/init"
cp scripts/vm/scenarios.sh scripts/vm/wireguard.sh scripts/vm/bench.sh scripts/vm/doc-examples.sh specs/wireguard-path.spec \
  tools/tcpsynbl.bt "$root/"
chmod +x "$root/init"
echo "LD_LIBRARY_PATH=$library_path" >"$root/etc/swtrace-vm.env"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true

# Uncompressed: the guest unpacks it faster than it could gunzip it under TCG.
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"
say "initramfs: $(du -m "$work/initramfs.cpio" | cut -f1) MiB, $(since "$step") s"

# --- 4. boot -------------------------------------------------------------------------------
qemu=(qemu-system-x86_64 -nographic -no-reboot -m 1G -smp "$smp" -kernel "$vmlinuz")

# KVM is used only when it boots a kernel to the end: nested KVM can hang or fail on its
# first instruction here. Booting the bare kernel to its "no init" panic takes ~2 s with
# working KVM; anything else within 10 s means TCG.
kvm_works() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local log=$work/kvm-probe.log pid deadline
  : >"$log"
  "${qemu[@]}" -accel kvm -m 256M -append 'console=ttyS0 panic=-1 rdinit=/none root=/dev/none' \
    >"$log" 2>&1 </dev/null &
  pid=$!
  deadline=$((SECONDS + 10))
  while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
    if grep -q "Kernel panic" "$log"; then break; fi
    if grep -qE "KVM internal error|emulation failure|failed to|EFER=" "$log"; then break; fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -q "Kernel panic" "$log"
}

tcg_accel="tcg,thread=multi"
case "$accel" in
  kvm) accel_args=(-accel kvm) ;;
  tcg) accel_args=(-accel "$tcg_accel") ;;
  auto)
    if kvm_works; then accel=kvm; accel_args=(-accel kvm); else accel=tcg; accel_args=(-accel "$tcg_accel"); fi
    ;;
  *) die "VM_ACCEL must be auto, kvm or tcg" ;;
esac

# What the guest should expect of kprobe.multi: the package's config says whether it has fprobe.
fprobe=0
if grep -qx 'CONFIG_FPROBE=y' "$(dirname "$vmlinuz")/config-$release" 2>/dev/null; then fprobe=1; fi
# Kernel parameters cannot hold spaces: "a c" travels as "a,c".
only=$(echo "${VM_ONLY:-all}" | tr ' ' ',')
append="console=ttyS0 panic=-1 quiet swtrace_bench=${VM_BENCH:-0} swtrace_only=$only swtrace_fprobe=$fprobe swtrace_show=${VM_SHOW:-0}"

say "booting $release under qemu ($accel, $smp CPUs, timeout ${timeout_seconds} s)"
step=$(now)
console=$work/console.log
: >"$console"
timeout -k 10 "$timeout_seconds" "${qemu[@]}" "${accel_args[@]}" -initrd "$work/initramfs.cpio" \
  -append "$append" </dev/null >"$console" 2>&1 &
qemu_pid=$!
# Show the guest's report lines as they come.
tail -n +1 -f "$console" --pid "$qemu_pid" 2>/dev/null | sed -u 's/\r$//' | grep -a --line-buffered -E '^(VMTEST|VMBENCH|VMINFO|VMOUT|VMDOC|VMPCAP)' &
tail_pid=$!
status=0
wait "$qemu_pid" || status=$?
qemu_pid=""
wait "$tail_pid" 2>/dev/null || true
say "VM ran $(since "$step") s"

# --- 5. verdict ----------------------------------------------------------------------------
tr -d '\r' <"$console" >"$console.txt"
passes=$(grep -ac '^VMTEST PASS' "$console.txt" || true)
failures=$(grep -ac '^VMTEST FAIL' "$console.txt" || true)
if [ "$failures" -gt 0 ]; then
  # What swtrace said in each failed scenario: the block after its FAIL line, up to "---".
  awk '/^VMTEST FAIL/ { show = 1 } show { print } show && /^---$/ { show = 0 }' \
    "$console.txt" | cut -c1-400 >&2
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  say "the VM did not finish within ${timeout_seconds} s; last console lines:"
  tail -n 30 "$console.txt" >&2
  failures=$((failures + 1))
elif ! grep -q '^VMTEST DONE' "$console.txt"; then
  say "the VM stopped before the scenarios finished (qemu status $status); last console lines:"
  tail -n 30 "$console.txt" >&2
  failures=$((failures + 1))
fi
if grep -qE '^\[ *[0-9.]+\] (BUG|WARNING|Oops|general protection)' "$console.txt"; then
  say "the guest kernel complained:"
  grep -E -A5 '^\[ *[0-9.]+\] (BUG|WARNING|Oops|general protection)' "$console.txt" | head -n 40 >&2
fi
say "lane: $(since "$lane_start") s on $release ($accel)"
echo "vm: $passes passed, $failures failed"
[ "$failures" -eq 0 ] && [ "$passes" -gt 0 ]
