#!/usr/bin/env node
/*
 * votes_errors.js CONFIG_JSON — every answer of the vote path, over the
 * WebSocket and over HTTP: voted (cast, changed, unchanged, retracted,
 * none) and each error code (bad_request, unauthorized, forbidden,
 * rate_limited, bad_vote, not_found, closed, not_open, change_not_allowed,
 * unavailable), each echoing ref; identity and segment from the token only;
 * the order of one connection's votes.  CONFIG: {base, rateBase, deadBase,
 * secret, polls: {single, multi, closed, scheduled, nochange}}.
 */
"use strict";
const { open, assert, sleep, main } = require("./wsprobe");
const { token, request, wsVote, now } = require("./votelib");
const cfg = JSON.parse(process.argv[2]);
const P = cfg.polls;
const wsUrl = (base, t) => base.replace(/^http/, "ws") + "/ws" + (t ? "?token=" + t : "");
let n = 0;
const ref = () => "r" + (++n);

async function expectWs(c, msg, code, what) {
  const m = await wsVote(c, { ref: ref(), ...msg });
  assert(code === "voted" ? m.type === "voted" : m.type === "error" && m.code === code,
         `${what}: expected ${code}, got ${JSON.stringify(m)}`);
  if (m.type === "error" && Number.isInteger(msg.poll) && msg.poll > 0)
    assert(m.poll === msg.poll, `${what}: the error names the poll: ${JSON.stringify(m)}`);
  console.log(`ok: ws ${what} -> ${code}${m.result ? " " + m.result : ""}`);
  return m;
}

async function expectHttp(base, method, poll, opts, status, code, what) {
  const r = await request(base, method, `/polls/${poll}/vote`, opts);
  assert(r.status === status, `${what}: expected HTTP ${status}, got ${r.status} ${r.body}`);
  if (code) assert(r.json && r.json.type === "error" && r.json.code === code,
                   `${what}: expected ${code}, got ${r.body}`);
  console.log(`ok: http ${what} -> ${status}${code ? " " + code : ""}`);
  return r;
}

