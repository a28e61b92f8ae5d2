# Helpers for scripts/build-image (and Buildroot's post-image step). Source it; do not run it.
# Every helper writes only below the paths it is given, mounts nothing, and gives the same
# bytes for the same inputs (timestamps come from SOURCE_DATE_EPOCH).
# shellcheck shell=bash

# Host tools the image build needs; adds the apt sources the notes call for (QEMU 10 from
# bookworm-backports, raspi-firmware from non-free-firmware) and arm64 as a foreign
# architecture (for `apt-get download pkg:arm64`).
ensure_image_host() {
  local sources=/etc/apt/sources.list.d/percloud-image.sources
  if [ ! -e "$sources" ] || ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" -eq 0 ] || { echo "build-image: run as root once to add apt sources" >&2; return 1; }
    cat > "$sources" <<'EOF'
# Added by percloud's scripts/lib/image.sh: QEMU 10 (raspi4b) and raspi-firmware.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    dpkg --add-architecture arm64
    apt-get update -qq
    export PERCLOUD_APT_UPDATED=1
  fi
  ensure_apt genimage dosfstools mtools squashfs-tools e2fsprogs cpio kmod fdisk zstd \
    grub-common binutils musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross make \
    musl-dev:arm64
}

# build_percloud TARGET: builds the shipped percloud (cargo profile `image`, static musl) for
# TARGET (x86_64- or aarch64-unknown-linux-musl) and prints the binary's path. Needs the
# packages of ensure_image_host (musl-tools; gcc-aarch64-linux-gnu and musl-dev:arm64).
build_percloud() {
  # The C code (ring, zstd, jemalloc, whose configure probes the C library) is compiled
  # against musl's own headers: musl-gcc, and on arm64 Debian's musl-dev:arm64 wrapper around
  # aarch64-linux-gnu-gcc, with atomics inline (the Pi's Cortex-A72 has no LSE; that gcc's
  # libgcc helpers for outlined atomics call glibc's __getauxval, which musl lacks, so
  # jemalloc's configure would find no atomics). The arm64 binary links with rust-lld.
  if [ "$1" = aarch64-unknown-linux-musl ] && ! command -v aarch64-linux-musl-gcc >/dev/null; then
    echo "build_percloud: aarch64-linux-musl-gcc is missing (musl-dev:arm64, see ensure_image_host)" >&2
    return 1
  fi
  CC_x86_64_unknown_linux_musl=musl-gcc \
  CC_aarch64_unknown_linux_musl=aarch64-linux-musl-gcc \
  CFLAGS_aarch64_unknown_linux_musl=-mno-outline-atomics \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    cargo build -q -p percloud --locked --target "$1" --profile image >&2 || return
  echo "target/$1/image/percloud"
}

# fetch_deb CACHE ARCH PACKAGE: prints the path of PACKAGE's .deb for ARCH in CACHE, running
# `apt-get download` only when the cache has none (so a second build is offline).
fetch_deb() {
  local cache=$1 arch=$2 pkg=$3 found
  mkdir -p "$cache"
  found=$(find "$cache" -maxdepth 1 -name "${pkg}_*_${arch}.deb" -o -maxdepth 1 -name "${pkg}_*_all.deb" | sort | tail -n 1)
  if [ -z "$found" ]; then
    # Architecture-independent packages (raspi-firmware) have no "pkg:arch" name.
    (cd "$cache" && { apt-get download -q "$pkg:$arch" 2>&1 || apt-get download -q "$pkg" 2>&1; } |
      grep -v 'unsandboxed' >&2) || true
    found=$(find "$cache" -maxdepth 1 -name "${pkg}_*_${arch}.deb" -o -maxdepth 1 -name "${pkg}_*_all.deb" | sort | tail -n 1)
  fi
  [ -n "$found" ] || { echo "build-image: cannot download $pkg:$arch" >&2; return 1; }
  echo "$found"
}

# deb_depends DEB: the package names DEB depends on (first alternative, no versions).
deb_depends() {
  dpkg-deb -f "$1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/ //g' | grep -v '^$'
}

# extract_deb DEB DIR: unpacks DEB into DIR once (DIR is kept as a cache).
extract_deb() {
  [ -e "$2/.extracted" ] && return 0
  rm -rf "$2"
  mkdir -p "$2"
  dpkg-deb -x "$1" "$2"
  touch "$2/.extracted"
}

# copy_elf SYSROOT DEST FILE...: copies each FILE (a path inside SYSROOT) into DEST at the same
# path, with its program interpreter and the shared libraries it needs, found in SYSROOT's
# /lib/<multiarch> or /usr/lib/<multiarch> and copied to DEST's /lib/<multiarch>.
copy_elf() {
  local sysroot=$1 dest=$2 file interp lib dir
  shift 2
  for file in "$@"; do
    _copy_elf_one "$sysroot" "$dest" "$sysroot$file" "$file"
  done
}

