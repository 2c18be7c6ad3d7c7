#!/usr/bin/env bash
# Installs the Debian packages swtrace needs to build, test and demo, idempotently:
# nothing happens when they are all installed, and `apt-get update` runs only when a
# package cannot be installed from the package lists as they are.
#
# Usage: scripts/deps.sh [PACKAGE...]   (default: $APT_PACKAGES, else the list below)
set -euo pipefail

DEFAULT_PACKAGES="libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool iproute2 iptables nftables"

if [ "$#" -gt 0 ]; then
  packages=("$@")
else
  read -r -a packages <<<"${APT_PACKAGES:-$DEFAULT_PACKAGES}"
fi

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for package in "${packages[@]}"; do
  is_installed "$package" || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all installed (${packages[*]})"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "deps: not root and no sudo; install as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive

has_candidate() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

updated=no
apt_update() {
  "${sudo[@]}" apt-get update -q
  updated=yes
}

# Package lists missing or not knowing a package: update before installing.
for package in "${missing[@]}"; do
  if ! has_candidate "$package"; then
    apt_update
    break
  fi
done

if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  # Stale lists can name versions the mirror no longer has: update once and retry.
  if [ "$updated" = yes ]; then
    exit 1
  fi
  apt_update
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for package in "${missing[@]}"; do
  if ! is_installed "$package"; then
    echo "deps: $package is still not installed" >&2
    exit 1
  fi
done
echo "deps: installed ${missing[*]}"
