#!/usr/bin/env bash
# `deno task compile`: a self-contained CLI binary. deno compile downloads the
# Deno runtime (denort) for the target; where that download is not reachable
# it cannot work, and this says so. `deno task bundle` works offline.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
if ! out=$(node_modules/.bin/deno compile --allow-net --allow-env=UCLOUD_API,XDG_CONFIG_HOME,HOME --allow-read --allow-write \
  -o dist/ucloud cli/main.ts 2>&1); then
  printf '%s\n' "$out" | grep -iE "download|error" | head -3 >&2
  echo "deno compile cannot run here: it must download the Deno runtime (denort), which this machine cannot reach." >&2
  echo "Use 'deno task bundle' (dist/ucloud.js, run with deno) or bin/ucloud instead." >&2
  exit 1
fi
echo "dist/ucloud"
