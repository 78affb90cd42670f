#!/usr/bin/env bash
# Builds the tiny test guest that ucloud's qemu tests boot under TCG:
#   vmlinux          Debian's kernel, uncompressed ELF (qemu boots it via PVH)
#   initrd.cpio.gz   busybox-static initramfs; /init brings every ethN up
#                    (hot-plugged ones within a second), starts busybox
#                    acpid so the ACPI power button logs UCLOUD-GUEST-SHUTDOWN
#                    on the console and powers off, reboots on ctrl-alt-del
#                    (logging UCLOUD-GUEST-REBOOT), prints UCLOUD-GUEST-READY
#                    (on the serial console, and on the VGA screen once the
#                    bochs display driver is up: a VNC screenshot shows it),
#                    then runs a root shell on the serial console (respawned
#                    when it exits) for tests to type into; udhcpc has an
#                    event script (address, option 121 routes). Booted with
#                    ucloud.ignore_acpi=1 on the kernel command line, it
#                    ignores both the power button and ctrl-alt-del.
#   cmdline          the kernel command line to pass with -append
#   vmlinuz          the same kernel as Debian ships it (bzImage), and
#   root-modules.cpio.gz  the ext4 modules (listed in /lib/modules/load-root),
#                    for the disk guest (scripts/build_guest_disk.sh)
# into ${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/tiny/ and prints that
# directory. Cached: does nothing when these files exist and the stamp
# file "version" holds the hash of this script (a changed script rebuilds).
#
# Usage: scripts/build_guest.sh            (UCLOUD_STATE=/some/dir to relocate)
set -euo pipefail

out="${UCLOUD_STATE:-$HOME/.local/share/ucloud}/images/tiny"
marker="UCLOUD-GUEST-READY"
# ttyS0 last: it is /dev/console (what tests read); tty0 is the VGA screen.
cmdline="console=tty0 console=ttyS0 quiet panic=-1"
# Loaded in this order by /init, each after its dependencies (from modules.dep).
# button and evdev: the ACPI power button as an input device acpid reads.
wanted_modules=(virtio_pci virtio_blk virtio_net button evdev)
# The VGA screen's driver (qemu's std VGA), loaded in the background after
# the marker: direct kernel boot (PVH) leaves the kernel no text-mode
# console, so tty0 needs fbcon on a DRM device. Listed in /lib/modules/load-display.
display_modules=(bochs)
# Not in the initramfs: root-modules.cpio.gz holds them, listed in
# /lib/modules/load-root, for a first stage that mounts an ext4 root
# (scripts/build_guest_disk.sh).
root_modules=(ext4 crc32c_generic) # ext4 mounts only with a crc32c

version="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"

