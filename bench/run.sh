#!/usr/bin/env bash
# make bench: ringmail beside reference tools in the same run.
#   bench.py        delivery vs Postfix smtp-source, submit, Redis cost,
#                   thread scaling (appends to bench/RESULTS.md)
#   bench_render.sh render + MIME (+ DKIM) per core beside openssl speed
#   bench_imap.py   IMAP vs Dovecot, SMTP receive into Maildir
#   bench_settle.py adaptive shaping vs a fixed rate against a receiver
#                   that answers 421 above its limit (issue 6)
#   bench_tls.py    STARTTLS delivery vs plain, beside a Postfix sender
#                   with TLS, same receiver (issue 3)
#   bench_classify.sh classifier replies/s and DSNs/s per core (issue 6)
#   bench_conns.py  5,000 concurrent SMTP sessions from one worker: RSS per
#                   session, plain and STARTTLS (issue 3)
# BENCH_ONLY=delivery|render|imap|settle|tls|classify|conns runs one.
# These three print their tables; add them to bench/RESULTS.md by hand.
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
if [[ $only == all || $only == settle ]]; then
	/usr/bin/python3 "$root/bench/bench_settle.py" --bin "$root/$build/ringmail"
fi
if [[ $only == all || $only == tls ]]; then
	/usr/bin/python3 "$root/bench/bench_tls.py" --bin "$root/$build/ringmail"
fi
if [[ $only == all || $only == classify ]]; then
	"$root/bench/bench_classify.sh" "$build"
fi
if [[ $only == all || $only == conns ]]; then
	/usr/bin/python3 "$root/bench/bench_conns.py"
	/usr/bin/python3 "$root/bench/bench_conns.py" --tls
fi
