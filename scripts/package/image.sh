#!/usr/bin/env bash
# Builds the container image for deploy/daemonset.yaml from the Debian package, offline
# but for the Debian mirror: no registry, no container engine.
#
#   1. a fresh Debian 12 minbase root (scripts/package/root.sh: debootstrap, cached)
#   2. apt-get install of dist/swtrace_VERSION_ARCH.deb into it, chrooted; apt's caches and
#      lists removed afterwards
#   3. the root as one layer (reproducible tar: sorted, numeric owners, clamped times, no
#      device nodes), and an OCI image layout around it: config (entrypoint /usr/bin/swtrace,
#      the DaemonSet's arguments as the default command, port 9464), manifest, index.json
#      tagged VERSION, plus a manifest.json so that `docker load` takes it too
#   4. the layout as one archive, dist/swtrace-image_VERSION_ARCH.oci.tar
#
# Load it with `skopeo copy oci-archive:dist/swtrace-image_0.1.0_amd64.oci.tar
# docker://REGISTRY/swtrace:0.1.0`, `podman load -i ...`, `docker load -i ...` or
# `ctr -n k8s.io images import ...`. Prints the archive's path. Needs root.
#
# Usage: scripts/package/image.sh [DEB]   (default: the newest dist/swtrace_*.deb)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dist=${DIST:-dist}
say() { echo "image: $*" >&2; }
die() {
  echo "image: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (chroot, apt-get in the image's root)"

newest_deb() { find "$dist" -maxdepth 1 -name 'swtrace_*.deb' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-; }
deb=${1:-$(newest_deb)}
if [ -z "$deb" ] || [ ! -f "$deb" ]; then die "no package: run make deb first (or pass the .deb)"; fi
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)

# --- 1, 2. the root -----------------------------------------------------------------------
work=$PWD/.build-image
rm -rf "$work"
mkdir -p "$work/layout/blobs/sha256"
root=$work/root
scripts/package/root.sh new "$root"
cp "$deb" "$root/tmp/swtrace.deb"
scripts/package/root.sh run "$root" apt-get install -y -qq --no-install-recommends /tmp/swtrace.deb >&2
scripts/package/root.sh run "$root" apt-get clean
rm -rf "$root/tmp/swtrace.deb" "$root"/var/lib/apt/lists/* "$root"/var/log/apt/* "$root"/var/cache/debconf/*-old
find "$root/var/log" -type f -exec truncate -s 0 {} +
scripts/package/root.sh run "$root" /usr/bin/swtrace --version >/dev/null ||
  die "swtrace does not run in the image's root"

# --- 3. the layer and the image -----------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
tar --sort=name --numeric-owner --mtime="@$epoch" --clamp-mtime --exclude='./dev/*' --exclude='./proc/*' \
  --exclude='./sys/*' -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha "$work/layer.tar")
gzip -9n "$work/layer.tar"
layer_digest=$(sha "$work/layer.tar.gz")
layer_size=$(size "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$work/layout/blobs/sha256/$layer_digest"

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
cat >"$work/config.json" <<CONFIG
{"architecture":"$arch","os":"linux","created":"$created","config":{"Entrypoint":["/usr/bin/swtrace"],"Cmd":["--metrics","0.0.0.0:9464","/etc/swtrace/spec.spec"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"ExposedPorts":{"9464/tcp":{}},"Labels":{"org.opencontainers.image.title":"swtrace","org.opencontainers.image.version":"$version","org.opencontainers.image.description":"swtrace $version from swtrace_${version}_$arch.deb on Debian 12"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"$created","created_by":"scripts/package/image.sh: debootstrap --variant=minbase bookworm, apt-get install swtrace_${version}_$arch.deb"}]}
CONFIG
config_digest=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
mv "$work/config.json" "$work/layout/blobs/sha256/$config_digest"

cat >"$work/manifest.json" <<MANIFEST
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
MANIFEST
manifest_digest=$(sha "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")
mv "$work/manifest.json" "$work/layout/blobs/sha256/$manifest_digest"

echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
cat >"$work/layout/index.json" <<INDEX
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"$version","io.containerd.image.name":"swtrace:$version"}}]}
INDEX
# docker load's own format, pointing at the same blobs.
cat >"$work/layout/manifest.json" <<DOCKER
[{"Config":"blobs/sha256/$config_digest","RepoTags":["swtrace:$version"],"Layers":["blobs/sha256/$layer_digest"]}]
DOCKER

# --- 4. the archive -----------------------------------------------------------------------
mkdir -p "$dist"
image="$dist/swtrace-image_${version}_${arch}.oci.tar"
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$epoch" -C "$work/layout" -cf "$image" .
rm -rf "$root"
say "$image: $(size "$image") bytes (layer $layer_size bytes compressed, $(du -sh --apparent-size "$work/layout" | cut -f1) in all)"
echo "$image"
