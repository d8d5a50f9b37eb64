#!/usr/bin/env bash
# Builds the Debian 12 systemd test host image used by Molecule and the sandbox inventory.
# Docker registries are unreachable, so the root file system comes from debootstrap.
# The image tag carries a hash of this file: editing the recipe rebuilds the image.
set -euo pipefail
image="$1"
mirror="${LAKEHOUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=systemd,systemd-sysv,python3,python3-apt,dbus,iproute2,procps,sudo,ca-certificates,curl
rootfs="$(mktemp -d /var/tmp/lakehouse-testhost.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >/dev/null
# A container has no consoles or udev to wait for; these units only slow boot or fail.
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
            systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
echo 'en_US.UTF-8 UTF-8' > "$rootfs/etc/locale.gen"
: > "$rootfs/etc/machine-id"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' - "$image" >/dev/null
