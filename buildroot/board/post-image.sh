#!/usr/bin/env bash
# Buildroot post-image: the same partition images and genimage config as
# scripts/build-image, from Buildroot's BINARIES_DIR (Image/bzImage, rootfs.squashfs).
# $1 = BINARIES_DIR, $2 = board folder (board/<family>/<board> of this repository).
set -euo pipefail
binaries=$1
board_dir=$(realpath "$2")
family_dir=$(dirname "$board_dir")/common
repo=$(realpath "$(dirname "$0")/../..")
# shellcheck source=scripts/lib/image.sh
source "$repo/scripts/lib/image.sh"
# shellcheck source=/dev/null
source "$family_dir/meta"
# shellcheck source=/dev/null
source "$board_dir/meta"
board_file() { if [ -e "$board_dir/$1" ]; then echo "$board_dir/$1"; else echo "$family_dir/$1"; fi; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
parts=$binaries/parts
rm -rf "$parts"
mkdir -p "$parts"
cp "$binaries/rootfs.squashfs" "$parts/system.squashfs"
make_ext4 "$parts/data.ext4" 64 data 6d3c2a5e-7f0b-4b61-9a43-70657263da7a
case "$BOOTLOADER" in
  grub-efi)
    mkdir -p "$binaries/esp/EFI/BOOT"
    cp "$binaries/efi-part/EFI/BOOT/bootx64.efi" "$binaries/esp/EFI/BOOT/BOOTX64.EFI"
    cp "$(board_file grub.cfg)" "$binaries/esp/EFI/BOOT/grub.cfg"
    grub-editenv "$binaries/esp/EFI/BOOT/grubenv" create
    grub-editenv "$binaries/esp/EFI/BOOT/grubenv" set ORDER="A B" A_TRIES=3 B_TRIES=3
    make_vfat "$binaries/esp" "$parts/esp.vfat" 32 50435345 ESP
    ;;
  rpi-firmware)
    for slot in A B; do
      boot=$binaries/boot-$slot
      rm -rf "$boot"
      mkdir -p "$boot"
      cp "$binaries"/rpi-firmware/start4.elf "$binaries"/rpi-firmware/fixup4.dat "$boot/"
      cp "$binaries"/*.dtb "$boot/"
      cp "$binaries/Image" "$boot/vmlinuz"
      cp "$binaries/rootfs.cpio.zst" "$boot/initrd.img" 2>/dev/null || true
      cp "$(board_file config.txt)" "$boot/config.txt"
      part=05
      [ "$slot" = A ] || part=06
      sed -e "s/@SLOT@/$slot/" -e "s/@ROOT_PART@/$part/" -e "s/@DISK_SIGNATURE@/$DISK_SIGNATURE/g" \
        "$(board_file cmdline.txt)" > "$boot/cmdline.txt"
    done
    make_vfat "$binaries/boot-A" "$parts/boot-a.vfat" 64 50435241 BOOT-A
    make_vfat "$binaries/boot-B" "$parts/boot-b.vfat" 64 50435242 BOOT-B
    mkdir -p "$binaries/autoboot"
    cp "$(board_file autoboot.txt)" "$binaries/autoboot/"
    make_vfat "$binaries/autoboot" "$parts/autoboot.vfat" 8 50435230 AUTOBOOT
    ;;
esac
genimage --config "$(board_file genimage.cfg)" --rootpath "$(mktemp -d)" \
  --tmppath "$binaries/genimage.tmp" --inputpath "$parts" --outputpath "$binaries"
zstd -q -f -T0 -19 --long=27 "$binaries/percloud.img" -o "$binaries/percloud-$BOARD_ID.img.zst"
