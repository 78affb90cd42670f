#!/usr/bin/env bash
# Installs what the identity module (issue 5) and its tests need: slapd and
# ldap-utils (the directory and ldapadd; the tests start their own slapd with
# its own config dir) and oathtool (independent TOTP codes in tests).
# Non-interactive and idempotent: quiet when everything is there.
set -euo pipefail

packages=(slapd ldap-utils oathtool)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [ "$(id -u)" != 0 ]; then
  echo "ucloud: missing Debian packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "ucloud: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package's own database is never used: skip creating it, so the install
# asks nothing and starts no directory of its own.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
