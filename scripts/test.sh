#!/usr/bin/env bash
# Runs the whole test suite on this machine: installs what is missing, then
# `deno task test`. Prints `N passed, N failed` last.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec node_modules/.bin/deno task --quiet test "$@"
