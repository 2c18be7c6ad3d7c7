#!/usr/bin/env bash
# Clean Debian 12 root file systems for testing the package and the image, with nothing of
# this machine in them (no Swift toolchain, no build tree).
#
#   root.sh cache           prints the path of the cached minbase root tarball, making it
#                           first if needed: debootstrap --variant=minbase bookworm from
#                           Debian's mirror (the one apt uses here, else deb.debian.org;
#                           MIRROR overrides), then libbpf1 and libelf1 downloaded into its
#                           apt cache so that installing swtrace's package needs no network
#   root.sh new DIR         a fresh root in DIR, unpacked from the cache
#   root.sh run DIR CMD...  runs CMD chrooted in DIR with an empty environment (PATH of the
#                           root's own directories), /proc, /sys and /dev bound in a mount
#                           namespace of its own: the mounts go away with the command, also
#                           when it is killed
#
# Needs root. The cache is .build-pkgtest/bookworm-minbase.tar (some 200 MB; a cold make
# takes about a minute, most of it downloading).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cache_dir=$PWD/.build-pkgtest
cache=$cache_dir/bookworm-minbase.tar
say() { echo "root: $*" >&2; }
die() {
  echo "root: $*" >&2
  exit 2
}
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

mirror() {
  if [ -n "${MIRROR:-}" ]; then
    echo "$MIRROR"
    return
  fi
  # The first plain Debian archive apt is configured with (deb822 or one-line format).
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# The command run by unshare in its new mount namespace: bind the kernel's file systems into
# the root, then become CMD (exec all the way, so that CMD has the pid root.sh was started
# with, and signals sent to it reach CMD).
# shellcheck disable=SC2016  # expanded by the bash that unshare starts
in_namespace='
  set -e
  root=$1
  shift
  mount --rbind /proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
'

run_in() {
  local root=$1
  shift
  [ -x "$root/bin/sh" ] || die "$root is not a root file system"
  unshare --mount --propagation private -- /bin/bash -c "$in_namespace" root-run "$root" "$@"
}

make_cache() {
  scripts/deps.sh debootstrap >&2
  local work
  mkdir -p "$cache_dir"
  work=$(mktemp -d "$cache_dir/make.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT
  local source
  source=$(mirror)
  say "debootstrap bookworm minbase from $source"
  if ! debootstrap --variant=minbase bookworm "$work/root" "$source" >"$work/debootstrap.log" 2>&1; then
    tail -30 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  cp /etc/resolv.conf "$work/root/etc/resolv.conf"
  run_in "$work/root" apt-get clean
  run_in "$work/root" apt-get install -y -qq --download-only --no-install-recommends libbpf1 libelf1 >&2
  run_in "$work/root" /bin/sh -c ': >/etc/resolv.conf'
  tar --numeric-owner -C "$work/root" -cf "$work/root.tar" .
  mv "$work/root.tar" "$cache"
  say "cached $cache ($(du -h "$cache" | cut -f1))"
}

case "${1:-}" in
  cache)
    [ -s "$cache" ] || make_cache
    echo "$cache"
    ;;
  new)
    [ -n "${2:-}" ] || die "usage: root.sh new DIR"
    [ -s "$cache" ] || make_cache
    mkdir -p "$2"
    tar --numeric-owner -C "$2" -xf "$cache"
    ;;
  run)
    if [ -z "${2:-}" ] || [ -z "${3:-}" ]; then die "usage: root.sh run DIR CMD..."; fi
    root=$2
    shift 2
    [ -x "$root/bin/sh" ] || die "$root is not a root file system"
    exec unshare --mount --propagation private -- /bin/bash -c "$in_namespace" root-run "$root" "$@"
    ;;
  *)
    die "usage: root.sh cache | new DIR | run DIR CMD..."
    ;;
esac
