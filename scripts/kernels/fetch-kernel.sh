#!/usr/bin/env bash
# fetch-kernel.sh NAME[=VERSION]
#
# Download a Debian kernel image package with `apt-get download` and unpack it
# with `dpkg-deb -x` into a cache directory, then print the path of its
# vmlinuz on stdout (the only thing written to stdout; progress goes to stderr).
#
# NAME may be
#   * a full package name:      linux-image-6.1.0-56-amd64
#   * a kernel release:         6.1.0-56-amd64   (linux-image- is prepended)
#   * a meta package:           linux-image-amd64, linux-image-6.12-cloud-amd64
#                               (resolved to the concrete image package it
#                               depends on, via apt-cache)
# and may carry an apt version pin, e.g. linux-image-6.1.0-56-amd64=6.1.192-2.
#
# Layout of the cache (default ~/.cache/swtrace/kernels, override with
# SWTRACE_KERNEL_CACHE or -c DIR):
#   debs/<package>_<version>_<arch>.deb    the downloaded package
#   <release>/                             the unpacked package root:
#       boot/vmlinuz-<release>             kept, for booting in qemu later
#       boot/config-<release>
#       boot/System.map-<release>         (a Debian placeholder, no symbols)
#       lib/modules/<release>/             kept, modules for the qemu guest
#       PACKAGE                            name/version/sha256 of the .deb
#
# Re-running is cheap: an existing .deb / unpacked tree is reused.
set -euo pipefail

usage() {
    echo "usage: $0 [-c CACHE_DIR] NAME[=VERSION]" >&2
    exit 2
}

cache="${SWTRACE_KERNEL_CACHE:-$HOME/.cache/swtrace/kernels}"
while getopts "c:h" opt; do
    case "$opt" in
        c) cache="$OPTARG" ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage

log() { echo "fetch-kernel: $*" >&2; }

spec="$1"
name="${spec%%=*}"
pin=""
[[ "$spec" == *=* ]] && pin="${spec#*=}"
[[ "$name" == linux-image-* ]] || name="linux-image-$name"

# Resolve meta packages (linux-image-amd64, linux-image-6.12-cloud-amd64, ...),
# which carry no vmlinuz, to the concrete image package they depend on.
# Concrete image packages never depend on another linux-image-* package.
for _ in 1 2 3; do
    target=$(apt-cache depends --important "${name}${pin:+=$pin}" 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
    [ -n "$target" ] || break
    log "$name is a meta package -> $target"
    name="$target"
    pin=""
done

mkdir -p "$cache/debs"
cache="$(cd "$cache" && pwd)"

# Which version would apt download?  (Needed to find an existing .deb.)
if [ -z "$pin" ]; then
    pin=$(apt-cache policy "$name" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }') || true
    if [ -z "$pin" ] || [ "$pin" = "(none)" ]; then
        log "package $name not found in the apt sources (run apt-get update?)"
        exit 1
    fi
fi

deb=""
for f in "$cache/debs/${name}_"*.deb; do
    [ -e "$f" ] || continue
    if [ "$(dpkg-deb -f "$f" Package)" = "$name" ] \
        && [ "$(dpkg-deb -f "$f" Version)" = "$pin" ]; then
        deb="$f"
        break
    fi
done

if [ -z "$deb" ]; then
    log "downloading $name=$pin"
    tmp=$(mktemp -d "$cache/debs/.dl.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # apt-get download writes into the current directory.  As root apt drops
    # privileges to _apt for the download, which must be able to write there.
    chmod 0777 "$tmp"
    sandbox=()
    # /root is not traversable by _apt; avoid the "unsandboxed" warning.
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$name=$pin" >&2)
    got=( "$tmp"/*.deb )
    [ -e "${got[0]}" ] || { log "apt-get download produced no .deb"; exit 1; }
    arch=$(dpkg-deb -f "${got[0]}" Architecture)
    deb="$cache/debs/${name}_${pin//:/%3a}_${arch}.deb"
    mv "${got[0]}" "$deb"
    rm -rf "$tmp"
    trap - EXIT
else
    log "using cached $deb"
fi

# The kernel release is the suffix of lib/modules/<release> in the package.
release=$(dpkg-deb -c "$deb" | awk '{ print $6 }' \
    | sed -n 's#^\./\(usr/\)\{0,1\}lib/modules/\([^/]*\)/$#\2#p' | head -n1)
if [ -z "$release" ]; then
    release=$(dpkg-deb -c "$deb" | awk '{ print $6 }' \
        | sed -n 's#^\./boot/vmlinuz-\(.*\)$#\1#p' | head -n1)
fi
[ -n "$release" ] || { log "$deb contains no kernel (lib/modules or boot/vmlinuz)"; exit 1; }

root="$cache/$release"
stamp="$root/PACKAGE"
if [ ! -f "$stamp" ] || ! grep -qx "Version: $pin" "$stamp"; then
    log "unpacking into $root"
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    dpkg-deb -x "$deb" "$root.tmp"
    {
        echo "Package: $name"
        echo "Version: $pin"
        echo "Release: $release"
        echo "Deb: $(basename "$deb")"
        echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
    } > "$root.tmp/PACKAGE"
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi

vmlinuz="$root/boot/vmlinuz-$release"
[ -f "$vmlinuz" ] || { log "no $vmlinuz in package"; exit 1; }
echo "$vmlinuz"
