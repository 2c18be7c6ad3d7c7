#!/usr/bin/env bash
# Builds the Debian package dist/swtrace_VERSION_ARCH.deb with dpkg-deb, from this tree,
# without the network (the Swift packages come from SwiftPM's cache like any build).
#
#   1. release build with the Swift runtime linked statically (.build/release/swtrace)
#   2. refuses a binary that needs anything from the Swift toolchain (NEEDED or RUNPATH)
#   3. stages /usr/bin/swtrace (stripped), the man page, the bash/zsh/fish completions, the
#      systemd unit (ExecStart at /usr/bin/swtrace), the example fleet spec as the conffile
#      /etc/swtrace/spec.spec and in /usr/share/doc/swtrace/examples, copyright and changelog
#   4. Depends: from dpkg-shlibdeps (libbpf1, libelf1, zlib1g, libc6, libstdc++6, libgcc-s1)
#   5. dpkg-deb --root-owner-group; lintian when installed (errors fail the build)
#
# Prints the path of the package on stdout. Environment: SWIFT (default swift), DIST (output
# directory, default dist), SKIP_BUILD=1 packages the binary already in .build/release.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
swift=${SWIFT:-swift}
dist=${DIST:-dist}
say() { echo "deb: $*" >&2; }
die() {
  echo "deb: $*" >&2
  exit 1
}

for tool in dpkg-deb dpkg-shlibdeps readelf strip gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (make deps installs dpkg-dev and binutils)"
done

# --- 1. the binary ------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "release build with the Swift runtime linked statically"
  "$swift" build -c release --static-swift-stdlib --disable-local-rpath --product swtrace >&2
fi
binary=.build/release/swtrace
[ -x "$binary" ] || die "$binary is missing"

# --- 2. nothing from the toolchain --------------------------------------------------------
needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for library in $needed; do
  case "$library" in
    libbpf.so.1 | libelf.so.1 | libz.so.1 | libc.so.6 | libm.so.6 | libstdc++.so.6 | libgcc_s.so.1 | ld-linux-x86-64.so.2) ;;
    *) die "$binary needs $library, which is not one of Debian's base libraries (is the Swift runtime linked statically?)" ;;
  esac
done
if readelf -d "$binary" | grep -qE '\((RPATH|RUNPATH)\)'; then
  die "$binary has a run path: $(readelf -d "$binary" | grep -E 'RPATH|RUNPATH')"
fi

version=$("$binary" --version)
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "'swtrace --version' printed '$version', not a version"
arch=$(dpkg --print-architecture)

# --- 3. the tree --------------------------------------------------------------------------
stage=.build-deb/stage
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
install -D -m 0755 "$binary" "$stage/usr/bin/swtrace"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/swtrace"
install -d -m 0755 "$stage/usr/share/man/man1"
gzip -9nc docs/swtrace.1 >"$stage/usr/share/man/man1/swtrace.1.gz"
chmod 0644 "$stage/usr/share/man/man1/swtrace.1.gz"
# Completion files are sourced, not run: no #! line.
install -d -m 0755 "$stage/usr/share/bash-completion/completions"
sed '1{/^#!/d}' docs/completions/swtrace.bash >"$stage/usr/share/bash-completion/completions/swtrace"
chmod 0644 "$stage/usr/share/bash-completion/completions/swtrace"
install -D -m 0644 docs/completions/swtrace.zsh "$stage/usr/share/zsh/vendor-completions/_swtrace"
install -D -m 0644 docs/completions/swtrace.fish "$stage/usr/share/fish/vendor_completions.d/swtrace.fish"
install -d -m 0755 "$stage/lib/systemd/system"
sed 's|/usr/local/bin/swtrace|/usr/bin/swtrace|g' deploy/swtrace.service >"$stage/lib/systemd/system/swtrace.service"
chmod 0644 "$stage/lib/systemd/system/swtrace.service"
# The spec starts with #!/usr/bin/env swtrace: it runs as a program too.
install -D -m 0755 deploy/spec.spec "$stage/etc/swtrace/spec.spec"
install -D -m 0644 deploy/spec.spec "$stage/usr/share/doc/swtrace/examples/spec.spec"
echo "/etc/swtrace/spec.spec" >"$stage/DEBIAN/conffiles"

