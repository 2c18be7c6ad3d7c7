#!/usr/bin/env bash
# fetch-wg.sh: prints the path of `wg` from Debian's wireguard-tools package, for the VM
# lane's WireGuard scenarios (the guest generates its keys and configures its peers with it).
#
# The package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the
# cache fetch-kernel.sh uses (~/.cache/swtrace/kernels, or SWTRACE_KERNEL_CACHE); a cached
# copy is reused. Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

log() { echo "fetch-wg: $*" >&2; }

cache="${SWTRACE_KERNEL_CACHE:-$HOME/.cache/swtrace/kernels}"
package=wireguard-tools
mkdir -p "$cache/debs"
cache="$(cd "$cache" && pwd)"

version=$(apt-cache policy "$package" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }') || true
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log "updating the package lists: $package is not in them"
  apt-get update -q >&2 || true
  version=$(apt-cache policy "$package" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }') || true
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log "$package is not in the apt sources"
  exit 1
fi

tree="$cache/$package-${version//:/%3a}"
if [ ! -x "$tree/usr/bin/wg" ]; then
  download=$(mktemp -d "$cache/debs/.dl.XXXXXX")
  trap 'rm -rf "$download"' EXIT
  # As root apt drops privileges to _apt for the download, which must be able to write here.
  chmod 0777 "$download"
  sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  log "downloading $package=$version"
  (cd "$download" && apt-get download -q "${sandbox[@]}" "$package=$version" >&2)
  debs=("$download"/*.deb)
  [ -e "${debs[0]}" ] || { log "apt-get download produced no .deb"; exit 1; }
  rm -rf "$tree.tmp"
  dpkg-deb -x "${debs[0]}" "$tree.tmp"
  [ -x "$tree.tmp/usr/bin/wg" ] || { log "the package has no usr/bin/wg"; exit 1; }
  rm -rf "$tree"
  mv "$tree.tmp" "$tree"
fi
echo "$tree/usr/bin/wg"
