#!/usr/bin/env bash
# A one-node Ceph cluster for tests and `up`: one mon, one mgr and one
# bluestore OSD on a sparse file, all plain processes (no systemd), with
# every file under DIR. Nothing in /etc/ceph or /var/lib/ceph is read or
# written.
#
#   scripts/ceph_fixture.sh start DIR   creates the cluster (or starts the one
#                                       already in DIR) and waits until the
#                                       pool `ucloud` takes writes
#   scripts/ceph_fixture.sh stop DIR    kills its daemons; the data stays
#
# Clients use DIR/ceph.conf (it names the admin keyring DIR/ceph.client.admin.keyring):
#   rbd -c DIR/ceph.conf -p ucloud ls
#   qemu-io -f raw 'rbd:ucloud/x:conf=DIR/ceph.conf'
#
# Environment: CEPH_FIXTURE_ADDR (default 127.0.0.1; an IPv6 address works
# too), CEPH_FIXTURE_OSD_BYTES (the OSD file's size, sparse; default 1 GiB).
# The last line printed by `start` is a JSON summary.
set -euo pipefail

POOL=ucloud
DAEMONS=(mon.a mgr.x osd.0)
MKFS=

die() {
  echo "ceph_fixture: $*" >&2
  exit 1
}

usage() { die "usage: $0 start|stop DIR"; }

now_ms() { date +%s%3N; }

free_port() {
  python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# ceph.conf: daemons keep their data, sockets, pid files and logs under DIR;
# clients get only the mon address and the admin keyring.
write_conf() {
  local dir=$1 fsid=$2 addr=$3 port=$4 ipv6=false host=$3
  [[ $addr == *:* ]] && ipv6=true host="[$addr]"
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon_host = [v2:$host:$port]
public_addr = $addr
ms_bind_ipv6 = $ipv6
ms_bind_ipv4 = $([[ $ipv6 == true ]] && echo false || echo true)
ms_bind_msgr1 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $dir/ceph.client.admin.keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
paxos_propose_interval = 0.2
mgr_stats_period = 1
mon_mgr_digest_period = 1

[mon]
mon_data = $dir/mon
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$name.log

[mgr]
mgr_data = $dir/mgr
keyring = $dir/mgr/keyring
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$name.log

[osd]
osd_data = $dir/osd
keyring = $dir/osd/keyring
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = ${CEPH_FIXTURE_OSD_BYTES:-1073741824}
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_memory_target = 939524096
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$name.log
EOF
}

# One keyring per daemon, and the admin keyring for clients; the mon imports
# all of them into its auth database at mkfs.
make_keys() {
  local dir=$1 seed=$dir/mkfs/keyring
  ceph-authtool --create-keyring "$seed" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key \
    -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' \
    --cap mds 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/mgr/keyring" --gen-key -n mgr.x \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/osd/keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  for k in ceph.client.admin.keyring mgr/keyring osd/keyring; do
    ceph-authtool "$seed" --import-keyring "$dir/$k" >/dev/null
  done
  chmod 600 "$dir/ceph.client.admin.keyring" "$dir/mgr/keyring" "$dir/osd/keyring" "$seed"
}

cephc() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

# Starts a daemon (it forks into the background); its start-up chatter goes
# to DIR/log/<name>.stderr.
daemon() {
  local dir=$1 bin=$2 id=$3
  "$bin" -c "$CONF" -i "$id" 2>>"$dir/log/$bin.$id.stderr" ||
    die "$bin -i $id did not start: see $dir/log/"
}

# Runs a setup command quietly; its output is shown only when it fails.
quiet() {
  local out
  out=$("$@" 2>&1) || die "$* failed: $out"
}

# Retries "$@" until it succeeds or $1 seconds pass.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || die "timed out waiting for: $*"
    sleep 0.2
  done
}