date=$(date -u -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
{
  echo "swtrace ($version) unstable; urgency=medium"
  echo
  echo "  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree') by scripts/package/deb.sh."
  echo
  echo " -- swtrace maintainers <swtrace@example.org>  $date"
} | gzip -9nc >"$stage/usr/share/doc/swtrace/changelog.gz"
years="$(git log --reverse --format=%ad --date=format:%Y 2>/dev/null | head -1)-$(date -u +%Y)"
cat >"$stage/usr/share/doc/swtrace/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: swtrace
Comment: /usr/bin/swtrace contains, linked statically, the Swift standard library and
 runtime, FoundationEssentials and swift-argument-parser. libbpf, libelf, zlib and the C
 and C++ runtime libraries are Debian's, linked dynamically.

Files: *
Copyright: $years the swtrace authors
License: swtrace
 The licence of swtrace's own code is the one stated in its source repository.

Files: usr/bin/swtrace (Swift runtime, FoundationEssentials, swift-argument-parser)
Copyright: 2014-$(date -u +%Y) Apple Inc. and the Swift project authors
License: Apache-2.0 with Runtime Library Exception
 On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
 The Runtime Library Exception: as an exception, if you use this Software to compile your
 source code and portions of this Software are embedded into the binary product as a result,
 you may redistribute such product without providing attribution as would otherwise be
 required by Sections 4(a), 4(b) and 4(d) of the License.
COPYRIGHT
chmod 0644 "$stage/usr/share/doc/swtrace/copyright"

# --- 4. control ---------------------------------------------------------------------------
# dpkg-shlibdeps wants a debian/control beside the tree; a scratch one will do.
scratch=.build-deb/shlibdeps
rm -rf "$scratch"
mkdir -p "$scratch/debian"
printf 'Source: swtrace\n\nPackage: swtrace\nArchitecture: any\n' >"$scratch/debian/control"
depends=$(cd "$scratch" && dpkg-shlibdeps -O --warnings=0 "../../$stage/usr/bin/swtrace" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"
for package in libbpf1 libelf1 zlib1g; do
  [[ "$depends" == *"$package"* ]] || die "Depends lacks $package: $depends"
done
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: swtrace
Version: $version
Architecture: $arch
Maintainer: swtrace maintainers <swtrace@example.org>
Installed-Size: $installed_size
Depends: $depends
Section: net
Priority: optional
Description: packet tracer for Linux with its own eBPF compiler
 swtrace follows packets through the kernel: a small bpftrace-like language,
 type-checked against the kernel's BTF and compiled to eBPF by swtrace itself
 (no clang or LLVM at run time), pre-checked the way the kernel verifier
 would, loaded with libbpf. It prints one line per hop, JSON, per-packet
 paths, or serves its maps as Prometheus metrics (--metrics).
 .
 The package has the man page, bash, zsh and fish completions, a systemd
 unit serving /etc/swtrace/spec.spec as metrics on port 9464 (not enabled
 on install), and the example fleet spec.
CONTROL

# --- 5. the package -----------------------------------------------------------------------
mkdir -p "$dist"
deb="$dist/swtrace_${version}_${arch}.deb"
find "$stage" -exec touch -h -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" {} +
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
say "$deb: $(stat -c %s "$deb") bytes, Installed-Size $installed_size KiB, Depends: $depends"

if command -v lintian >/dev/null 2>&1; then
  # Tags that do not apply: the copyright names no licence text of swtrace's own yet, and a
  # native package built outside a Debian source tree has no source to point at.
  lintian --tag-display-limit 0 --suppress-tags no-manual-page,initial-upload-closes-no-bugs "$deb" >&2 || {
    status=$?
    [ "$status" -eq 2 ] && die "lintian reports errors for $deb"
  }
else
  say "lintian is not installed: not checked (apt-get install lintian)"
fi
echo "$deb"
