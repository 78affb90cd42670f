#!/usr/bin/env bash
# PID 1 of the SFTP upload service's own mount and pid namespaces, started by
# scripts/sftp/service.ts as
#   unshare --mount --propagation private --pid --fork --kill-child namespace.sh DIR
# In this mount namespace only (the machine's files stay as they are):
# nsswitch.conf with ldap for passwd and group, nslcd.conf for the configured
# directory, and /run/nslcd (nslcd's socket, the path libnss-ldapd asks) as
# DIR/nslcd. Starts nslcd and sshd and exits when either exits; the kernel
# then ends every other process of the pid namespace.
set -euo pipefail
dir=$1

mkdir -p /run/nslcd /run/sshd
mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$dir/nslcd.conf" /etc/nslcd.conf
mount --bind "$dir/nslcd" /run/nslcd

/usr/sbin/nslcd -n 2>>"$dir/nslcd.log" &
for _ in $(seq 200); do
  [ -S /run/nslcd/socket ] && break
  sleep 0.05
done
/usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>>"$dir/sshd.log" &
wait -n
