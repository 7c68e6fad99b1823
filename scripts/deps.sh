#!/usr/bin/env bash
# deps.sh — installs the Debian 12 packages poll needs to build, run, test and benchmark.
# As root it runs apt-get; otherwise it prints the exact command and stops.
set -euo pipefail

packages=(
	make gcc clang libc6-dev pkg-config procps curl openssl iproute2
	postgresql-15 postgresql-server-dev-15 postgresql-client-15 libpq-dev
	libwebsockets-dev libwebsockets-evlib-ev libev-dev libjansson-dev libjwt-dev libssl-dev libcurl4-openssl-dev
	libipc-run-perl
	chromium
	gnuplot-nox
	haproxy
	wrk
	# make deb, and test/integration/debian_packages.sh (lintian, systemd-analyze, the META.json schema)
	debhelper postgresql-server-dev-all dpkg-dev lintian systemd adduser python3-jsonschema
	# promtool checks deploy/prometheus/poll-fanout.rules.yml (test prometheus_rules); see below
	prometheus
)
# Node.js runs the browser test's driver; keep a node that is already there.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "poll needs these Debian packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# postgresql-15 and its -dev package in one call, so their versions match;
# other work on the machine may hold the dpkg lock for a while: wait for it
# prometheus is here for promtool only: its maintainer scripts would start a
# Prometheus server (and enable it on machines with systemd).  A policy-rc.d
# that answers 101 ("action forbidden") keeps invoke-rc.d and
# deb-systemd-invoke from starting it during this install (one that exists,
# as in Docker images, is left as it is); then the unit is disabled.
policy=/usr/sbin/policy-rc.d
own_policy=
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# scripts/deps.sh, during one apt-get install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
	trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
if [ -n "$own_policy" ]; then
	rm -f "$policy"
	trap - EXIT
fi
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
	systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
