#!/usr/bin/env bash
# debian_packages: make deb's postgresql-15-poll and poll-fanout, installed on
# this machine with apt, pass lintian (no error, no warning) and
# systemd-analyze verify; reinstalling the same version and upgrading to a
# bumped one keep the system user, the JWT secret and an edited conffile; purge
# leaves no file, secret, conffile, unit state or user behind. META.json
# passes the PGXN meta-spec 1.0.0 schema.
#
# Against the INSTALLED files, not the build tree: the pg_regress and isolation
# suites on temporary instances of the system's /usr/lib/postgresql/15 (whose
# lib/poll.so is the package's), and an end-to-end test of /usr/bin/poll-fanout
# started by systemd from the packaged unit and conffile. When PID 1 is not
# systemd (a container), systemd runs as PID 1 of a private PID and mount
# namespace (its own /run) with a target that wants only poll-fanout.service (and a drop-in
# that drops its default ordering dependencies and sends its output to a file):
# the unit's hardening is applied by systemd itself. The daemon must run as
# poll-fanout with no capability, no_new_privs and a seccomp filter, read the
# generated secret (root:poll-fanout 0640), serve its built-in web client, and
# push to WebSocket and SSE clients holding tokens until they match poll.results.
#
# make test installed the extension into the PostgreSQL of PGBIN; when that is
# the system's, the package replaces those files and purge deletes them: the
# extension files found in the system's PostgreSQL before the test, owned by no
# package, are saved and put back byte for byte at the end, whatever happens.
# A relocated PGBIN copy is not touched.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

[ "$(id -u)" = 0 ] || fail "installs packages with apt: run as root"
SYS=/usr/lib/postgresql/15
SYSBIN=$SYS/bin
PKGLIB=$("$SYSBIN/pg_config" --pkglibdir)
EXTDIR=$("$SYSBIN/pg_config" --sharedir)/extension
PKGS=(postgresql-15-poll poll-fanout)
UNIT=/lib/systemd/system/poll-fanout.service
CONF=/etc/poll-fanout/poll-fanout.conf
DEBDIR="$POLL_ROOT/build/deb"
SHARED_PGPORT=$PGPORT
SYS_CLUSTER="$WORK/system-cluster"
SD_PID=			# the namespaced systemd (host pid), or "host" when PID 1 is systemd
SD_UNSHARE=
CG=deb-polltest-$$
t_start=$SECONDS
step() { echo "--- $* ($((SECONDS - t_start)) s)"; }

# dpkg --verify: no file differs from its package but the edited conffile
verify_files() {
	local out
	out=$(dpkg --verify "${PKGS[@]}" 2>&1 | grep -v " c $CONF\$" || true)
	[ -z "$out" ] || fail "dpkg --verify $1: $out"
}
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }
apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
		--no-install-recommends "$@" >>"$WORK/apt.log" 2>&1 || {
		tail -20 "$WORK/apt.log" >&2
		fail "apt-get install $* failed"
	}
}
purge_packages() {
	local p
	for p in "${PKGS[@]}"; do
		if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv not-installed; then
			DEBIAN_FRONTEND=noninteractive dpkg --purge "$p" >>"$WORK/apt.log" 2>&1 || return 1
		fi
	done
}

