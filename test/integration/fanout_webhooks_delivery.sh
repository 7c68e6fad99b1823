#!/usr/bin/env bash
# fanout_webhooks_delivery: poll-fanout --webhooks POSTs a poll's opened,
# tally and closed events to a real receiver (Python, on loopback), signed
# as the SPEC says: the receiver's own hmac check and Node's crypto both
# verify every Poll-Signature (and refuse a tampered body); the headers and
# body fields are there; closed carries poll.results; tallies come at most
# one per 5 s while votes arrive; poll.webhooks shows the state and never the
# secret, which poll_reader and poll_voter cannot see or change.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"
need_node

secret="s3cret-$$-with \"quotes\" and ünïcode"
rport=$(free_port)
receiver_start r "$rport" --secret "$secret"
esc=${secret//\'/\'\'}
webhook_add "http://127.0.0.1:$rport/hook?x=1" "$esc" '{opened,closed,tally}'
hook=$HOOK
start_daemon --webhooks
wait_healthy
[ "$(daemon_leader)" = 1 ] || fail "the only daemon does not deliver (leader metric $(daemon_leader))"

p=$(new_poll 'webhook "delivery"' red green blue)
wait_arrivals r 1 "b.get('event') == 'opened' and b['poll'] == $p" 5
# and one the clock opens and closes (the worker records it): opened and closed too
clock=$(psql_q -c "SELECT poll.create_poll('by the clock', ARRAY['x', 'y'], opens_at => now() + interval '2 s',
	closes_at => now() + interval '4 s')")
# votes for about 8 s
start=$(date +%s.%N)
for i in $(seq 1 40); do
	psql_q -c "SELECT poll.cast_vote($p, 'voter-$i', 1 + $i % 3)" >/dev/null
	sleep 0.2
done
psql_q -c "SELECT poll.close_poll($p)" >/dev/null
wait_arrivals r 1 "b.get('event') == 'closed' and b['poll'] == $p" 10
sleep 1
[ "$(arrivals r "b['poll'] == $clock and b['event'] == 'opened' and b['status'] == 'open'")" = 1 ] &&
	[ "$(arrivals r "b['poll'] == $clock and b['event'] == 'closed' and b['status'] == 'closed'")" = 1 ] &&
	[ "$(arrivals r "b['poll'] == $clock")" = 2 ] ||
	fail "the poll the clock opened and closed: $(grep -c "\"poll\\\":$clock" "$WORK/r.jsonl") deliveries, expected opened and closed"

python3 - "$WORK/r.jsonl" "$p" "$hook" "$(expected_results "$p" | cut -d'|' -f3 | paste -sd,)" <<'PY' || fail "deliveries do not match the SPEC"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
p, hook, final = int(sys.argv[2]), sys.argv[3], [int(x) for x in sys.argv[4].split(",")]
mine = [r for r in recs if json.loads(r["body"]).get("poll") == p]
bad = []
for r in mine:
    b = json.loads(r["body"])
    if not r["sig_ok"]: bad.append("signature does not verify: %s" % r["signature"])
    if r["content_type"] != "application/json": bad.append("content type " + r["content_type"])
    if r["webhook"] != hook or b["webhook"] != int(hook): bad.append("webhook id %s/%s" % (r["webhook"], b["webhook"]))
    if r["delivery"] != "%s-%d-%d" % (hook, p, b["version"]): bad.append("Poll-Delivery " + r["delivery"])
    if r["path"] != "/hook?x=1": bad.append("path " + r["path"])
    want = {"opened": "snapshot", "closed": "snapshot", "tally": "tally"}[b["event"]]
    if b["type"] != want: bad.append("%s carries a %s" % (b["event"], b["type"]))
events = [json.loads(r["body"])["event"] for r in mine]
if events.count("opened") != 1 or events[0] != "opened": bad.append("opened not once and first: %s" % events)
if events.count("closed") != 1 or events[-1] != "closed": bad.append("closed not once and last: %s" % events)
closed = json.loads(mine[-1]["body"])
if closed.get("status") != "closed" or [o["votes"] for o in closed["options"]] != final:
    bad.append("closed carries %s, poll.results %s" % ([o["votes"] for o in closed["options"]], final))
if closed.get("ballots") != sum(final) or closed.get("title") != 'webhook "delivery"': bad.append("closed snapshot %s" % closed)
tallies = [r["at"] for r in mine if json.loads(r["body"])["event"] == "tally"]
gaps = [b - a for a, b in zip(tallies, tallies[1:])]
if len(tallies) < 2: bad.append("only %d tally events over 8 s of votes" % len(tallies))
if any(g < 4.9 for g in gaps): bad.append("two tallies within 5 s: gaps %s" % gaps)
ids = [r["delivery"] for r in mine]
if len(set(ids)) != len(ids): bad.append("a Poll-Delivery twice: %s" % ids)
print("%d deliveries: %s; tally gaps %s s" % (len(mine), events, ["%.2f" % g for g in gaps]))
if bad:
    print("\n".join(bad)); sys.exit(1)
PY

