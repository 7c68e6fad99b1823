#!/usr/bin/env node
/*
 * throttle_check.js THROTTLE_MS LOG POLL FIRST_VERSION LAST_VERSION VOTE_MS
 *
 * Reads a client.js message log (ms type poll version length) and asserts,
 * for POLL, which changed from FIRST_VERSION to LAST_VERSION while votes
 * came for VOTE_MS:
 *  - the last message carries LAST_VERSION (the latest state won);
 *  - at most one message per throttle window: the updates after the first
 *    message number at most their span / THROTTLE_MS + 2 (arrival jitter);
 *  - versions came at least twice as fast as windows passed (else the test's
 *    votes were too slow to check anything), and the client got fewer
 *    messages than there were versions: updates were coalesced.
 * Prints one line; exits 1 with the reason otherwise.
 */
"use strict";
const fs = require("fs");
const [throttle, file, poll, first, last, voteMs] = process.argv.slice(2).map((x, i) => i === 1 ? x : Number(x));
const msgs = fs.readFileSync(file, "utf8").trim().split("\n").map(l => l.split(" "))
  .filter(([, type, p]) => Number(p) === poll && ["snapshot", "tally", "status"].includes(type))
  .map(([t, type, , v]) => ({ t: Number(t), type, v: Number(v) }));
const name = `${file.replace(/.*\//, "")} poll ${poll}`;
function fail(why) { console.error(`FAIL ${name}: ${why}`); process.exit(1); }

if (!msgs.length) fail("no message");
if (msgs[msgs.length - 1].v !== last) fail(`last version ${msgs[msgs.length - 1].v}, poll.tally has ${last}`);
const updates = msgs.filter(m => m.v > first);
const span = updates.length ? updates[updates.length - 1].t - updates[0].t : 0;
const windows = span / throttle;
if (updates.length - 1 > windows + 2)
  fail(`${updates.length} updates in ${span} ms: more than one per ${throttle} ms window`);
const versions = last - first;
if (versions < 2 * (voteMs / throttle + 2))
  fail(`test setup: ${versions} versions in ${voteMs} ms of votes, not 2 per ${throttle} ms window`);
if (updates.length >= versions) fail(`${updates.length} messages for ${versions} versions: not coalesced`);
console.log(`ok: ${name}: ${versions} versions in ${voteMs} ms -> ${updates.length} updates over ${span} ms ` +
            `(at most ${Math.floor(windows) + 3}), last = ${last}`);