# in_sysroot SYSROOT PATH: PATH inside SYSROOT with symbolic links followed inside it (the
# packages' links are absolute: /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...).
in_sysroot() {
  local path=$1$2 link
  while [ -L "$path" ]; do
    link=$(readlink "$path")
    case "$link" in
      /*) path=$1$link ;;
      *) path=$(dirname "$path")/$link ;;
    esac
  done
  echo "$path"
}

# _copy_elf_one SYSROOT DEST SOURCE TARGET: copies SOURCE to DEST/TARGET, then what it needs.
_copy_elf_one() {
  local sysroot=$1 dest=$2 src=$3 target=$4 interp lib dir found
  [ -e "$dest$target" ] && return 0
  mkdir -p "$dest$(dirname "$target")"
  src=$(in_sysroot "" "$src")
  cp "$src" "$dest$target"
  interp=$(readelf -l "$src" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  if [ -n "$interp" ] && [ ! -e "$dest$interp" ]; then
    mkdir -p "$dest$(dirname "$interp")"
    cp "$(in_sysroot "$sysroot" "$interp")" "$dest$interp"
  fi
  for lib in $(readelf -d "$src" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    found=
    for dir in "$sysroot"/lib/*-linux-gnu "$sysroot"/usr/lib/*-linux-gnu; do
      if [ -e "$dir/$lib" ]; then found=$dir; break; fi
    done
    [ -n "$found" ] || { echo "build-image: $lib (needed by $target) is not in the sysroot" >&2; return 1; }
    _copy_elf_one "$sysroot" "$dest" "$found/$lib" "/lib/${found##*/}/$lib"
  done
}

