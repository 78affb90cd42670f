#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) cloud image the way a hoster would, from
# Debian's packages only (the mirror this machine's apt uses):
#   disk.qcow2      a compressed qcow2 of 3 GiB virtual size: an MBR
#                   (syslinux's mbr.bin) and one active ext4 partition with
#                   extlinux booting Debian's kernel and initramfs with
#                   console=ttyS0 (boot progress and a login prompt on the
#                   serial console). debootstrap's minbase, updated from
#                   bookworm-updates and bookworm-security, plus
#                   linux-image-amd64, systemd, openssh-server, cloud-init
#                   (datasources NoCloud, Ec2, OpenStack, None), ifupdown and
#                   isc-dhcp-client (the eni renderer, cloud-init's Debian
#                   default; DHCPv4 gives up after 10 s, not 60),
#                   cloud-guest-utils (growpart) and sudo. Root has
#                   no password (locked), the image has no SSH host keys
#                   (cloud-init makes them at first boot, else ssh.service
#                   does), an empty machine-id, no apt caches or lists.
#   packages.txt    the installed packages and versions
#   kernel-release  the kernel's release, e.g. 6.1.0-37-amd64
# into ${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/debian-12/ and
# prints that directory. Cached: does nothing when disk.qcow2 exists and the
# stamp file "version" holds the hash of this script.
#
# Mounts happen only in private namespaces (unshare --mount --pid): the
# chroot's /proc, /sys and /dev, and the loop mount of the partition that
# extlinux needs, go away with the namespace on every exit path, a kill
# included (--kill-child). The ext4 filesystem is filled by mke2fs -d.
#
# Usage: scripts/build_debian_image.sh   (UCLOUD_STATE=/some/dir to relocate;
#        UCLOUD_DEBIAN_MIRROR=http://... to use another Debian mirror)
set -euo pipefail

out="${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/debian-12"
suite=bookworm
disk_gib=3
part_start=2048 # sectors: the partition starts at 1 MiB
# Fixed identities: every build has the same filesystem UUID and disk id.
uuid="75636c6f-7564-4465-9269-616e31322121"
label_id="0x75636462"
mbr=/usr/lib/syslinux/mbr/mbr.bin
cmdline="console=tty0 console=ttyS0,115200 consoleblank=0"
packages=(
  linux-image-amd64 systemd-sysv udev dbus libpam-systemd
  openssh-server cloud-init cloud-guest-utils sudo
  ifupdown isc-dhcp-client iproute2 netbase ca-certificates locales
)

