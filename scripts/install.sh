#!/usr/bin/env bash
# Installs what ucloud needs and is missing: Debian packages (as root, via
# apt-get) and Deno from the npm registry (pinned in package.json).
# Idempotent and quiet when everything is there. Used by up.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  etcd-server etcd-client     # the embedded etcd and etcdctl
  qemu-system-x86 qemu-utils  # VMs
  qemu-block-extra            # qemu's rbd driver (librbd)
  ceph-mon ceph-mgr ceph-osd ceph-common  # the one-node Ceph of scripts/ceph_fixture.sh
  nftables iproute2           # networking (namespaces in tests)
  radvd dnsmasq-base          # router advertisements, DHCP on VM networks
  python3                     # raw Ethernet frames in network tests
  openssh-client              # ssh-keygen (SSH key tests), ssh (logins to the Debian VM)
  busybox-static cpio xz-utils kmod gzip  # the tiny test guest
  extlinux syslinux-common fdisk e2fsprogs  # its disk-booting variant
  debootstrap                 # the Debian cloud image (build_debian_image.sh)
  prometheus                  # monitoring beside `up` (scripts/up_prometheus.ts), promtool in tests
  chromium                    # headless browser of the web page tests (tests/web_*_test.ts, playwright-core)
  nodejs npm                  # to fetch Deno from the npm registry
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside Debian's packages: accept any working npm.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"

if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "ucloud: missing Debian packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "ucloud: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The unprivileged user VMs' qemu switches to (config qemu.user).
if ! getent passwd ucloud-qemu >/dev/null && [ "$(id -u)" = 0 ]; then
  useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --user-group ucloud-qemu
fi

bash scripts/install_identity.sh
bash scripts/install_sftp.sh

want=$(node -p 'require("./package.json").devDependencies.deno')
have=$(node_modules/.bin/deno --version 2>/dev/null | awk 'NR==1{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "ucloud: installing deno $want from the npm registry" >&2
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
node_modules/.bin/deno --version | head -1 >&2
