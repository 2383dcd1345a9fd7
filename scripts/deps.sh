#!/usr/bin/env bash
# Installs, from Debian 12 packages, whatever ringmail's build, tests,
# example run and benchmarks need and this machine lacks. Idempotent and
# quiet when everything is present; needs root only when it must install.
set -euo pipefail

pkgs=(
	build-essential pkg-config
	liburing-dev libssl-dev libyaml-dev libhiredis-dev libcriterion-dev
	libc-ares-dev
	redis-server         # private Redis for tests, make run and bench
	postfix              # smtp-sink / smtp-source: receivers and bench reference
	python3 python3-aiosmtpd python3-dkim
	dnsmasq-base         # loopback DNS for MX tests
	openssl swaks curl
)

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ "$st" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: need root to install packages (run as root or install them yourself)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks what kind of mail system to configure; we only use its
# smtp-sink/smtp-source tools, so no configuration and no running daemon.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The postfix and redis packages may start system daemons; we never use
# them (every test starts its own on a free port), so leave them alone.