log() { echo "build_debian_image: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# Of the contents only: a copy of the script elsewhere finds the same cache.
version="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
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

[[ $(id -u) == 0 ]] || die "Cannot build the Debian image: chroot and loop-mounting need root"
missing=()
for pair in debootstrap:debootstrap extlinux:extlinux sfdisk:fdisk mke2fs:e2fsprogs \
  qemu-img:qemu-utils unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[[ -f "$mbr" ]] || missing+=(syslinux-common)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The URI of the first enabled Debian source for suite $1 in this machine's
# apt configuration (one-line .list and deb822 .sources files).
apt_uri() {
  local s="$1"
  {
    sed -e 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v s="$s" '$1 == "deb" && $3 == s { print $2 }'
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v RS= -v s="$s" '
      /(^|\n)Types:[^\n]*deb([ \t]|\n|$)/ && !/(^|\n)Enabled: *no/ {
        n = split($0, lines, "\n"); uri = ""; ok = 0
        for (i = 1; i <= n; i++) {
          if (lines[i] ~ /^URIs:/) { split(lines[i], w, /[ \t]+/); uri = w[2] }
          if (lines[i] ~ /^Suites:/) {
            m = split(lines[i], w, /[ \t]+/)
            for (j = 2; j <= m; j++) if (w[j] == s) ok = 1
          }
        }
        if (ok && uri != "") print uri
      }'
  } | head -n 1
}
mirror="${UCLOUD_DEBIAN_MIRROR:-$(apt_uri "$suite")}"
security="$(apt_uri "$suite-security")"
[[ -n "$mirror" ]] || die "Cannot find a Debian mirror for $suite in /etc/apt/sources.list*"
security="${security:-${mirror%/debian}/debian-security}"
log "mirror $mirror, security $security"

work=""
ns_pid=""
cleanup() {
  if [[ -n "$ns_pid" ]]; then
    # unshare ignores SIGTERM; killed, it kills its namespace's init
    # (--kill-child) and with it every process and mount in there.
    kill -KILL "$ns_pid" 2>/dev/null || true
    wait "$ns_pid" 2>/dev/null || true
  fi
  [[ -z "$work" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
work="$(mktemp -d)"

# Runs function $1 with the arguments after it in private mount and PID
# namespaces; a signal to this script kills all of it (and its mounts).
in_namespace() {
  unshare --mount --propagation private --pid --fork --kill-child \
    bash -c "set -euo pipefail; $(declare -f "$1"); $1 \"\$@\"" _ "${@:2}" &
  ns_pid=$!
  local rc=0
  wait "$ns_pid" || rc=$?
  ns_pid=""
  return "$rc"
}

# --- the root filesystem ----------------------------------------------------
# In the namespace: debootstrap, then apt in the chroot with /proc, /sys and
# /dev mounted.
build_root() {
  local root="$1" suite="$2" mirror="$3" security="$4"
  shift 4
  debootstrap --variant=minbase --components=main "$suite" "$root" "$mirror" >&2
  cat >"$root/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# No service starts in the image build's chroot.
exit 101
EOF
  chmod 755 "$root/usr/sbin/policy-rc.d"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  local env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
  # The build host's mirror may be a snapshot whose Release files expired.
  local apt=(apt-get -q -y -o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0)
  "${env[@]}" chroot "$root" "${apt[@]}" update >&2
  "${env[@]}" chroot "$root" "${apt[@]}" dist-upgrade >&2
  "${env[@]}" chroot "$root" "${apt[@]}" install --no-install-recommends "$@" >&2
  "${env[@]}" chroot "$root" "${apt[@]}" clean >&2
  "${env[@]}" chroot "$root" usermod -p '*' root
  "${env[@]}" chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' >"$root.packages"
}
root="$work/root"
mkdir -p "$root"
log "debootstrap $suite and ${#packages[@]} packages (minutes)"
in_namespace build_root "$root" "$suite" "$mirror" "$security" "${packages[@]}" ||
  die "Cannot build the Debian root filesystem"

# --- configuration ----------------------------------------------------------
rm -f "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/fstab" <<EOF
UUID=$uuid / ext4 rw,discard,errors=remount-ro 0 1
EOF
echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
EOF
cat >"$root/etc/network/interfaces" <<'EOF'
# cloud-init writes the network configuration (lo included) to interfaces.d/.
source /etc/network/interfaces.d/*
EOF
cat >"$root/etc/cloud/cloud.cfg.d/90_ucloud.cfg" <<'EOF'
# ucloud hosts serve NoCloud (SMBIOS serial ds=nocloud-net;s=...), the EC2
# and the OpenStack metadata trees: cloud-init probes only these.
datasource_list: [NoCloud, Ec2, OpenStack, None]
# Needs no locale-gen at first boot.
locale: C.UTF-8
# The hostname resolves (sudo asks), with no DNS on the network.
manage_etc_hosts: true
EOF
# Without network configuration from a datasource at init-local (NoCloud's
# network seed is read later, once the network is up) cloud-init's fallback
# is DHCPv4 on the first NIC; the kernel configures IPv6 from the router
# advertisement (SLAAC, EUI-64) by itself. On an IPv6-only network ifup would
# wait dhclient's default 60 s for an offer before cloud-init's network stage
# starts; 10 s is plenty for a DHCP server on the link, and dhclient keeps
# asking in the background afterwards.
sed -i 's/^#timeout 60;$/timeout 10;/' "$root/etc/dhcp/dhclient.conf"
grep -q '^timeout 10;$' "$root/etc/dhcp/dhclient.conf" ||
  die "Cannot set the DHCPv4 timeout in /etc/dhcp/dhclient.conf"
# Host keys: cloud-init's ssh module makes them before ssh.service starts;
# without a datasource ssh.service makes the missing ones itself.
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/ucloud-host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
mkdir -p "$root/var/lib/apt/lists/partial"
kernel="$(cd "$root/boot" && ls vmlinuz-*)"
kver="${kernel#vmlinuz-}"
[[ -s "$root/boot/initrd.img-$kver" ]] || die "Cannot find the initramfs of $kver"

# /boot is copied in through the mount: mke2fs -d makes holes of zero
# blocks, and extlinux cannot load a file with holes.
boot="$work/boot"
mkdir -p "$boot"
mv "$root"/boot/* "$boot/"
mkdir -p "$boot/extlinux"
cat >"$boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=UUID=$uuid ro $cmdline
EOF

# --- the disk ---------------------------------------------------------------
raw="$work/disk.raw"
truncate -s "${disk_gib}G" "$raw"
printf 'label: dos\nlabel-id: %s\nstart=%d, type=83, bootable\n' "$label_id" "$part_start" |
  sfdisk -q "$raw" >&2
part_bytes=$(((disk_gib * 1024 * 1024 * 1024) - part_start * 512))
# extlinux 6.04 reads neither 64-bit ext4 nor metadata checksums.
mke2fs -q -F -t ext4 -O ^64bit,^metadata_csum \
  -L debian-root -U "$uuid" -E "hash_seed=$uuid,offset=$((part_start * 512))" \
  -d "$root" "$raw" "$((part_bytes / 1024))k" >&2 ||
  die "Cannot make the ext4 filesystem"
dd if="$mbr" of="$raw" bs=440 count=1 conv=notrunc status=none
rm -rf "$root"

# In the namespace: the partition mounted, /boot copied in, extlinux installed.
install_bootloader() {
  local raw="$1" offset="$2" mnt="$3" boot="$4" out
  mkdir -p "$mnt"
  mount -t ext4 -o "loop,offset=$offset" "$raw" "$mnt"
  cp -a --sparse=never "$boot/." "$mnt/boot/"
  out="$(extlinux --install "$mnt/boot/extlinux" 2>&1)" || {
    echo "$out" >&2
    return 1
  }
  umount "$mnt"
}
in_namespace install_bootloader "$raw" "$((part_start * 512))" "$work/mnt" "$boot" ||
  die "Cannot install extlinux"
# The loop device is released once the mount is gone (autoclear).
for _ in $(seq 50); do
  [[ -z "$(losetup -j "$raw")" ]] && break
  sleep 0.1
done
[[ -z "$(losetup -j "$raw")" ]] || die "Cannot release the loop device of $raw"

log "compressing the qcow2"
qemu-img convert -c -f raw -O qcow2 "$raw" "$work/disk.qcow2"

# --- publish ----------------------------------------------------------------
mv "$root.packages" "$out/packages.txt"
echo "$kver" >"$out/kernel-release"
mv "$work/disk.qcow2" "$out/disk.qcow2.tmp"
mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
echo "$version" >"$out/version"
log "built $out/disk.qcow2 ($kver, $(du -m "$out/disk.qcow2" | cut -f1) MiB)"
echo "$out"
