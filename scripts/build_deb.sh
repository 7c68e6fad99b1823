#!/usr/bin/env bash
# build_deb.sh — make deb: builds postgresql-15-poll and poll-fanout from a
# copy of the work tree (tracked and new files, not ignored ones) with
# dpkg-buildpackage, so the checkout's own build outputs are left alone.
# The .deb files land in build/deb/; their paths are printed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/deb"
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$out/poll-$version"
rm -rf "$out"
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
	tar --null -T - -cf - | tar -xf - -C "$src")
# the build uses the system's PostgreSQL (pg_buildext), not a relocated PGBIN
(cd "$src" && env -u PGBIN -u PG_CONFIG DEB_BUILD_OPTIONS="noddebs ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1) || {
	tail -40 "$out/build.log" >&2
	echo "build_deb.sh: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
	exit 1
}
ls "$out"/*.deb
