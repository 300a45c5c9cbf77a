#!/usr/bin/env bash
# Builds the local Debian 12 systemd image the molecule scenarios boot.
# No registry is reachable here, so the image comes from debootstrap + docker import.
# The image is labelled with a hash of this script and rebuilt only when the script changes.
set -euo pipefail

image="${TEMPORAL_TEST_IMAGE:-local/debian12-systemd:latest}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recipe_hash="$(sha256sum "$here/test-image.sh" | cut -c1-16)"

if [ "$(docker image inspect -f '{{ index .Config.Labels "durable.temporal.recipe" }}' "$image" 2>/dev/null || true)" = "$recipe_hash" ]; then
  echo "test image $image is current ($recipe_hash)"
  exit 0
fi

# The mirror comes from this machine's apt configuration, never from the repository.
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || { echo "cannot find a Debian mirror in the apt configuration" >&2; exit 1; }

rootfs="$(mktemp -d /var/tmp/debian12-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "building $image from $mirror (takes about a minute)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,python3-yaml,sudo,iproute2,ca-certificates,procps,curl \
  bookworm "$rootfs" "$mirror" >/var/tmp/debootstrap.log 2>&1 || { tail -n 30 /var/tmp/debootstrap.log >&2; exit 1; }

# apt inside the containers uses the same sources as this machine.
rm -f "$rootfs/etc/apt/sources.list"
mkdir -p "$rootfs/etc/apt/sources.list.d"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
else
  cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
fi
# Units that make no sense in a container and slow its boot.
for unit in systemd-remount-fs.service systemd-udevd.service systemd-udev-trigger.service getty@tty1.service systemd-logind.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL durable.temporal.recipe=$recipe_hash" \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
echo "built $image ($recipe_hash)"