# ---- systemd: the machine's, or PID 1 of private namespaces ----
sctl() {
	if [ "$SD_PID" = host ]; then systemctl "$@"; else nsenter -t "$SD_PID" -m -p systemctl "$@"; fi
}
# the test's drop-in: output to a file, no ordering on sysinit/basic
write_dropin() {	# DIR
	mkdir -p "$1/poll-fanout.service.d"
	printf '[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:%s\nStandardError=inherit\n' \
		"$DAEMON_LOG" >"$1/poll-fanout.service.d/zz-test.conf"
}
private_tmps() {
	ls -d /tmp/systemd-private-*-poll-fanout.service-* /var/tmp/systemd-private-*-poll-fanout.service-* 2>/dev/null | sort || true
}
start_systemd() {
	if [ "$(ps -p 1 -o comm=)" = systemd ]; then
		SD_PID=host
		write_dropin /run/systemd/system
		systemctl daemon-reload
		systemctl start poll-fanout
		return
	fi
	cat >"$WORK/pid1.sh" <<EOF
#!/bin/sh
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 tmpfs /run
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=755 tmpfs /var/log/journal; fi
mkdir -p /run/systemd/system
printf '[Unit]\nDescription=poll package test\nDefaultDependencies=no\nWants=poll-fanout.service\n' \
	>/run/systemd/system/poll-test.target
$(declare -f write_dropin)
DAEMON_LOG='$DAEMON_LOG' write_dropin /run/systemd/system
exec /lib/systemd/systemd --system --unit=poll-test.target --log-target=console --show-status=no
EOF
	chmod 755 "$WORK/pid1.sh"
	private_tmps >"$WORK/private-tmps.before"
	# its own cgroups, so that it manages nothing of the host's
	local h
	for h in systemd unified; do
		[ -d "/sys/fs/cgroup/$h" ] && mkdir -p "/sys/fs/cgroup/$h/$CG"
	done
	(
		for h in systemd unified; do
			[ -d "/sys/fs/cgroup/$h/$CG" ] && echo "$BASHPID" >"/sys/fs/cgroup/$h/$CG/cgroup.procs"
		done
		exec env -i container=poll-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			unshare --pid --mount --uts --fork --mount-proc "$WORK/pid1.sh"
	) >"$WORK/systemd-console.log" 2>&1 &
	SD_UNSHARE=$!
	for _ in $(seq 1 100); do
		SD_PID=$(pgrep -P "$SD_UNSHARE" -x systemd || true)
		[ -n "$SD_PID" ] && sctl show -p Version --value >/dev/null 2>&1 && break
		SD_PID=
		kill -0 "$SD_UNSHARE" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$SD_PID" ] || { cat "$WORK/systemd-console.log" >&2; fail "systemd did not start in its namespace"; }
}
stop_systemd() {
	[ -n "$SD_PID" ] || return 0
	if [ "$SD_PID" = host ]; then
		systemctl stop poll-fanout || true
		rm -rf /run/systemd/system/poll-fanout.service.d
		systemctl daemon-reload || true
	else
		kill -s SIGRTMIN+4 "$SD_PID" 2>/dev/null || true	# poweroff, in a container
		for _ in $(seq 1 100); do kill -0 "$SD_UNSHARE" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SD_UNSHARE" 2>/dev/null || true
		wait "$SD_UNSHARE" 2>/dev/null || true
		local h
		for h in systemd unified; do
			find "/sys/fs/cgroup/$h/$CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done
		# PrivateTmp's directories, which a powered-off systemd leaves
		private_tmps | comm -13 "$WORK/private-tmps.before" - | xargs -r rm -rf
	fi
	SD_PID=
}

# ---- the system's extension files, put back at the end ----
mkdir -p "$WORK/saved"
saved=()
for f in "$PKGLIB/poll.so" "$EXTDIR"/poll.control "$EXTDIR"/poll--*.sql; do
	[ -e "$f" ] || continue
	dpkg -S "$f" >/dev/null 2>&1 && continue
	saved+=("$f")
