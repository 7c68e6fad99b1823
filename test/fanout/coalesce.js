#!/usr/bin/env node
/*
 * coalesce.js BASE THROTTLE_MS — versions never repeat or go backwards,
 * at most one message per poll per throttle window, the latest state wins,
 * a status change and a tally change merged in one window arrive as one
 * snapshot, and status changes by the clock are pushed.
 */
"use strict";
const { execFileSync, spawn } = require("child_process");
const { open, assert, sleep, main } = require("./wsprobe");
const [base, throttleArg] = process.argv.slice(2);
const throttle = Number(throttleArg);
const ws = base.replace(/^http/, "ws") + "/ws";

const sql = q => execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();
/* asynchronous, so that this process keeps reading (and timing) messages meanwhile */
const sqlAsync = q => new Promise((resolve, reject) => {
  const ps = spawn("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  ps.stdout.on("data", d => out += d);
  ps.on("close", code => code === 0 ? resolve(out.trim()) : reject(new Error("psql failed: " + q)));
});

/* one psql session kept open: a statement runs within milliseconds of the call */
function psqlSession() {
  const ps = spawn("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1"], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "", waiter = null;
  ps.stdout.on("data", d => {
    out += d;
    const i = out.indexOf("__done__\n");
    if (i >= 0 && waiter) { const w = waiter; waiter = null; const r = out.slice(0, i); out = out.slice(i + 9); w(r.trim()); }
  });
  ps.on("close", code => { if (waiter) throw new Error("psql exited with " + code); });
  return {
    run: q => new Promise(resolve => { waiter = resolve; ps.stdin.write(q + ";\n\\echo __done__\n"); }),
    close: () => ps.stdin.end(),
  };
}

/* collects every message with its arrival time */
function record(c) {
  const log = [];
  c.ws.on("message", d => log.push({ t: Date.now(), m: JSON.parse(d) }));
  return log;
}

main(async () => {
  /* 1. a burst of folds: coalesced, latest wins, versions strictly increase */
  const p = Number(sql("SELECT poll.create_poll('Coalesce me', ARRAY['a','b','c'])"));
  const c = await open(ws);
  const log = record(c);
  c.send({ type: "subscribe", poll: p });
  await sleep(300);
  const folds = 150;
  await sqlAsync(`DO $$ BEGIN FOR i IN 1..${folds} LOOP
         PERFORM poll.cast_vote(${p}, 'burst-' || i, 1 + i % 3); PERFORM poll.fold(); COMMIT;
       END LOOP; END $$`);
  await sleep(throttle * 3 + 500);
  const final = sql(`SELECT string_agg(votes::text, ',' ORDER BY option_id) FROM poll.results WHERE poll_id = ${p}`);
  const version = Number(sql(`SELECT version FROM poll.tally WHERE poll_id = ${p}`));
  const msgs = log.filter(x => x.m.poll === p);
  assert(msgs[0].m.type === "snapshot", "first message is not a snapshot: " + JSON.stringify(msgs[0].m));
  /*
   * Arrival times carry this process's scheduling jitter: with a short
   * throttle a couple of gaps may look short; the message count over the
   * burst's span may not exceed one per window.
   */
  let short = 0;
  for (let i = 1; i < msgs.length; i++) {
    assert(msgs[i].m.version > msgs[i - 1].m.version,
           `version ${msgs[i].m.version} after ${msgs[i - 1].m.version}`);
    if (msgs[i].t - msgs[i - 1].t < throttle * 0.75) short++;
  }
  assert(short <= (throttle >= 200 ? 0 : 2), `${short} pairs of messages closer than the ${throttle} ms throttle`);
  const span = msgs[msgs.length - 1].t - msgs[1].t;
  assert(msgs.length - 2 <= span / throttle + 2,
         `${msgs.length - 1} updates in ${span} ms: more than one per ${throttle} ms window`);
  const last = msgs[msgs.length - 1].m;
  assert(last.version === version, `last version ${last.version}, poll.tally has ${version}`);
  assert(last.options.map(o => o.votes).join(",") === final, `last state ${JSON.stringify(last.options)} != ${final}`);
  assert(msgs.length < folds / 2, `${msgs.length} messages for ${folds} folds: not coalesced`);
  console.log(`ok: ${folds} folds -> ${msgs.length} messages, >= ${throttle} ms apart, versions increasing, last = poll.results`);

  /*
   * 2. a tally change and a status change in one window: one snapshot.  The
   * client's window opens when a message goes out to it: right after one
   * arrives, a vote (folded and committed) and then the close (committed
   * apart) land in that window, from a psql session already open.
   */
  await sleep(throttle + 100);
  const session = psqlSession();
  await session.run("SELECT 1");
  const n0 = log.filter(x => x.m.poll === p).length;
  await session.run(`SELECT poll.cast_vote(${p}, 'opener', 1); SELECT poll.fold()`);
  const deadline2 = Date.now() + 3000;
  while (log.filter(x => x.m.poll === p).length === n0 && Date.now() < deadline2) await sleep(1);
  const tOpened = Date.now();
  assert(log.filter(x => x.m.poll === p).length > n0, "the opening vote was not pushed");
  const n1 = log.filter(x => x.m.poll === p).length;
  await session.run(`DO $$ BEGIN PERFORM poll.cast_vote(${p}, 'late-voter', 2); PERFORM poll.fold(); COMMIT;
                     PERFORM poll.close_poll(${p}); END $$`);
  const took = Date.now() - tOpened;
  session.close();
  await sleep(throttle * 2 + 500);
  const after = log.filter(x => x.m.poll === p).slice(n1);
  const types = after.map(x => x.m.type).join(",");
  const closedVersion = Number(sql(`SELECT version FROM poll.tally WHERE poll_id = ${p}`));
  const finalVotes = sql(`SELECT string_agg(votes::text, ',' ORDER BY option_id) FROM poll.results WHERE poll_id = ${p}`);
  assert(after.length > 0, "neither the vote nor the close was pushed");
  const end = after[after.length - 1].m;
  assert(end.version === closedVersion, `last version ${end.version}, poll.tally ${closedVersion}`);
  if (took < throttle / 2) {
    /* both committed well inside the window the last message opened */
    assert(after.length === 1, `a vote and a close ${took} ms into a ${throttle} ms window came as ${types}`);
    assert(end.type === "snapshot" && end.status === "closed", "merged change is not a closed snapshot: " + JSON.stringify(end));
    assert(end.options.map(o => o.votes).join(",") === finalVotes,
           `merged snapshot ${JSON.stringify(end.options)} != poll.results ${finalVotes}`);
    console.log(`ok: a vote and a close ${took} ms into a window -> one snapshot (closed, with the vote)`);
  } else {
    /* this machine took half a window to commit: the vote may have gone out alone */
    assert(types === "snapshot" || types === "tally,status", "vote and close came as " + types);
    assert(end.status === "closed", "close not pushed: " + JSON.stringify(end));
    console.log(`ok: a vote and a close ${took} ms apart (over half the window) -> ${types}`);
  }
  c.close();

  /* 3. a subscribe with the current version gets nothing until the next change */
  const c2 = await open(ws);
  const log2 = record(c2);
  const q = Number(sql("SELECT poll.create_poll('Resume me', ARRAY['x','y'])"));
  const qv = Number(sql(`SELECT version FROM poll.tally WHERE poll_id = ${q}`));
  c2.send({ type: "subscribe", poll: q, version: qv });
  await sleep(throttle + 300);
  assert(log2.length === 0, "subscribe with the current version got " + JSON.stringify(log2.map(x => x.m)));
  sql(`SELECT poll.cast_vote(${q}, 'v', 1)`);
  sql("SELECT poll.fold()");
  await sleep(throttle + 500);
  assert(log2.length === 1 && log2[0].m.version === qv + 1, "after a change: " + JSON.stringify(log2.map(x => x.m)));
  console.log("ok: subscribe with the current version -> silence, then the next change");

  /* 4. the clock: a scheduled poll opens by itself and the change is pushed */
  const s = Number(sql("SELECT poll.create_poll('Opens soon', ARRAY['x','y'], opens_at => now() + interval '2 seconds')"));
  const c3 = await open(ws);
  const log3 = record(c3);
  c3.send({ type: "subscribe", poll: s });
  await sleep(300);
  assert(log3.length === 1 && log3[0].m.status === "scheduled", "scheduled poll: " + JSON.stringify(log3.map(x => x.m)));
  const deadline = Date.now() + 6000;
  while (Date.now() < deadline && !log3.some(x => x.m.status === "open")) await sleep(100);
  const opened = log3.find(x => x.m.status === "open");
  assert(opened, "the poll's opening was not pushed within 4 s of opens_at");
  assert(opened.m.type === "status" || opened.m.type === "snapshot", "opening came as " + opened.m.type);
  console.log(`ok: opens_at reached -> ${opened.m.type} "open" pushed`);
  process.exit(0);
});
