#!/usr/bin/env bash
# make-fixtures.sh [-o OUT_DIR] [PACKAGE[=VERSION] ...]
#
# (Re)generate the BTF fixtures in Tests/Fixtures/btf (or OUT_DIR) for the
# given Debian kernel image packages (default: the pinned list below), then
# rewrite OUT_DIR/README.md from all fixtures' .json files.
#
# Per kernel release R it writes
#   R.btf.xz        raw .BTF section, xz -9
#   R.config.xz     /boot/config-R of the package, xz -9
#   R.tracepoints   built-in trace events, category:name, sorted
#   R.json          package/size/sha256/config/btf-stats description
#
# Needs: apt-get, dpkg-deb, python3, xz, bpftool, zstd (for zstd bzImages).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/Tests/Fixtures/btf"

# Two kernel versions (6.1 = bookworm's own kernel, 6.12 = the bookworm
# backport shipped via bookworm-security) plus 6.1's PREEMPT_RT flavour,
# whose struct sock / net_device layouts differ from the stock one.
DEFAULT_PACKAGES=(
    "linux-image-6.1.0-56-amd64=6.1.192-2"
    "linux-image-6.1.0-56-rt-amd64=6.1.192-2"
    "linux-image-6.12.117+deb12-amd64=6.12.117-1~deb12u1"
)

while getopts "o:h" opt; do
    case "$opt" in
        o) out="$OPTARG" ;;
        *) echo "usage: $0 [-o OUT_DIR] [PACKAGE[=VERSION] ...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- "${DEFAULT_PACKAGES[@]}"

for tool in apt-get dpkg-deb python3 xz bpftool; do
    command -v "$tool" >/dev/null || { echo "make-fixtures: $tool is required" >&2; exit 1; }
done

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pkg in "$@"; do
    vmlinuz=$("$here/fetch-kernel.sh" "$pkg")
    root="$(dirname "$(dirname "$vmlinuz")")"
    rel="${vmlinuz##*/vmlinuz-}"
    echo "make-fixtures: $pkg -> $rel" >&2

    "$here/extract-btf.sh" "$vmlinuz" "$work/$rel.btf" "$work/$rel.vmlinux"
    xz -9 -T1 -c "$work/$rel.btf" > "$out/$rel.btf.xz"
    xz -9 -T1 -c "$root/boot/config-$rel" > "$out/$rel.config.xz"
    "$here/tracepoints.py" "$work/$rel.vmlinux" "$work/$rel.btf" > "$out/$rel.tracepoints"
    "$here/fixture-info.py" describe "$root/PACKAGE" "$root/boot/config-$rel" \
        "$work/$rel.btf" "$out/$rel.btf.xz" "$out/$rel.tracepoints" > "$out/$rel.json"
    rm -f "$work/$rel.btf" "$work/$rel.vmlinux"
done

"$here/fixture-info.py" readme "$out" > "$out/README.md"
echo "make-fixtures: wrote $out:" >&2
ls -l "$out" >&2
du -sh "$out" >&2