main(async () => {
  const all = token(cfg.secret, { sub: "tester", vote: "*", polls: "*" });
  const c = await open(wsUrl(cfg.base, all));

  /* voted, every result, over the WebSocket */
  let m = await expectWs(c, { type: "vote", poll: P.single, option: 1 }, "voted", "first vote");
  assert(m.result === "cast" && JSON.stringify(m.options) === "[1]" && m.poll === P.single, "cast [1]");
  m = await expectWs(c, { type: "vote", poll: P.single, option: 1 }, "voted", "the same again");
  assert(m.result === "unchanged", "resent vote is unchanged");
  m = await expectWs(c, { type: "vote", poll: P.single, option: 2 }, "voted", "another option");
  assert(m.result === "changed" && JSON.stringify(m.options) === "[2]", "changed [2]");
  m = await expectWs(c, { type: "retract", poll: P.single }, "voted", "retract");
  assert(m.result === "retracted" && JSON.stringify(m.options) === "[]", "retracted []");
  m = await expectWs(c, { type: "retract", poll: P.single }, "voted", "retract again");
  assert(m.result === "none", "none");
  m = await expectWs(c, { type: "vote", poll: P.multi, options: [3, 1] }, "voted", "multi ballot");
  assert(m.result === "cast" && JSON.stringify(m.options) === "[1,3]", "multi [1,3]: " + JSON.stringify(m));
  /* without ref: the answer has none */
  c.send({ type: "vote", poll: P.single, option: 2 });
  m = await c.until(x => x.type === "voted" || x.type === "error");
  assert(m.type === "voted" && !("ref" in m), "no ref, none echoed: " + JSON.stringify(m));

  /* bad_request */
  await expectWs(c, { type: "vote", poll: P.single, option: "2" }, "bad_request", "option a string");
  await expectWs(c, { type: "vote", poll: P.single }, "bad_request", "no option");
  await expectWs(c, { type: "vote", poll: P.single, option: 1, options: [1] }, "bad_request", "option and options");
  await expectWs(c, { type: "vote", poll: P.single, options: [1, "x"] }, "bad_request", "options not integers");
  await expectWs(c, { type: "vote", poll: "x", option: 1 }, "bad_request", "poll not an id");
  await expectWs(c, { type: "retract", poll: -3 }, "bad_request", "retract of poll -3");
  c.send({ type: "vote", poll: P.single, option: 1, ref: "x".repeat(65) });
  m = await c.until(x => x.type === "error");
  assert(m.code === "bad_request" && !("ref" in m), "ref over 64 characters: " + JSON.stringify(m));
  console.log("ok: ws ref of 65 characters -> bad_request");
  m = await expectWs(c, { type: "vote", poll: P.single, option: 1, ref: "é".repeat(64) }, "voted", "ref of 64 characters");
  c.send({ type: "vote", poll: P.single, option: 1, ref: 7 });
  m = await c.until(x => x.type === "error");
  assert(m.code === "bad_request", "ref a number");

  /* bad_vote */
  await expectWs(c, { type: "vote", poll: P.single, option: 9 }, "bad_vote", "unknown option");
  await expectWs(c, { type: "vote", poll: P.single, option: 0 }, "bad_vote", "option 0");
  await expectWs(c, { type: "vote", poll: P.single, option: 4294967297 }, "bad_vote", "option 2^32+1");
  await expectWs(c, { type: "vote", poll: P.single, options: [1, 2] }, "bad_vote", "options on a single poll");
  await expectWs(c, { type: "vote", poll: P.multi, options: [] }, "bad_vote", "no options");
  await expectWs(c, { type: "vote", poll: P.multi, options: [1, 2, 3] }, "bad_vote", "over max_choices");
  await expectWs(c, { type: "vote", poll: P.multi, options: [1, 1] }, "bad_vote", "an option twice");
  /* not_found, closed, not_open, change_not_allowed */
  await expectWs(c, { type: "vote", poll: 987654321, option: 1 }, "not_found", "unknown poll");
  await expectWs(c, { type: "retract", poll: 987654321 }, "not_found", "retract in an unknown poll");
  await expectWs(c, { type: "vote", poll: P.closed, option: 1 }, "closed", "closed poll");
  await expectWs(c, { type: "vote", poll: P.scheduled, option: 1 }, "not_open", "poll not open yet");
  await expectWs(c, { type: "vote", poll: P.nochange, option: 1 }, "voted", "first vote where changes are not allowed");
  await expectWs(c, { type: "vote", poll: P.nochange, option: 2 }, "change_not_allowed", "a change there");
  await expectWs(c, { type: "retract", poll: P.nochange }, "change_not_allowed", "a retraction there");
  await expectWs(c, { type: "vote", poll: P.nochange, option: 1 }, "voted", "the same vote there");

  /* forbidden and unauthorized */
  const anon = await open(wsUrl(cfg.base));
  await expectWs(anon, { type: "vote", poll: P.single, option: 1 }, "forbidden", "no token");
  const readOnly = await open(wsUrl(cfg.base, token(cfg.secret, { polls: "*" })));
  await expectWs(readOnly, { type: "vote", poll: P.single, option: 1 }, "forbidden", "a token without vote");
  const onlyMulti = await open(wsUrl(cfg.base, token(cfg.secret, { sub: "m", vote: [P.multi] })));
  await expectWs(onlyMulti, { type: "vote", poll: P.single, option: 1 }, "forbidden", "a token voting elsewhere");
  await expectWs(onlyMulti, { type: "vote", poll: P.multi, options: [2] }, "voted", "the token's own poll");
  const soon = await open(wsUrl(cfg.base, token(cfg.secret, { sub: "s", vote: "*", exp: now() + 2 })));
  await expectWs(soon, { type: "vote", poll: P.single, option: 1 }, "voted", "a token about to expire");
  await sleep(2600);
  await expectWs(soon, { type: "vote", poll: P.single, option: 2 }, "unauthorized", "an expired token");
  soon.send({ type: "auth", token: token(cfg.secret, { sub: "s", vote: "*" }) });
  await expectWs(soon, { type: "vote", poll: P.single, option: 2 }, "voted", "after a fresh auth");
  /* a forged token in auth: refused, and grants nothing */
  anon.send({ type: "auth", token: token("not-the-secret", { sub: "x", vote: "*" }) });
  m = await anon.next();
  assert(m.type === "error" && m.code === "unauthorized", "forged auth refused: " + JSON.stringify(m));
  await expectWs(anon, { type: "vote", poll: P.single, option: 1 }, "forbidden", "after a forged auth");

  /* identity and segment come from the token, never from the message */
  const alice = await open(wsUrl(cfg.base, token(cfg.secret, { sub: "alice", vote: "*", seg: "eu" })));
  await expectWs(alice, { type: "vote", poll: P.single, option: 1, voter: "mallory", sub: "mallory",
                          segment: "xx", seg: "xx", token: "x" }, "voted", "a message naming another voter");
  await expectHttp(cfg.base, "POST", P.single, { token: token(cfg.secret, { sub: "bob", vote: "*", seg: "us" }),
    body: { option: 2, voter: "mallory", sub: "mallory", seg: "zz", segment: "zz" } }, 200, null,
    "a body naming another voter");

  /* HTTP: voted, ballot, each code */
  const t = token(cfg.secret, { sub: "http-voter", vote: "*" });
  let r = await expectHttp(cfg.base, "GET", P.single, { token: t }, 200, null, "ballot before any");
  assert(r.body === `{"type":"ballot","poll":${P.single},"options":[]}`, "empty ballot: " + r.body);
  r = await expectHttp(cfg.base, "POST", P.single, { token: t, body: { option: 2, ref: "h1" } }, 200, null, "vote");
  assert(r.json.type === "voted" && r.json.result === "cast" && r.json.ref === "h1" &&
         JSON.stringify(r.json.options) === "[2]", "voted: " + r.body);
  r = await expectHttp(cfg.base, "POST", P.single, { token: t, body: { option: 2 } }, 200, null, "the same again");
  assert(r.json.result === "unchanged", "unchanged: " + r.body);
  r = await expectHttp(cfg.base, "GET", P.single, { token: t }, 200, null, "ballot");
  assert(r.body === `{"type":"ballot","poll":${P.single},"options":[2]}`, "ballot [2]: " + r.body);
  r = await expectHttp(cfg.base, "POST", P.multi, { token: t, body: { options: [2, 3] } }, 200, null, "multi vote");
  assert(JSON.stringify(r.json.options) === "[2,3]", "multi options: " + r.body);
  r = await expectHttp(cfg.base, "DELETE", P.single, { token: t }, 200, null, "retract");
  assert(r.json.result === "retracted", "retracted: " + r.body);
  r = await expectHttp(cfg.base, "DELETE", P.single, { token: t }, 200, null, "retract again");
  assert(r.json.result === "none", "none: " + r.body);
  await expectHttp(cfg.base, "POST", P.single, { token: t, body: "not json" }, 400, "bad_request", "body not JSON");
  await expectHttp(cfg.base, "POST", P.single, { token: t, body: { option: "1" } }, 400, "bad_request", "option a string");
  await expectHttp(cfg.base, "POST", P.single, { token: t }, 400, "bad_request", "no body");
  await expectHttp(cfg.base, "POST", "x", { token: t, body: { option: 1 } }, 400, "bad_request", "poll id x");
  await expectHttp(cfg.base, "POST", P.single, { token: t, body: { option: 7 } }, 400, "bad_vote", "unknown option");
  await expectHttp(cfg.base, "POST", P.single, { body: { option: 1 } }, 403, "forbidden", "no token");
  await expectHttp(cfg.base, "GET", P.single, {}, 403, "forbidden", "ballot without a token");
  await expectHttp(cfg.base, "POST", P.single, { token: token(cfg.secret, { polls: "*" }), body: { option: 1 } },
                   403, "forbidden", "a token without vote");
  await expectHttp(cfg.base, "POST", P.single, { token: token("wrong", { sub: "x", vote: "*" }), body: { option: 1 } },
                   401, "unauthorized", "a forged token");
  await expectHttp(cfg.base, "POST", P.single, { token: token(cfg.secret, { sub: "x", vote: "*", exp: now() - 5 }),
                   body: { option: 1 } }, 401, "unauthorized", "an expired token");
  await expectHttp(cfg.base, "POST", 987654321, { token: t, body: { option: 1 } }, 404, "not_found", "unknown poll");
  await expectHttp(cfg.base, "GET", 987654321, { token: t }, 404, "not_found", "ballot in an unknown poll");
  await expectHttp(cfg.base, "POST", P.closed, { token: t, body: { option: 1 } }, 409, "closed", "closed poll");
  await expectHttp(cfg.base, "POST", P.scheduled, { token: t, body: { option: 1 } }, 409, "not_open", "scheduled poll");
  await expectHttp(cfg.base, "POST", P.nochange, { token: t, body: { option: 1 } }, 200, null, "a first vote");
  await expectHttp(cfg.base, "POST", P.nochange, { token: t, body: { option: 2 } }, 409, "change_not_allowed", "a change");
  await expectHttp(cfg.base, "DELETE", P.nochange, { token: t }, 409, "change_not_allowed", "a retraction");
  r = await request(cfg.base, "POST", "/voters");
  assert(r.status === 404 && r.json && r.json.code === "not_found", "POST /voters without --anonymous-votes: " + r.status);
  console.log("ok: POST /voters without --anonymous-votes -> 404");

  /* the order of one connection's votes: answers in order, each as if alone */
  const carol = await open(wsUrl(cfg.base, token(cfg.secret, { sub: "carol", vote: "*" })));
  let ballot = null;
  const plan = [];
  for (let i = 0; i < 71; i++) {
    const kind = i % 7 === 6 ? "retract" : "vote";
    const opt = kind === "vote" ? 1 + ((i * 5) % 3 === 0 ? 1 : 0) : null;
    let want;
    if (kind === "retract") { want = ballot === null ? "none" : "retracted"; ballot = null; }
    else { want = ballot === null ? "cast" : ballot === opt ? "unchanged" : "changed"; ballot = opt; }
    plan.push({ msg: kind === "vote" ? { type: "vote", poll: P.single, option: opt, ref: "o" + i }
                                     : { type: "retract", poll: P.single, ref: "o" + i }, want, ballot });
  }
  for (const p of plan) carol.send(p.msg);
  for (const p of plan) {
    const a = await carol.until(x => x.type === "voted" || x.type === "error", 10000);
    assert(a.type === "voted" && a.ref === p.msg.ref && a.result === p.want &&
           JSON.stringify(a.options) === JSON.stringify(p.ballot === null ? [] : [p.ballot]),
           `in order: expected ${p.msg.ref} ${p.want} ${p.ballot}, got ${JSON.stringify(a)}`);
  }
  console.log("ok: 71 votes and retractions of one connection answered in order, each as if alone");
  console.log("FINAL_CAROL " + (ballot === null ? "none" : ballot));

  /* clients that go away with votes queued and in flight: the others are still answered */
  for (let round = 0; round < 3; round++) {
    const gone = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      open(wsUrl(cfg.base, token(cfg.secret, { sub: "gone-" + (i % 4), vote: "*" })))));
    for (const g of gone) {
      for (let j = 0; j < 40; j++) g.send({ type: "vote", poll: P.single, option: 1 + (j % 2), ref: "g" + j });
      g.ws.terminate();
    }
  }
  await expectWs(c, { type: "vote", poll: P.single, option: 1 }, "voted", "after clients left with votes on their way");

  /* rate_limited: --vote-rate 1 (burst 2) per voter, 10 (burst 20) per address */
  const slow = await open(wsUrl(cfg.rateBase, token(cfg.secret, { sub: "quick", vote: "*" })));
  await expectWs(slow, { type: "vote", poll: P.single, option: 1 }, "voted", "rate: first");
  await expectWs(slow, { type: "vote", poll: P.single, option: 2 }, "voted", "rate: second");
  m = await expectWs(slow, { type: "vote", poll: P.single, option: 1 }, "rate_limited", "rate: third within a second");
  r = await expectHttp(cfg.rateBase, "POST", P.single, { token: token(cfg.secret, { sub: "quick", vote: "*" }),
    body: { option: 1 } }, 429, "rate_limited", "rate: over HTTP");
  assert(Number(r.headers["retry-after"]) >= 1, "Retry-After: " + r.headers["retry-after"]);
  assert(!slow.closeCode, "a rate-limited vote does not close the connection");
  await sleep(1100);
  await expectWs(slow, { type: "vote", poll: P.single, option: 2 }, "voted", "rate: a second later");
  let limited = 0;
  const all30 = await Promise.all(Array.from({ length: 30 }, (_, i) =>
    request(cfg.rateBase, "POST", `/polls/${P.single}/vote`,
            { token: token(cfg.secret, { sub: "addr" + i, vote: "*" }), body: { option: 1 } })));
  for (const x of all30) {
    if (x.status === 429) { limited++; assert(x.json.code === "rate_limited" && x.headers["retry-after"], "429 body"); }
    else assert(x.status === 200, "address rate: " + x.status + " " + x.body);
  }
  /* 17 of the address's burst of 20 are left; a slow machine refills some meanwhile */
  assert(limited >= 3 && limited <= 13, `30 voters from one address at once: ${limited} limited (burst 20)`);
  console.log(`ok: 30 voters of one address: ${limited} rate_limited`);

  /* votes count towards the connection's 20 messages a second (burst 80) */
  const flood = await open(wsUrl(cfg.base, token(cfg.secret, { sub: "flood", vote: "*" })));
  for (let i = 0; i < 100; i++) flood.send({ type: "vote", poll: P.single, option: 1 + (i % 2), ref: "f" + i });
  m = await flood.until(x => x.type === "error" && x.code === "rate_limited", 10000);
  assert(!("ref" in m) && /messages per second/.test(m.message), "the message rate: " + JSON.stringify(m));
  assert(await flood.closed === 1008, "closed with 1008 after the message rate");
  console.log("ok: 100 votes at once run the connection's message rate dry: rate_limited, then a close");

  /* unavailable: a daemon whose Postgres is away */
  const dead = await open(wsUrl(cfg.deadBase, all));
  const t0 = Date.now();
  await expectWs(dead, { type: "vote", poll: P.single, option: 1 }, "unavailable", "postgres away");
  assert(Date.now() - t0 < 1000, "unavailable at once");
  await expectHttp(cfg.deadBase, "POST", P.single, { token: all, body: { option: 1 } }, 503, "unavailable", "postgres away");
  for (const x of [c, anon, readOnly, onlyMulti, soon, alice, carol, slow, dead]) x.close();
});