cached() {
  [[ -s "$out/vmlinux" && -s "$out/vmlinuz" && -s "$out/initrd.cpio.gz" &&
    -s "$out/root-modules.cpio.gz" && -s "$out/cmdline" &&
    "$(cat "$out/version" 2>/dev/null)" == "$version" ]]
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

log() { echo "build_guest: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# Installs Debian packages whose command is missing.
ensure_packages() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd="${pair%%:*}" pkg="${pair#*:}"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    missing+=(busybox-static)
  fi
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "Cannot install ${missing[*]}: not root (install them and rerun)"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

ensure_packages qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils \
  cpio:cpio xz:xz-utils gzip:gzip depmod:kmod dpkg-deb:dpkg

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- kernel -----------------------------------------------------------------
# The package that linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
# Fetches the kernel .deb into $work without installing it.
download_kernel() {
  kpkg="$(kernel_package)"
  [[ -n "$kpkg" ]] && (cd "$work" && apt-get download -qq "$kpkg" >&2)
}
chown _apt "$work" 2>/dev/null || true # apt downloads as the _apt user
if ! download_kernel; then
  [[ $(id -u) == 0 ]] || die "Cannot download the Debian kernel (run apt-get update as root)"
  log "apt-get update"
  apt-get update -qq
  download_kernel || die "Cannot download the Debian kernel package ${kpkg:-linux-image-amd64}"
fi
log "downloaded $kpkg"
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/pkg"
vmlinuz="$(ls "$work"/pkg/boot/vmlinuz-*)"
kver="${vmlinuz##*/vmlinuz-}"
depmod -b "$work/pkg" "$kver" || die "Cannot run depmod for $kver"
moddir="$work/pkg/lib/modules/$kver"
# NIC hot-plug into qemu's PCIe root ports needs native PCIe hot-plug
# (pciehp) or ACPI hot-plug (acpiphp); both are built-in options, not modules.
for opt in CONFIG_PCIEPORTBUS CONFIG_HOTPLUG_PCI_PCIE CONFIG_HOTPLUG_PCI_ACPI; do
  grep -q "^$opt=y" "$work/pkg/boot/config-$kver" ||
    die "Cannot use $kpkg: $opt is not built in (NIC hot-plug needs it)"
done

# Like the kernel's scripts/extract-vmlinux: find a compressed stream whose
# output is an ELF file.
extract_vmlinux() {
  local img="$1" dst="$2" magic tool off
  for pair in '\x1f\x8b\x08:gunzip' '\xfd7zXZ\x00:unxz' '\x28\xb5\x2f\xfd:unzstd' \
    '\x5d\x00\x00\x00:unlzma' 'BZh:bunzip2'; do
    magic="${pair%%:*}" tool="${pair#*:}"
    command -v "$tool" >/dev/null 2>&1 || continue
    for off in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1); do
      tail -c +"$((off + 1))" "$img" | "$tool" -c >"$dst" 2>/dev/null || true
      if [[ "$(head -c 4 "$dst" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
        return 0
      fi
    done
  done
  return 1
}
extract_vmlinux "$vmlinuz" "$work/vmlinux" || die "Cannot extract vmlinux from $vmlinuz"

# --- initramfs --------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,lib/modules}
cp "$(command -v busybox)" "$root/bin/busybox"
file -L "$root/bin/busybox" 2>/dev/null | grep -q 'dynamically linked' &&
  die "busybox is not the static build (install busybox-static)"
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done

# Appends module $1 (a modules.dep path) after its dependencies to $load_order.
load_order=()
add_module() {
  local path="$1" line dep seen
  for seen in "${load_order[@]}"; do [[ "$seen" == "$path" ]] && return 0; done
  line="$(grep -m1 "^$path:" "$moddir/modules.dep")" || die "Cannot find $path in modules.dep"
  for dep in ${line#*:}; do add_module "$dep"; done
  load_order+=("$path")
}
for mod in "${wanted_modules[@]}" - "${display_modules[@]}" + "${root_modules[@]}"; do
  if [[ "$mod" == - ]]; then
    boot_count=${#load_order[@]}
    continue
  fi
  if [[ "$mod" == + ]]; then
    display_count=${#load_order[@]}
    continue
  fi
  if grep -q "/$mod.ko\$" "$moddir/modules.builtin"; then continue; fi
  path="$(grep -m1 -oE "^[^:]*/$mod\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | tr -d :)" ||
    die "Cannot find module $mod in $kpkg"
  add_module "$path"
done
# The root modules go to their own archive, root-modules.cpio.gz.
rootmods="$work/rootmods"
mkdir -p "$rootmods/lib/modules"
for i in "${!load_order[@]}"; do
  path="${load_order[$i]}" dir="$root/lib/modules" list=load
  ((i < boot_count)) || list=load-display
  ((i < display_count)) || dir="$rootmods/lib/modules" list=load-root
  case "$path" in
  *.ko) cp "$moddir/$path" "$dir/" ;;
  *.ko.xz) xz -dc "$moddir/$path" >"$dir/$(basename "$path" .xz)" ;;
  *.ko.zst) zstd -qdc "$moddir/$path" >"$dir/$(basename "$path" .zst)" ;;
  *) die "Cannot unpack module $path" ;;
  esac
  basename "${path%.ko*}.ko" >>"$dir/$list"
done
touch "$root/lib/modules/load" "$root/lib/modules/load-display" \
  "$rootmods/lib/modules/load-root"

cat >"$root/init" <<EOF
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Kernel messages would mix into what tests read from the console.
dmesg -n 1
for m in \$(cat /lib/modules/load); do insmod /lib/modules/\$m; done
# The power button first: a stop may come while the rest still boots.
if grep -q 'ucloud.ignore_acpi=1' /proc/cmdline; then
  echo UCLOUD-GUEST-IGNORES-POWER
  cad=/etc/ctrlaltdel.ignore # only logs that ctrl-alt-del was ignored
else
  # acpid opens /dev/input/event0.. up to the first missing node: wait for all.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    n=\$(ls -d /sys/class/input/event* 2>/dev/null | wc -l)
    [ "\$n" -gt 0 ] && [ "\$(ls /dev/input/event* 2>/dev/null | wc -l)" = "\$n" ] && break
    sleep 0.2
  done
  acpid -f -l /tmp/acpid.log -p /tmp/acpid.pid &
  cad=/etc/ctrlaltdel
fi
ip link set lo up
# Brings up every ethN that is down; the kernel's SLAAC defaults stay on.
links_up() {
  for f in /sys/class/net/eth*/flags; do
    [ -e "\$f" ] || continue
    n="\${f%/flags}"
    [ \$((\$(cat "\$f") & 1)) = 1 ] || ip link set "\${n##*/}" up
  done
}
links_up
(while true; do sleep 1; links_up; done) &
sed "s|@CAD@|\$cad|" /etc/inittab.in >/etc/inittab
# The marker on the VGA screen too, once its driver is up (fbcon on tty0).
(
  for m in \$(cat /lib/modules/load-display); do insmod /lib/modules/\$m; done
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/fb0 ] && break; sleep 0.2; done
  printf '\\033[2J\\033[H%s\\n' $marker >/dev/tty0
) </dev/null >/dev/null 2>&1 &
export PS1='# '
# busybox init: respawns the console shell, and on ctrl-alt-del (it turns
# the kernel's instant reset off, so the key sends it SIGINT) runs \$cad.
exec /bin/init
EOF
# The marker comes from init's first action: by then init has turned the
# kernel's instant reset on ctrl-alt-del off, so a test that presses it
# once it sees the marker always reaches the ctrlaltdel action (printed
# before exec /bin/init, a slow boot could take the key as a hard reset).
cat >"$root/etc/inittab.in" <<EOF
::sysinit:/bin/echo $marker
::respawn:/bin/cttyhack /bin/sh
::ctrlaltdel:@CAD@
EOF
cat >"$root/etc/ctrlaltdel" <<'EOF'
#!/bin/sh
echo UCLOUD-GUEST-REBOOT >/dev/console
sync
reboot -f
EOF
cat >"$root/etc/ctrlaltdel.ignore" <<'EOF'
#!/bin/sh
echo UCLOUD-GUEST-IGNORES-CTRL-ALT-DEL >/dev/console
EOF
chmod 755 "$root/etc/ctrlaltdel" "$root/etc/ctrlaltdel.ignore"
mkdir -p "$root/etc/acpi/PWRF"
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo UCLOUD-GUEST-SHUTDOWN >/dev/console
sync
poweroff -f
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"
# udhcpc's event script at its default path (Debian's busybox), for tests
# that type `udhcpc -i eth0 -O staticroutes`: the lease's address, and its
# classless static routes (option 121, e.g. 169.254.169.254/32 on-link) or
# else its router as the default route.
mkdir -p "$root/etc/udhcpc"
cat >"$root/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound | renew)
  ip addr replace "$ip/$mask" dev "$interface"
  if [ -n "$staticroutes" ]; then
    set -- $staticroutes
    while [ $# -ge 2 ]; do
      if [ "$2" = 0.0.0.0 ]; then
        ip route replace "$1" dev "$interface"
      else
        ip route replace "$1" via "$2" dev "$interface"
      fi
      shift 2
    done
  elif [ -n "$router" ]; then
    set -- $router
    ip route replace default via "$1" dev "$interface"
  fi
  ;;
esac
EOF
chmod 755 "$root/etc/udhcpc/default.script"
chmod 755 "$root/init"
for tree in root rootmods; do
  (cd "$work/$tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -9 >"$work/$tree.cpio.gz"
done
mv "$work/root.cpio.gz" "$work/initrd.cpio.gz"
mv "$work/rootmods.cpio.gz" "$work/root-modules.cpio.gz"

# --- publish ----------------------------------------------------------------
cp "$vmlinuz" "$work/vmlinuz"
for f in vmlinux vmlinuz initrd.cpio.gz root-modules.cpio.gz; do
  mv "$work/$f" "$out/$f.tmp"
  mv "$out/$f.tmp" "$out/$f"
done
echo "$kver" >"$out/kernel-release"
echo "$cmdline" >"$out/cmdline.tmp"
mv "$out/cmdline.tmp" "$out/cmdline"
echo "$version" >"$out/version"
log "built $kpkg ($kver) with modules: ${load_order[*]##*/}"
echo "$out"