# copy_modules KROOT KVER DEST LIST...: the kernel modules named in the LIST files (one a
# line, # comments) and their dependencies, resolved with `modprobe --show-depends` against
# the unpacked kernel KROOT, copied to DEST/lib/modules/KVER; prints their paths relative to
# that folder, in load order.
copy_modules() {
  local kroot=$1 kver=$2 dest=$3 name file rel
  shift 3
  [ -e "$kroot/lib/modules/$kver/modules.dep" ] || depmod -b "$kroot" "$kver"
  grep -hv '^#' "$@" | grep -v '^$' | while read -r name; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$name" 2>/dev/null | awk '$1 == "insmod" { print $2 }' ||
      echo "build-image: note: module $name is built in or absent in $kver" >&2
  done | awk '!seen[$0]++' | while read -r file; do
    rel=${file#*/lib/modules/"$kver"/}
    mkdir -p "$dest/lib/modules/$kver/$(dirname "$rel")"
    cp "$file" "$dest/lib/modules/$kver/$rel"
    echo "$rel"
  done
}

# build_kernel_module SRC KVER ARCH CACHE WORK DEST: builds the out-of-tree module in folder
# SRC (a Kbuild file) against Debian's headers of kernel KVER for ARCH, cross-compiled
# (arm64: aarch64-linux-gnu-gcc; kbuild's host tools are amd64), and installs its .ko files
# into DEST/lib/modules/KVER/extra/. Packages are fetched into CACHE/debs. Built without
# debug information and stripped: the same bytes whatever folder it is built in.
build_kernel_module() {
  local src=$1 kver=$2 arch=$3 cache=$4 work=$5 dest=$6 series cross headers build ko
  series=$(echo "$kver" | cut -d. -f1-2)
  case "$arch" in
    arm64) cross=aarch64-linux-gnu- ;;
    *) echo "build-image: building kernel modules for $arch is not set up" >&2; return 1 ;;
  esac
  headers=$(realpath -m "$cache/unpacked/linux-headers-$kver")
  if [ ! -e "$headers/.extracted" ]; then
    rm -rf "$headers"
    mkdir -p "$headers"
    dpkg-deb -x "$(fetch_deb "$cache/debs/$arch" "$arch" "linux-headers-$kver")" "$headers"
    dpkg-deb -x "$(fetch_deb "$cache/debs/$arch" "$arch" "linux-headers-${kver%-*}-common")" "$headers"
    dpkg-deb -x "$(fetch_deb "$cache/debs/amd64" amd64 "linux-kbuild-$series")" "$headers"
    # The headers' Makefile includes the common part by its installed path.
    sed -i "s|/usr/src/|$headers/usr/src/|" "$headers/usr/src/linux-headers-$kver/Makefile"
    touch "$headers/.extracted"
  fi
  build=$(realpath -m "$work/module-$(basename "$src")")
  rm -rf "$build"
  mkdir -p "$build"
  cp -a "$src/." "$build/"
  make -s -C "$headers/usr/src/linux-headers-$kver" M="$build" ARCH="$arch" \
    CROSS_COMPILE="$cross" KCFLAGS=-g0 modules 2>&1 | grep -v '^Skipping BTF generation' >&2 || true
  for ko in "$build"/*.ko; do
    [ -e "$ko" ] || { echo "build-image: building the module in $src gave no .ko" >&2; return 1; }
    install -D -m 0644 /dev/null "$dest/lib/modules/$kver/extra/$(basename "$ko")"
    "${cross}strip" --strip-debug -o "$dest/lib/modules/$kver/extra/$(basename "$ko")" "$ko"
    echo "module $(basename "$ko" .ko) ($(stat -c %s "$ko") bytes before strip)"
  done
}

# set_mtimes DIR: every file's time becomes SOURCE_DATE_EPOCH (for reproducible archives).
set_mtimes() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# make_cpio DIR OUT: a zstd-compressed newc cpio of DIR (an initramfs), files sorted.
make_cpio() {
  set_mtimes "$1"
  (cd "$1" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | zstd -q -19 -T0 > "$2"
}

# make_squashfs DIR OUT COMPRESSION...: a read-only slot image of DIR, owned by root.
make_squashfs() {
  local dir=$1 out=$2
  shift 2
  set_mtimes "$dir"
  rm -f "$out"
  # shellcheck disable=SC2068 # the compression options are meant to split into words
  # mksquashfs takes its times from SOURCE_DATE_EPOCH itself.
  mksquashfs "$dir" "$out" -comp $@ -b 1M -noappend -all-root -no-xattrs -quiet > /dev/null
}

# make_vfat DIR OUT SIZE_MIB VOLUME_ID LABEL: a FAT image holding DIR's files.
make_vfat() {
  local dir=$1 out=$2 size=$3 id=$4 label=$5
  rm -f "$out"
  set_mtimes "$dir"
  mkfs.vfat -C --invariant -i "$id" -n "$label" "$out" $((size * 1024)) > /dev/null
  if [ -n "$(ls -A "$dir")" ]; then
    MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$out" "$dir"/* ::
  fi
}

# make_ext4 OUT SIZE_MIB LABEL UUID: an empty ext4 filesystem with a journal.
make_ext4() {
  rm -f "$1"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L "$3" -U "$4" \
    -E "hash_seed=$4,lazy_itable_init=0,lazy_journal_init=0" -O '^metadata_csum_seed' "$1" "$2M"
}

# configure_slot ROOTFS VERSION [KEYRING_ENTRY]: what makes ROOTFS this board's updatable
# system (docs/image.md, docs/update.md): /etc/percloud/release (VERSION=, BOARD=), the
# partitions the box links in /run/percloud and where it mounts the boot partition, the
# signing key's keyring entry (a `percloud update keygen` .pub file; the keys committed in
# rootfs-overlay/etc/percloud/update-keys are there already), and the board's [update]
# section at the end of /etc/percloud/config.toml. Needs the board's meta sourced
# (BOARD_ID, BOOTLOADER, PARTITIONS, BOOT_MOUNT).
configure_slot() {
  local rootfs=$1 version=$2 entry=${3:-} part boot_control boot_file
  printf 'VERSION=%s\nBOARD=%s\n' "$version" "$BOARD_ID" > "$rootfs/etc/percloud/release"
  for part in $PARTITIONS; do echo "${part%%:*} ${part##*:}"; done > "$rootfs/etc/percloud/partitions"
  echo "$BOOT_MOUNT" > "$rootfs/etc/percloud/boot-mount"
  mkdir -p "$rootfs$BOOT_MOUNT"
  if [ -n "$entry" ]; then
    install -D -m 0644 "$entry" "$rootfs/etc/percloud/update-keys/$(basename "${entry%.pub}" .key).pub"
  fi
  # The slots by their /run/percloud links, the file the bootloader reads on the boot
  # partition.
  case "$BOOTLOADER" in
    grub-efi) boot_control='boot = "grub"'; boot_file="grubenv = \"$BOOT_MOUNT/EFI/BOOT/grubenv\"" ;;
    rpi-firmware)
      # Each slot's own boot partition (kernel, initramfs, DTBs), written with the slot.
      boot_control=$'boot_a = "/run/percloud/boot-a"\nboot_b = "/run/percloud/boot-b"\nboot = "tryboot"'
      boot_file="autoboot = \"$BOOT_MOUNT/autoboot.txt\"" ;;
    *) echo "configure_slot: unknown BOOTLOADER $BOOTLOADER" >&2; return 2 ;;
  esac
  cat >> "$rootfs/etc/percloud/config.toml" <<EOF

[update]
# Written by the image build (configure_slot) for $BOARD_ID.
board = "$BOARD_ID"
slot_a = "/run/percloud/slot-a"
slot_b = "/run/percloud/slot-b"
$boot_control
$boot_file
keyring = "/etc/percloud/update-keys"
EOF
}

# QEMU for the image tests: 10.x from bookworm-backports (its raspi4b machine), OVMF, and
# the tools that read boot files out of an image.
ensure_qemu() {
  ensure_image_host
  ensure_apt ovmf qemu-utils mtools device-tree-compiler fdisk python3
  if ! qemu-system-aarch64 -machine help 2>/dev/null | grep -q raspi4b ||
    ! command -v qemu-system-x86_64 > /dev/null; then
    step "installing QEMU 10 from bookworm-backports"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports qemu-system-x86 qemu-system-arm > /dev/null
  fi
}
