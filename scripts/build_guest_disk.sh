#!/usr/bin/env bash
# Builds the disk-booting variant of the tiny test guest (build_guest.sh):
#   disk.qcow2   a 64 MiB disk: an MBR (syslinux's mbr.bin) and one active
#                ext4 partition with extlinux, /boot/vmlinuz (the tiny guest's
#                kernel) and /boot/initrd.gz, a first stage that loads the
#                virtio and ext4 modules, mounts /dev/vda1 read-write and
#                switches to it. The root is the tiny guest's busybox root with
#                its /init: every ethN up, acpid, UCLOUD-GUEST-READY on the
#                serial console, a root shell on ttyS0 (it syncs before the
#                reboot and the power-off it does on ctrl-alt-del and the ACPI
#                power button).
# into ${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/tiny-disk/ and prints
# that directory. Cached: does nothing when disk.qcow2 exists and the stamp
# file "version" holds the hash of this script and of the tiny guest's stamp.
#
# extlinux installs only into a mounted filesystem: the partition is
# loop-mounted inside a private mount namespace (unshare), so the mount, and
# with it the loop device (mount -o loop sets autoclear), go away on every
# exit path, a kill included. The ext4 filesystem is filled by mke2fs -d.
#
# Usage: scripts/build_guest_disk.sh       (UCLOUD_STATE=/some/dir to relocate)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/tiny-disk"
disk_mib=64
part_start=2048 # sectors: the partition starts at 1 MiB
# Fixed identities: every build has the same filesystem UUID and disk id.
uuid="75636c6f-7564-4775-9573-742d6469736b"
label_id="0x75636c64"
mbr=/usr/lib/syslinux/mbr/mbr.bin

log() { echo "build_guest_disk: $*" >&2; }
die() {
  log "$*"
  exit 1
}

tiny="$(bash "$here/build_guest.sh" | tail -n 1)"
[[ -s "$tiny/vmlinuz" && -s "$tiny/root-modules.cpio.gz" ]] ||
  die "Cannot use the tiny guest in $tiny: no vmlinuz or root-modules.cpio.gz"
# Held while this script reads the tiny guest: build_guest.sh rebuilds under
# an exclusive lock of the same file.
exec 8>>"$tiny/.lock"
flock -s 8
# Of the contents only: a copy of the script elsewhere finds the same cache
# (a rebuilt base would break the overlays made on the old one).
version="$(cat "${BASH_SOURCE[0]}" "$tiny/version" | sha256sum | cut -d' ' -f1)"

cached() {
  [[ -s "$out/disk.qcow2" && "$(cat "$out/version" 2>/dev/null)" == "$version" ]]
}
if cached; then
  echo "$out"
  exit 0
fi
# One build at a time per output dir; a waiter finds the cache filled.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if cached; then
  echo "$out"
  exit 0
fi

# Installs the Debian packages whose command (or file) is missing.
missing=()
for pair in extlinux:extlinux sfdisk:fdisk mke2fs:e2fsprogs qemu-img:qemu-utils \
  unshare:util-linux cpio:cpio; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[[ -f "$mbr" ]] || missing+=(syslinux-common)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "Cannot install ${missing[*]}: not root (install them and rerun)"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ $(id -u) == 0 ]] || die "Cannot build the disk guest: loop-mounting needs root"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- the root filesystem ----------------------------------------------------
