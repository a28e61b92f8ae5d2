#!/usr/bin/env bash
# Buildroot post-build: the same rootfs-overlay as scripts/build-image (BR2_ROOTFS_OVERLAY
# already copied it); adds the version file, the kernel/initramfs places per bootloader, and
# what makes the slot updatable (scripts/lib/image.sh: configure_slot).
# $1 = TARGET_DIR, $2 = board folder (board/<family>/<board> of this repository).
# PERCLOUD_UPDATE_KEY names the signing key whose keyring entry (<key>.pub) goes in the slot.
set -euo pipefail
target=$1
board_dir=$(realpath "$2")
family_dir=$(dirname "$board_dir")/common
repo=$(realpath "$(dirname "$0")/../..")
# shellcheck source=scripts/lib/image.sh
source "$repo/scripts/lib/image.sh"
# shellcheck source=/dev/null
source "$family_dir/meta"
# shellcheck source=/dev/null
source "$board_dir/meta"
version=${PERCLOUD_VERSION:-0.1.0}
echo "$version" > "$target/etc/percloud/version"
mkdir -p "$target/data" "$target/boot"
if [ -z "${PERCLOUD_UPDATE_KEY:-}" ]; then
  echo "post-build: no PERCLOUD_UPDATE_KEY: the slot's keyring has only the committed keys" >&2
fi
configure_slot "$target" "$version" "${PERCLOUD_UPDATE_KEY:+$PERCLOUD_UPDATE_KEY.pub}"
