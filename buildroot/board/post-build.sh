#!/usr/bin/env bash
# Buildroot post-build: the same rootfs-overlay as scripts/build-image (BR2_ROOTFS_OVERLAY
# already copied it); adds the version file and the kernel/initramfs places per bootloader.
# $1 = TARGET_DIR, $2 = board folder (board/<family>/<board> of this repository).
set -euo pipefail
target=$1
echo "${PERCLOUD_VERSION:-0.1.0}" > "$target/etc/percloud/version"
mkdir -p "$target/data" "$target/boot"