# an independent implementation: Node's crypto, and a tampered body refused
node - "$WORK/r.jsonl" "$secret" <<'JS' || fail "Node's crypto does not verify the signatures"
const fs = require("fs"), crypto = require("crypto");
const [file, secret] = process.argv.slice(2);
function verify(secret, header, body) {
  const parts = Object.fromEntries(header.split(",").map(p => p.split("=")));
  const mac = crypto.createHmac("sha256", secret).update(parts.t + "." + body).digest("hex");
  return mac.length === parts.v1.length && crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(parts.v1));
}
const recs = fs.readFileSync(file, "utf8").trim().split("\n").map(JSON.parse);
const bad = recs.filter(r => !verify(secret, r.signature, Buffer.from(r.body, "utf8")));
if (bad.length) { console.log("not verified:", bad.length); process.exit(1); }
if (verify(secret, recs[0].signature, recs[0].body.replace("snapshot", "snapshoT"))) { console.log("tampered body verified"); process.exit(1); }
if (verify("wrong", recs[0].signature, recs[0].body)) { console.log("wrong secret verified"); process.exit(1); }
console.log("node crypto verified", recs.length, "signatures");
JS

# the README's receiver snippets, as printed there, on a recorded delivery and a tampered one
snippet() {	# the code block after the README's marker <!-- webhook-verify-$1 -->
	awk -v m="<!-- webhook-verify-$1 -->" '$0 == m { on = 1; next } on && /^```/ { if (in_block) exit; in_block = 1; next } in_block' \
		"$POLL_ROOT/README.md"
}
snippet node >"$WORK/verify.js"
snippet python >"$WORK/verify.py"
[ -s "$WORK/verify.js" ] && [ -s "$WORK/verify.py" ] || fail "the README's verification snippets were not found"
cat >>"$WORK/verify.js" <<'JS'
const rec = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8").trim().split("\n").pop());
const body = Buffer.from(rec.body, "utf8");
const ok = verifyPollSignature(process.argv[3], rec.signature, body);
const tampered = verifyPollSignature(process.argv[3], rec.signature, Buffer.from(rec.body.replace("}", " }")));
const stale = verifyPollSignature(process.argv[3], rec.signature, body, -1);
process.exit(ok && !tampered && !stale ? 0 : 1);
JS
cat >>"$WORK/verify.py" <<'PY'
import json, sys
rec = json.loads(open(sys.argv[1]).read().strip().split("\n")[-1])
ok = verify_poll_signature(sys.argv[2], rec["signature"], rec["body"].encode())
tampered = verify_poll_signature(sys.argv[2], rec["signature"], rec["body"].replace("}", " }").encode())
wrong = verify_poll_signature("not the secret", rec["signature"], rec["body"].encode())
sys.exit(0 if ok and not tampered and not wrong else 1)
PY
node "$WORK/verify.js" "$WORK/r.jsonl" "$secret" || fail "the README's Node snippet does not verify a delivery (or accepts a bad one)"
python3 "$WORK/verify.py" "$WORK/r.jsonl" "$secret" || fail "the README's Python snippet does not verify a delivery (or accepts a bad one)"
echo "the README's Node and Python snippets verify a delivery and refuse a tampered or stale one"

row=$(psql_q -c "SELECT last_status, pending, failures, last_delivery_at IS NOT NULL FROM poll.webhooks WHERE webhook_id = $hook")
[ "$row" = "200|0|0|t" ] || fail "poll.webhooks: $row"
n=$(metric poll_fanout_webhook_deliveries_total)
[ "$n" -ge 4 ] || fail "deliveries metric $n"
[ "$(metric poll_fanout_webhook_delivery_seconds_count)" = "$n" ] || fail "latency histogram count"

# the secret: in no view or table poll_admin reads; reader and voter see and change nothing
psql_q -c "CREATE ROLE hooks_admin_$$ IN ROLE poll_admin; CREATE ROLE hooks_reader_$$ IN ROLE poll_reader;
	CREATE ROLE hooks_voter_$$ IN ROLE poll_voter" >/dev/null
trap 'rc=$?; set +e; psql_q -c "DROP ROLE IF EXISTS hooks_admin_$$, hooks_reader_$$, hooks_voter_$$" >/dev/null 2>&1; (exit $rc); webhooks_cleanup' EXIT
as() { psql -X -qAt -v ON_ERROR_STOP=1 -c "SET ROLE $1; $2" 2>&1; }
got=$(as "hooks_admin_$$" "SELECT webhook_id, url FROM poll.webhooks WHERE webhook_id = $hook")
[ "$got" = "$hook|http://127.0.0.1:$rport/hook?x=1" ] || fail "poll_admin reads poll.webhooks: $got"
denied() { grep -q 'permission denied' <<<"$(as "$1" "$2")"; }
for t in poll.webhooks poll.webhook poll.webhook_delivery; do
	! grep -qF "s3cret-$$" <<<"$(as "hooks_admin_$$" "SELECT row_to_json(x)::text FROM $t x")" ||
		fail "the secret shows in $t"
done
denied "hooks_admin_$$" "SELECT * FROM poll.webhook_secret" || fail "poll_admin reads the secrets"
for r in "hooks_reader_$$" "hooks_voter_$$"; do
	denied "$r" "SELECT count(*) FROM poll.webhooks" || fail "$r reads poll.webhooks"
	denied "$r" "SELECT count(*) FROM poll.webhook" || fail "$r reads poll.webhook"
	denied "$r" "SELECT poll.add_webhook('http://127.0.0.1:1/', 'x')" || fail "$r adds a webhook"
	denied "$r" "SELECT poll.remove_webhook($hook)" || fail "$r removes a webhook"
done
echo "ok: signed deliveries (Python hmac and Node crypto), closed = poll.results, tallies >= 5 s apart, state in poll.webhooks, no secret shown"
