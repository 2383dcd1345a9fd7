#!/usr/bin/env bash
# make bench: ringmail beside reference tools in the same run.
#   bench.py        delivery vs Postfix smtp-source, submit, Redis cost,
#                   thread scaling (appends to bench/RESULTS.md)
#   bench_render.sh render + MIME (+ DKIM) per core beside openssl speed
#   bench_imap.py   IMAP vs Dovecot, SMTP receive into Maildir
# BENCH_ONLY=delivery|render|imap runs one of them.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
only=${BENCH_ONLY:-all}
if [[ $only == all || $only == delivery ]]; then
	/usr/bin/python3 "$root/bench/bench.py" --bin "$root/$build/ringmail" "${@:2}"
fi
if [[ $only == all || $only == render ]]; then
	"$root/bench/bench_render.sh" "$build"
fi
if [[ $only == all || $only == imap ]]; then
	/usr/bin/python3 "$root/bench/bench_imap.py" --bin "$root/$build/ringmail"
fi