osd_up() { cephc osd dump -f json | grep -q '"up":1,'; }
mgr_up() { cephc mgr stat -f json | grep -q '"available": *true'; }
pgs_active() {
  local stat
  stat=$(cephc pg stat) || return 1
  [[ $stat =~ ^([0-9]+)\ pgs:\ ([0-9]+)\ active\+clean ]] &&
    [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[1]}" != 0 ]
}

create() {
  local dir=$1 addr=${CEPH_FIXTURE_ADDR:-127.0.0.1} fsid port
  fsid=$(cat /proc/sys/kernel/random/uuid)
  port=$(free_port "$addr")
  mkdir -p "$dir"/{mkfs,mon,mgr,osd,run,log}
  write_conf "$dir" "$fsid" "$addr" "$port"
  make_keys "$dir"
  local host=$addr
  [[ $addr == *:* ]] && host="[$addr]"
  monmaptool --create --fsid "$fsid" --addv a "[v2:$host:$port]" "$dir/mkfs/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$dir/mkfs/monmap" --keyring "$dir/mkfs/keyring"
  rm -r "$dir/mkfs"
  daemon "$dir" ceph-mon a
  daemon "$dir" ceph-mgr x
  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>"$dir/log/osd.0-mkfs.log" &
  MKFS=$!
  [ "$(cephc osd new "$osd_uuid" 0)" = 0 ] || die "osd new did not return id 0"
  quiet cephc osd pool create "$POOL" 8 8 replicated
  quiet cephc osd pool application enable "$POOL" rbd
  wait "$MKFS" || die "osd mkfs failed: see $dir/log/osd.0-mkfs.log"
  daemon "$dir" ceph-osd 0
}

# A start that fails leaves no daemon (nor a mkfs) behind.
cleanup_failed_start() {
  local rc=$?
  ((rc)) || return 0
  [ -z "$MKFS" ] || kill "$MKFS" 2>/dev/null || true
  stop "$1"
}

start() {
  local dir=$1 t0
  t0=$(now_ms)
  ! running "$dir" || die "a cluster is already running in $dir"
  trap "cleanup_failed_start '$dir'" EXIT
  if [ -f "$CONF" ]; then
    daemon "$dir" ceph-mon a
    daemon "$dir" ceph-mgr x
    daemon "$dir" ceph-osd 0
  else
    create "$dir"
  fi
  wait_for 60 osd_up
  wait_for 60 mgr_up
  wait_for 60 pgs_active
  local ms=$(($(now_ms) - t0)) bytes
  bytes=$(($(du -sk "$dir" | cut -f1) * 1024))
  printf '{"conf":"%s","pool":"%s","startMs":%d,"diskBytes":%d}\n' "$CONF" "$POOL" "$ms" "$bytes"
}

# The pid of a running daemon of this cluster (its command line names our
# ceph.conf, so a reused pid is never taken for it).
pid_of() {
  local f=$1/run/$2.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $CONF " || return 1
  echo "$pid"
}

# Whether any of the named daemons (default: all) runs.
running() {
  local dir=$1 d
  shift
  (($#)) || set -- "${DAEMONS[@]}"
  for d in "$@"; do pid_of "$dir" "$d" >/dev/null && return 0; done
  return 1
}

# SIGTERM the named daemons, SIGKILL what is left of them after 10 s, and
# return once all are gone.
terminate() {
  local dir=$1 d pid pids=()
  shift
  for d in "$@"; do
    pid=$(pid_of "$dir" "$d") && pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$(($(date +%s) + 10)) killed=false
  while running "$dir" "$@"; do
    if ! $killed && (($(date +%s) >= deadline)); then
      kill -KILL "${pids[@]}" 2>/dev/null || true
      killed=true
    fi
    sleep 0.05
  done
}

# The OSD first, while the mon can still take its goodbye.
stop() {
  terminate "$1" osd.0
  terminate "$1" mgr.x mon.a
  rm -f "$1"/run/*.pid
}

[ $# = 2 ] || usage
[[ $2 == /* ]] || die "DIR must be an absolute path"
CONF=$2/ceph.conf
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