root="$work/root"
mkdir -p "$root"
gzip -dc "$tiny/initrd.cpio.gz" | (cd "$root" && cpio -idm --quiet --no-absolute-filenames)
[[ -x "$root/init" && -x "$root/bin/busybox" ]] || die "Cannot unpack $tiny/initrd.cpio.gz"
# The first stage loads every module; the root's /init has none left to load.
: >"$root/lib/modules/load"
rm -f "$root"/lib/modules/*.ko
# /boot is copied in through the mount: mke2fs -d makes holes of zero
# blocks, and extlinux cannot load a file with holes.
boot="$work/boot"
mkdir -p "$root/boot" "$boot/extlinux"
cp "$tiny/vmlinuz" "$boot/vmlinuz"

# The first stage: the tiny guest's initramfs, the ext4 modules and this
# /init on top (the kernel unpacks concatenated archives in order).
stage1="$work/stage1"
mkdir -p "$stage1"
cat >"$stage1/init" <<'EOF'
#!/bin/sh
# Disk guest, first stage: mount the ext4 root read-write and run its /init.
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
dmesg -n 1
for m in $(cat /lib/modules/load /lib/modules/load-root); do insmod /lib/modules/$m; done
# The disk is the VM's only virtio-blk device: vda, its partition vda1.
root=/dev/vda1
i=0
until [ -b $root ] && mount -t ext4 -o rw $root /newroot; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then
    echo "UCLOUD-GUEST-NO-ROOT: cannot mount $root"
    exec sleep 2147483647
  fi
  sleep 0.1
done
# The root's /init mounts its own; this console stays open on the old /dev.
umount /proc /sys
umount -l /dev
exec switch_root /newroot /init
EOF
chmod 755 "$stage1/init"
mkdir -p "$stage1/newroot" "$root/newroot"
(cd "$stage1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9n >"$work/stage1.cpio.gz"
cat "$tiny/initrd.cpio.gz" "$tiny/root-modules.cpio.gz" "$work/stage1.cpio.gz" >"$boot/initrd.gz"

cat >"$boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT ucloud
PROMPT 0
TIMEOUT 0
LABEL ucloud
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND $(cat "$tiny/cmdline") root=/dev/vda1 rw
EOF

# --- the disk ---------------------------------------------------------------
raw="$work/disk.raw"
truncate -s "${disk_mib}M" "$raw"
printf 'label: dos\nlabel-id: %s\nstart=%d, type=83, bootable\n' "$label_id" "$part_start" |
  sfdisk -q "$raw" >&2
part_bytes=$(((disk_mib * 1024 * 1024) - part_start * 512))
# extlinux 6.04 reads neither 64-bit ext4 nor metadata checksums.
mke2fs -q -F -t ext4 -O ^64bit,^metadata_csum \
  -L ucloud-root -U "$uuid" -E "hash_seed=$uuid,offset=$((part_start * 512))" \
  -d "$root" "$raw" "$((part_bytes / 1024))k" >&2 ||
  die "Cannot make the ext4 filesystem"
dd if="$mbr" of="$raw" bs=440 count=1 conv=notrunc status=none

# Runs in its own mount namespace: its mount dies with it.
install_bootloader() {
  set -euo pipefail
  mnt="$3" # global: the EXIT trap needs it
  local raw="$1" offset="$2" boot="$4" out
  mkdir -p "$mnt"
  mount -t ext4 -o "loop,offset=$offset" "$raw" "$mnt"
  trap 'umount "$mnt"' EXIT
  cp -a --sparse=never "$boot/." "$mnt/boot/"
  out="$(extlinux --install "$mnt/boot/extlinux" 2>&1)" || {
    echo "$out" >&2
    return 1
  }
}
unshare --mount --propagation private bash -c \
  "$(declare -f install_bootloader); install_bootloader \"\$@\"" _ \
  "$raw" "$((part_start * 512))" "$work/mnt" "$boot" ||
  die "Cannot install extlinux"
# The loop device is released once the mount is gone (autoclear).
for _ in $(seq 50); do
  [[ -z "$(losetup -j "$raw")" ]] && break
  sleep 0.1
done
[[ -z "$(losetup -j "$raw")" ]] || die "Cannot release the loop device of $raw"

qemu-img convert -f raw -O qcow2 "$raw" "$work/disk.qcow2"

# --- publish ----------------------------------------------------------------
mv "$work/disk.qcow2" "$out/disk.qcow2.tmp"
mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
echo "$version" >"$out/version"
log "built $out/disk.qcow2 from $tiny"
echo "$out"
