#!/usr/bin/env bash
# Installs what the SFTP upload service (scripts/sftp/) needs: OpenSSH's sshd
# and sftp client, and nslcd with libnss-ldapd (LDAP users through NSS).
# ucloud runs its own sshd and nslcd in their own mount namespace with their
# own configs; the machine's /etc/nsswitch.conf, sshd and nslcd are left as
# they are. On a machine that had no sshd the package's own sshd stays off
# (/etc/ssh/sshd_not_to_be_run), and a newly installed nslcd service is
# disabled: nothing of the machine's own logins changes.
# Non-interactive and idempotent: quiet when everything is there.
set -euo pipefail

packages=(openssh-server openssh-client nslcd libnss-ldapd)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [ "$(id -u)" != 0 ]; then
  echo "ucloud: missing Debian packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "ucloud: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
new_sshd=false new_nslcd=false
installed openssh-server || new_sshd=true
installed nslcd || new_nslcd=true
if $new_sshd; then
  # The machine had no sshd: do not give it one on port 22.
  mkdir -p /etc/ssh
  touch /etc/ssh/sshd_not_to_be_run
fi
# No NSS service gets LDAP in the machine's /etc/nsswitch.conf (the package's
# config script keeps whatever the machine already had).
echo "libnss-ldapd libnss-ldapd/nsswitch multiselect" | debconf-set-selections
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
if $new_nslcd; then
  invoke-rc.d nslcd stop >/dev/null 2>&1 || true
  update-rc.d nslcd disable >/dev/null 2>&1 || true
fi
