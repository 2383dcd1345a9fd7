#!/usr/bin/env bash
# make bench: ringmail beside a reference tool in the same run; see
# bench/bench.py. Appends the results to bench/RESULTS.md.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$root/bench/bench.py" --bin "$root/$build/ringmail" "${@:2}"