done
[ ${#saved[@]} -gt 0 ] && tar -cPf "$WORK/saved/files.tar" "${saved[@]}" && (cd / && sha256sum "${saved[@]}") >"$WORK/saved/sha256"
restore_system_files() {
	[ ${#saved[@]} -gt 0 ] || return 0
	tar -xpPf "$WORK/saved/files.tar" && sha256sum --quiet -c "$WORK/saved/sha256"
}

cleanup_packages() {
	local rc=$?
	stop_systemd
	PGBIN=$SYSBIN "$POLL_ROOT/scripts/cluster.sh" stop "$SYS_CLUSTER" >/dev/null 2>&1 || true
	if ! purge_packages; then
		echo "FAIL $TEST_NAME: purge in cleanup failed" >&2
		rc=1
	fi
	if ! restore_system_files; then
		echo "FAIL $TEST_NAME: the saved extension files of $SYS were not restored" >&2
		rc=1
	fi
	export PGPORT=$SHARED_PGPORT
	set +e
	(exit $rc)
	cleanup	# lib.sh's: the clients, then exit with $rc
}
trap cleanup_packages EXIT

# a run killed before its cleanup left the packages: purge them first
if installed poll-fanout || installed postgresql-15-poll; then
	echo "purging packages left by an earlier run"
	purge_packages || fail "cannot purge the packages left by an earlier run"
fi

# ---- PGXN ----
step "META.json against the PGXN meta-spec 1.0.0 schema"
/usr/bin/python3 "$POLL_ROOT/test/pgxn/validate_meta.py" "$POLL_ROOT/test/pgxn/meta-spec-1.0.0.schema.json" \
	"$POLL_ROOT/META.json" || fail "META.json does not pass the meta-spec 1.0.0 schema"
ctl_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$POLL_ROOT/poll.control")
deb_version=$(dpkg-parsechangelog -l "$POLL_ROOT/debian/changelog" -S Version)
meta_version=$(/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["version"], m["provides"]["poll"]["version"], m["provides"]["poll"]["file"])' "$POLL_ROOT/META.json")
[ "$meta_version" = "$ctl_version.0 $ctl_version.0 poll--$ctl_version.sql" ] ||
	fail "META.json (version, provides.poll.version, file: $meta_version) disagrees with poll.control's $ctl_version"
[ "$deb_version" = "$ctl_version.0" ] || fail "debian/changelog's version $deb_version is not poll.control's $ctl_version.0"

# ---- build and lint ----
step "make deb"
make -s -C "$POLL_ROOT" deb >"$WORK/make-deb.log" 2>&1 || { tail -30 "$WORK/make-deb.log" >&2; fail "make deb failed"; }
arch=$(dpkg --print-architecture)
pg_deb="$DEBDIR/postgresql-15-poll_${deb_version}_$arch.deb"
fo_deb="$DEBDIR/poll-fanout_${deb_version}_$arch.deb"
changes="$DEBDIR/poll_${deb_version}_$arch.changes"
[ -f "$pg_deb" ] && [ -f "$fo_deb" ] && [ -f "$changes" ] || fail "make deb did not produce $pg_deb, $fo_deb and $changes"
[ "$(ls "$DEBDIR"/*.deb | wc -l)" = 2 ] || fail "make deb produced other packages: $(ls "$DEBDIR"/*.deb)"
dpkg-deb -c "$pg_deb" >"$WORK/pg-deb.list"
dpkg-deb -c "$fo_deb" >"$WORK/fanout-deb.list"
grep -q " ./usr/lib/postgresql/15/lib/poll.so$" "$WORK/pg-deb.list" || fail "postgresql-15-poll lacks lib/poll.so"
grep -q " ./usr/share/postgresql/15/extension/poll.control$" "$WORK/pg-deb.list" || fail "postgresql-15-poll lacks poll.control"
grep -E 'index\.html|poll-client\.js' "$WORK/fanout-deb.list" && fail "poll-fanout ships web files: they belong in the binary"

step "lintian"
lintian --pedantic --fail-on none "$changes" >"$WORK/lintian.log" 2>"$WORK/lintian.err" || true
grep -E '^[EW]: ' "$WORK/lintian.log" && fail "lintian reports errors or warnings"
[ -s "$WORK/lintian.err" ] && grep -v 'root privileges is not recommended' "$WORK/lintian.err" >&2 &&
	fail "lintian failed"
echo "lintian: $(grep -c . "$WORK/lintian.log" || true) tag(s) below warning: $(cut -d' ' -f2- "$WORK/lintian.log" | tr '\n' ';')"

# ---- install, reinstall ----
step "install"
apt_install "$pg_deb" "$fo_deb"
for p in "${PKGS[@]}"; do installed "$p" || fail "$p is not installed"; done
verify_files "after installing"
[ "$(dpkg -S "$PKGLIB/poll.so" | cut -d: -f1)" = postgresql-15-poll ] || fail "$PKGLIB/poll.so is not the package's"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd poll-fanout) || fail "no poll-fanout user"
[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] ||
	fail "poll-fanout is not a system user without a home and a shell: $(getent passwd poll-fanout)"
[ "$(getent group poll-fanout | cut -d: -f3)" = "$gid" ] || fail "poll-fanout's group is not its own"
[ "$(stat -c '%U:%G %a' /etc/poll-fanout/jwt-secret)" = "root:poll-fanout 640" ] ||
	fail "jwt-secret is $(stat -c '%U:%G %a' /etc/poll-fanout/jwt-secret), not root:poll-fanout 640"
[ "$(tr -d '\n' </etc/poll-fanout/jwt-secret | wc -c)" = 64 ] || fail "the generated JWT secret is not 32 random bytes in hex"
runuser -u nobody -- cat /etc/poll-fanout/jwt-secret >/dev/null 2>&1 && fail "another user can read the JWT secret"
runuser -u poll-fanout -- cat /etc/poll-fanout/jwt-secret >/dev/null || fail "poll-fanout cannot read its JWT secret"
dpkg-query -W -f='${Conffiles}\n' poll-fanout | grep -q " $CONF " || fail "$CONF is not a conffile"
systemd-analyze verify "$UNIT" >"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify rejects the unit"; }
[ -s "$WORK/verify.log" ] && { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify warns about the unit"; }
systemd-analyze security --offline=true --threshold=20 "$UNIT" >"$WORK/security.log" 2>&1 ||
	fail "systemd-analyze security: $(tail -1 "$WORK/security.log")"
echo "$(tail -1 "$WORK/security.log")"
secret_sum=$(sha256sum </etc/poll-fanout/jwt-secret)

step "reinstall the same version"
apt_install --reinstall "$pg_deb" "$fo_deb"
verify_files "after reinstalling"
[ "$(id -u poll-fanout)" = "$uid" ] || fail "reinstalling changed poll-fanout's uid"
[ "$(sha256sum </etc/poll-fanout/jwt-secret)" = "$secret_sum" ] || fail "reinstalling replaced the JWT secret"

# ---- the administrator's configuration, then an upgrade that keeps it ----
free_pg_port() {
	local p
	for _ in $(seq 1 20); do
		p=$(free_port)
		pg_isready -q -h 127.0.0.1 -p "$p" || { echo "$p"; return; }
	done
}
sys_port=$(free_pg_port)
DAEMON_PORT=$(free_port)
DAEMON_LOG="$WORK/daemon.log"
sed -i -e "s/^PGHOST=.*/PGHOST=127.0.0.1/" -e "s/^PGPORT=.*/PGPORT=$sys_port/" \
	-e "s/^POLL_FANOUT_OPTS=--listen [^ ]*/POLL_FANOUT_OPTS=--listen 127.0.0.1:$DAEMON_PORT --throttle 50/" "$CONF"
grep -q "^POLL_FANOUT_OPTS=--listen 127.0.0.1:$DAEMON_PORT .*--jwt-secret-file /etc/poll-fanout/jwt-secret" "$CONF" ||
	fail "$CONF has no POLL_FANOUT_OPTS line to edit: $(grep POLL_FANOUT_OPTS "$CONF")"
conf_sum=$(sha256sum <"$CONF")

step "upgrade to a bumped version"
bump() {	# DEB -> the same package as version +t1
	local d="$WORK/bump/$(basename "$1" .deb)"
	rm -rf "$d" && mkdir -p "$d" && dpkg-deb -R "$1" "$d/root"
	sed -i "s/^Version: .*/Version: ${deb_version}+t1/" "$d/root/DEBIAN/control"
	dpkg-deb --root-owner-group -b "$d/root" "$d.deb" >/dev/null && echo "$d.deb"
}
apt_install "$(bump "$pg_deb")" "$(bump "$fo_deb")"
for p in "${PKGS[@]}"; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "${deb_version}+t1" ] || fail "$p was not upgraded"
done
verify_files "after the upgrade"
[ "$(sha256sum <"$CONF")" = "$conf_sum" ] || fail "the upgrade did not keep the edited $CONF"
[ "$(sha256sum </etc/poll-fanout/jwt-secret)" = "$secret_sum" ] || fail "the upgrade replaced the JWT secret"
[ "$(id -u poll-fanout)" = "$uid" ] || fail "the upgrade changed poll-fanout's uid"

# ---- the SQL suites against the installed extension ----
step "pg_regress and isolation against $SYS"
suites="$WORK/suites"
mkdir -p "$suites/isolation"
cp -r "$POLL_ROOT/sql" "$POLL_ROOT/expected" "$POLL_ROOT/test/invariants.sql" "$POLL_ROOT/test/poll.conf" "$suites/"
cp -r "$POLL_ROOT/test/isolation/specs" "$POLL_ROOT/test/isolation/expected" "$suites/isolation/"
chown -R postgres: "$WORK"
regress_tests="setup $(cd "$POLL_ROOT/sql" && ls *.sql | sed 's/\.sql$//' | grep -vx setup | sort)"
iso_tests=$(cd "$POLL_ROOT/test/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
(cd "$suites" && runuser -u postgres -- "$SYS/lib/pgxs/src/test/regress/pg_regress" \
	--port="$(free_pg_port)" --temp-instance="$suites/regress-instance" --temp-config="$suites/poll.conf" \
	--inputdir="$suites" --outputdir="$suites/regress" --bindir="$SYSBIN" \
	--dbname=contrib_regression $regress_tests >"$suites/regress.out" 2>&1) &
regress_pid=$!
runuser -u postgres -- "$SYS/lib/pgxs/src/test/isolation/pg_isolation_regress" \
	--port="$(free_pg_port)" --temp-instance="$suites/isolation-instance" --temp-config="$suites/poll.conf" \
	--inputdir="$suites/isolation" --outputdir="$suites/isolation-out" --bindir="$SYSBIN" \
	--dbname=isolation_regression $iso_tests >"$suites/isolation.out" 2>&1 &
iso_pid=$!
suite_ok() {	# NAME PID OUTPUT TESTS
	local rc=0 n
	wait "$2" || rc=$?
	n=$(grep -c -E '\.\.\. ok' "$3" || true)
	if [ $rc != 0 ] || [ "$n" != "$(wc -w <<<"$4")" ]; then
		tail -20 "$3" >&2
		head -60 "$(dirname "$3")"/*/regression.diffs 2>/dev/null >&2
		fail "$1 against the installed extension: $n of $(wc -w <<<"$4") tests passed"
	fi
	echo "$1: $n tests passed against the installed files"
}
suite_ok pg_regress $regress_pid "$suites/regress.out" "$regress_tests"
suite_ok isolation $iso_pid "$suites/isolation.out" "$iso_tests"

# ---- poll-fanout end to end: the installed binary, started by systemd ----
step "poll-fanout from the packaged unit"
PGBIN=$SYSBIN "$POLL_ROOT/scripts/cluster.sh" start "$SYS_CLUSTER" "$sys_port" "poll.database='postgres'" ||
	fail "cannot start a cluster of $SYS"
export PGPORT=$sys_port
psql_q -c "CREATE EXTENSION poll" >/dev/null
postmaster=$(head -1 "$SYS_CLUSTER/data/postmaster.pid")
grep -q " $PKGLIB/poll.so$" "/proc/$postmaster/maps" || fail "the cluster of $SYS did not load $PKGLIB/poll.so"
# the role the conffile names: REPLICATION and the three SELECTs the daemon uses
psql_q -c "CREATE ROLE poll_fanout LOGIN REPLICATION;
	GRANT USAGE ON SCHEMA poll TO poll_fanout;
	GRANT SELECT ON poll.poll, poll.option, poll.tally TO poll_fanout" >/dev/null
poll=$(new_poll 'Packaged' Yes No Maybe)

start_systemd
for _ in $(seq 1 100); do
	[ "$(sctl is-active poll-fanout 2>/dev/null)" = active ] &&
		curl -s -o /dev/null "http://127.0.0.1:$DAEMON_PORT/metrics" && break
	sleep 0.1
done
[ "$(sctl is-active poll-fanout 2>/dev/null)" = active ] ||
	fail "poll-fanout.service is not active: $(sctl status poll-fanout --no-pager 2>&1 | head -20)"
wait_healthy 20
# lws resolves --listen's host with getifaddrs (a netlink socket): if the
# sandbox denied it, lws would bind every address instead
listen=$(ss -Hltn "sport = :$DAEMON_PORT" | awk '{ print $4 }' | sort -u | tr '\n' ' ')
[ "$listen" = "127.0.0.1:$DAEMON_PORT " ] ||
	fail "the daemon listens on $listen, not only on 127.0.0.1:$DAEMON_PORT as its --listen says"
if [ "$SD_PID" = host ]; then fpid=$(systemctl show -p MainPID --value poll-fanout)
else fpid=$(pgrep -P "$SD_PID" -x poll-fanout); fi
[ "$(readlink "/proc/$fpid/exe")" = /usr/bin/poll-fanout ] || fail "the service does not run /usr/bin/poll-fanout"
status=$(cat "/proc/$fpid/status")
for want in "Uid:	$uid	$uid	$uid	$uid" "Gid:	$gid	$gid	$gid	$gid" "NoNewPrivs:	1" "Seccomp:	2" \
		"CapEff:	0000000000000000" "CapBnd:	0000000000000000"; do
	grep -qF "$want" <<<"$status" || fail "the daemon's /proc status lacks \"$want\""
done
awk '$5 == "/tmp" && $4 ~ /systemd-private-.*poll-fanout/ { found = 1 } END { exit !found }' \
	"/proc/$fpid/mountinfo" || fail "the daemon has no private /tmp (PrivateTmp)"
awk '$5 == "/" && $6 ~ /^ro(,|$)/ { found = 1 } END { exit !found }' "/proc/$fpid/mountinfo" ||
	fail "the daemon's root file system is not read-only (ProtectSystem=strict)"

# the web client is built into the binary
curl -s "$(BASE)/" | cmp -s - "$POLL_ROOT/fanout/index.html" || fail "GET / is not the built-in index.html"
curl -s "$(BASE)/poll-client.js" | cmp -s - "$POLL_ROOT/fanout/poll-client.js" || fail "GET /poll-client.js is not the built-in client"

# tokens signed with the generated secret
token=$(node -e '
const c = require("crypto"), fs = require("fs");
const key = fs.readFileSync("/etc/poll-fanout/jwt-secret", "utf8").replace(/\r?\n$/, "");
const b = x => Buffer.from(JSON.stringify(x)).toString("base64url");
const h = b({ alg: "HS256", typ: "JWT" }) + "." + b({ polls: "*", exp: Math.floor(Date.now() / 1000) + 600 });
console.log(h + "." + c.createHmac("sha256", key).update(h).digest("base64url"));')
[ "$(http_code "$(BASE)/polls/$poll")" = 401 ] || fail "a snapshot without a token was not refused"
[ "$(http_code -H "Authorization: Bearer $token" "$(BASE)/polls/$poll")" = 200 ] ||
	fail "a token signed with /etc/poll-fanout/jwt-secret was refused"

client_start ws1 ws "$poll" --token "$token"
client_start sse1 sse "$poll" --token "$token"
sleep 0.5
cast_votes_session pkg "$poll" 200 3 0.02
psql_q -c "SELECT poll.fold()" >/dev/null
wait_client_matches ws1 "$poll" 20
wait_client_matches sse1 "$poll" 20
client_clean ws1
client_clean sse1
[ "$(psql_q -c "SELECT count(*) FROM pg_replication_slots WHERE temporary AND active")" = 1 ] ||
	fail "the daemon holds no temporary replication slot"

sctl stop poll-fanout
[ "$(sctl show -p Result --value poll-fanout)" = success ] ||
	fail "poll-fanout did not stop cleanly: $(sctl show -p Result -p ExecMainStatus poll-fanout | tr '\n' ' ')"
kill -0 "$fpid" 2>/dev/null && fail "poll-fanout still runs after systemctl stop"
for _ in $(seq 1 100); do
	[ "$(psql_q -c "SELECT count(*) FROM pg_replication_slots")" = 0 ] && break
	sleep 0.1
done
[ "$(psql_q -c "SELECT count(*) FROM pg_replication_slots")" = 0 ] || fail "a replication slot outlived the daemon"
stop_systemd
PGBIN=$SYSBIN "$POLL_ROOT/scripts/cluster.sh" stop "$SYS_CLUSTER"
export PGPORT=$SHARED_PGPORT

# ---- purge: nothing left ----
step "purge"
for p in "${PKGS[@]}"; do dpkg -L "$p"; done | sort -u >"$WORK/package-paths"
purge_packages || { tail -20 "$WORK/apt.log" >&2; fail "dpkg --purge failed"; }
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qvx not-installed &&
		fail "$p is still known to dpkg: $(dpkg-query -W -f='${db:Status-Status}' "$p")"
done
left=$(while read -r f; do if [ -e "$f" ] && [ ! -d "$f" ]; then echo "$f"; fi; done <"$WORK/package-paths")
[ -z "$left" ] || fail "purge left files: $left"
for d in /etc/poll-fanout /usr/share/doc/poll-fanout /usr/share/doc/postgresql-15-poll; do
	[ -e "$d" ] && fail "purge left $d: $(ls -A "$d")"
done
getent passwd poll-fanout && fail "purge left the poll-fanout user"
getent group poll-fanout && fail "purge left the poll-fanout group"
ls /var/lib/systemd/deb-systemd-helper-enabled/ /etc/systemd/system/*.wants/ 2>/dev/null | grep poll-fanout &&
	fail "purge left systemd state of poll-fanout"

restore_system_files || fail "the saved extension files of $SYS were not restored"
echo "ok: packages built, linted, installed, reinstalled, upgraded, tested from the installed files, purged clean ($((SECONDS - t_start)) s)"
