#!/usr/bin/env bash
# Brings an all-in-one ucloud up on this machine: installs what is missing,
# builds the tiny test guest, then runs etcd, the API and a worker until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec node_modules/.bin/deno run -A scripts/up.ts "$@"
