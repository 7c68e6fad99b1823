#!/usr/bin/env node
/*
 * client_votes.js BASE SINGLE_POLL MULTI_POLL CLOSED_POLL — the shipped
 * fanout/poll-client.js votes against a daemon started with
 * --anonymous-votes:
 *   - anonymousVoter() asks POST /voters once and keeps the token in the
 *     storage it is given; a second client on the same storage is the same
 *     voter without asking again;
 *   - vote() and retract() settle on the daemon's answer: cast, unchanged,
 *     changed, retracted, none, a multi-choice ballot; each with its own ref;
 *     ballot() follows; poll.ballots agrees;
 *   - refusals reject with an Error carrying code, message, poll and ref:
 *     not_found, bad_vote, closed, and rate_limited in a burst beyond the
 *     voter's rate (the daemon runs with --vote-rate 20);
 *   - a vote recorded but whose answer is lost when the connection drops (a
 *     TCP proxy forwards the vote, swallows the answer, then cuts the
 *     connection) is resent after the reconnect and answered once, as
 *     `unchanged`; two such votes are resent in order (the ballot goes back
 *     to the first and on to the second: both `changed`); poll.ballots holds
 *     the voter's last choice, once;
 *   - in the polling fallback votes go to POST/DELETE /polls/ID/vote.
 */
"use strict";
const { execFileSync } = require("child_process");
const net = require("net");
const path = require("path");
const WebSocket = require("ws");
const PollClient = require(path.join(__dirname, "../../fanout/poll-client.js"));
const { assert, sleep, main } = require("./wsprobe");

const [base, singleArg, multiArg, closedArg] = process.argv.slice(2);
const single = Number(singleArg), multi = Number(multiArg), closed = Number(closedArg);
const sql = q => execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();

function memoryStorage() {
  const m = new Map();
  return { getItem: k => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

/* a fetch that counts POST /voters */
let voterPosts = 0;
function countingFetch(url, init) {
  if (/\/voters$/.test(url) && init && init.method === "POST") voterPosts++;
  return fetch(url, init);
}

/* the WebSocket handed to PollClient records every `voted` and `error` by ref, across reconnections */
const answers = {};
function recordingWebSocket(url) {
  const ws = new WebSocket(url);
  ws.on("message", d => {
    const m = JSON.parse(d);
    if ((m.type === "voted" || m.type === "error") && m.ref !== undefined) (answers[m.ref] = answers[m.ref] || []).push(m);
  });
  return ws;
}

function newClient(storage, b = base) {
  const c = new PollClient({ base: b, WebSocket: recordingWebSocket, fetch: countingFetch, storage });
  c.subscribe(single);
  return c;
}

function waitMode(client, mode, ms = 10000) {
  return new Promise((resolve, reject) => {
    if (client.mode === mode) return resolve();
    const t = setTimeout(() => reject(new Error(`client not ${mode} within ${ms} ms (is ${client.mode})`)), ms);
    const prev = client.onconnection;
    client.onconnection = m => { if (prev) prev(m); if (m === mode) { clearTimeout(t); client.onconnection = prev; resolve(); } };
  });
}

/* p, or a failure naming what did not happen within ms */
function within(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(what + " within " + ms + " ms")), ms); })])
    .finally(() => clearTimeout(t));
}

async function rejection(p) {
  try { await p; } catch (e) { return e; }
  throw new Error("expected a rejection, got an answer");
}

function ballotsOf(poll, voter) {
  return sql(`SELECT coalesce(string_agg(option_id::text, ',' ORDER BY option_id), '')
              FROM poll.ballots WHERE poll_id = ${poll} AND voter = '${voter.replace(/'/g, "''")}'`);
}

/* the voter behind a token: its sub claim (the payload is not secret, only signed) */
function subOf(token) {
  const parts = token.split(".");
  assert(parts.length === 3, "the voter token is not a JWT: " + token);
  return JSON.parse(Buffer.from(parts[1], "base64url").toString()).sub;
}

/* a TCP proxy in front of the daemon: `swallow` drops what the daemon sends, cut() drops the connections */
function proxy(port) {
  const target = new URL(base);
  const socks = new Set();
  const p = { swallow: false, cut() { for (const s of socks) s.destroy(); socks.clear(); } };
  p.server = net.createServer(c => {
    const u = net.connect(Number(target.port), target.hostname);
    socks.add(c); socks.add(u);
    c.on("data", d => u.write(d));
    u.on("data", d => { if (!p.swallow) c.write(d); });
    for (const s of [c, u]) {
      s.on("error", () => {});
      s.on("close", () => { c.destroy(); u.destroy(); socks.delete(c); socks.delete(u); });
    }
  });
  return new Promise(r => p.server.listen(port, "127.0.0.1", () => r(p)));
}

main(async () => {
  /* 1. one identity, kept */
  const storage = memoryStorage();
  const a = newClient(storage);
  const token = await a.anonymousVoter();
  assert(typeof token === "string" && token.length > 20, "no voter token");
  assert(storage.getItem("poll-voter-token") === token, "the token is not kept in the storage");
  const voter = subOf(token);
  assert(/^anon:/.test(voter), "an anonymous voter's sub starts with anon:, got " + voter);
  const b = newClient(storage);
  assert(await b.anonymousVoter() === token, "a second client on the same storage got another token");
  assert(voterPosts === 1, `POST /voters was called ${voterPosts} times for one storage`);
  b.close();
  console.log("ok: anonymousVoter() keeps one identity in its storage (" + voter + ")");
  await waitMode(a, "websocket");

  /* 2. the answers */
  assert((await a.ballot(single)).length === 0, "a new voter has a ballot");
  const refs = new Set();
  const expect = async (p, result, options) => {
    const v = await p;
    assert(v.type === "voted" && (v.poll === single || v.poll === multi), "not a voted message: " + JSON.stringify(v));
    assert(v.result === result, `expected ${result}, got ${JSON.stringify(v)}`);
    assert(JSON.stringify(v.options) === JSON.stringify(options), `options ${JSON.stringify(v.options)}, expected ${JSON.stringify(options)}`);
    assert(typeof v.ref === "string" && !refs.has(v.ref), "ref missing or reused: " + v.ref);
    refs.add(v.ref);
    return v;
  };
  await expect(a.vote(single, 2), "cast", [2]);
  assert(ballotsOf(single, voter) === "2", "poll.ballots does not hold the cast vote");
  assert(JSON.stringify(await a.ballot(single)) === "[2]", "ballot() does not show the vote");
  await expect(a.vote(single, 2), "unchanged", [2]);
  await expect(a.vote(single, 3), "changed", [3]);
  assert(ballotsOf(single, voter) === "3", "poll.ballots does not hold the changed vote");
  await expect(a.retract(single), "retracted", []);
  assert(ballotsOf(single, voter) === "", "the retracted ballot is still in poll.ballots");
  assert((await a.ballot(single)).length === 0, "ballot() shows a retracted vote");
  await expect(a.retract(single), "none", []);
  await expect(a.vote(multi, [3, 1]), "cast", [1, 3]);
  assert(ballotsOf(multi, voter) === "1,3", "poll.ballots does not hold the multi-choice ballot");
  console.log("ok: vote()/retract() resolve with cast, unchanged, changed, retracted, none and a multi-choice cast");

  /* 3. refusals */
  const refused = async (p, code, poll) => {
    const e = await rejection(p);
    assert(e instanceof Error, "not an Error: " + e);
    assert(e.code === code, `expected code ${code}, got ${e.code} (${e.message})`);
    assert(e.poll === poll, `error for poll ${e.poll}, expected ${poll}`);
    assert(typeof e.ref === "string" && !refs.has(e.ref), "error ref missing or reused: " + e.ref);
    assert(typeof e.message === "string" && e.message.length > 0, "error without message");
    refs.add(e.ref);
  };
  await refused(a.vote(987654321, 1), "not_found", 987654321);
  await refused(a.vote(single, 99), "bad_vote", single);
  await refused(a.vote(closed, 1), "closed", closed);
  console.log("ok: not_found, bad_vote and closed reject with code, message, poll and ref");

  /* 4. a burst beyond the voter's rate (the daemon runs with --vote-rate 20: a burst of 40) */
  const burst = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => a.vote(single, 1 + (i % 3))));
  const limited = burst.filter(r => r.status === "rejected" && r.reason.code === "rate_limited").length;
  const other = burst.filter(r => r.status === "rejected" && r.reason.code !== "rate_limited");
  assert(limited > 0, "50 votes at once from one voter were never rate_limited");
  assert(other.length === 0, "unexpected refusal: " + (other[0] && other[0].reason.code));
  console.log(`ok: a burst of 50 votes: ${50 - limited} answered, ${limited} rate_limited`);
  a.close();
  await sleep(2500);      /* the voter's rate refills */

  /* 5. resend after a reconnect */
  const px = await proxy(0);
  const pbase = "http://127.0.0.1:" + px.server.address().port;
  const c = newClient(storage, pbase);
  assert(await c.anonymousVoter() === token, "the third client is another voter");
  await waitMode(c, "websocket");
  const before = voterPosts;
  /* 5a. one vote: recorded, its answer lost; resent, it is `unchanged` */
  const lose = async () => {
    px.cut();
    px.swallow = false;
    await waitMode(c, "reconnecting");
    await waitMode(c, "websocket");
  };
  const recorded = async (want, what) => {
    for (let i = 0; i < 100 && ballotsOf(single, voter) !== want; i++) await sleep(50);
    assert(ballotsOf(single, voter) === want, `${what}: poll.ballots holds "${ballotsOf(single, voter)}", not "${want}"`);
  };
  const answeredOnce = ref => assert((answers[ref] || []).length === 1,
                                     `vote ${ref} was answered ${(answers[ref] || []).length} times`);
  px.swallow = true;
  const v0 = c.vote(single, 2);
  await recorded("2", "the vote did not reach the daemon");
  await sleep(200);
  assert(Object.keys(answers).every(ref => !ref.startsWith(c.refPrefix)), "an answer got through the proxy");
  await lose();
  const m0 = await within(v0, 10000, "no answer to the vote after the reconnect");
  assert(m0.result === "unchanged" && JSON.stringify(m0.options) === "[2]", "the resent vote: " + JSON.stringify(m0));
  answeredOnce(m0.ref);
  console.log("ok: a vote recorded but unanswered when the connection dropped is resent and answered once, unchanged");

  /* 5b. two votes, the answers lost: resent in order, the last one wins */
  px.swallow = true;
  const v1 = c.vote(single, 1);
  const v2 = c.vote(single, 3);
  await recorded("3", "the two votes did not reach the daemon");
  await sleep(200);
  assert(Object.keys(answers).every(ref => ref === m0.ref || !ref.startsWith(c.refPrefix)), "an answer got through the proxy");
  await lose();
  const [m1, m2] = await within(Promise.all([v1, v2]), 10000, "no answers to the two votes after the reconnect");
  assert(m1.result === "changed" && JSON.stringify(m1.options) === "[1]", "first resent vote: " + JSON.stringify(m1));
  assert(m2.result === "changed" && JSON.stringify(m2.options) === "[3]", "second resent vote: " + JSON.stringify(m2));
  answeredOnce(m1.ref);
  answeredOnce(m2.ref);
  assert(ballotsOf(single, voter) === "3", "after the resend poll.ballots holds " + ballotsOf(single, voter));
  assert(sql(`SELECT count(*) FROM poll.ballots WHERE poll_id = ${single} AND voter = '${voter}'`) === "1",
         "the voter has more than one ballot row");
  assert(voterPosts === before, "the reconnect asked for a new voter token");
  console.log("ok: two votes unanswered when the connection dropped were resent in order and answered once each; poll.ballots holds the last, once");
  c.close();
  px.server.close();

  /* 6. without a WebSocket (the polling fallback) votes go over HTTP, with the same outcomes */
  const h = new PollClient({ base, transport: "polling", fetch: countingFetch, storage });
  h.subscribe(single);
  await h.anonymousVoter();
  await waitMode(h, "polling");
  const hv = await h.vote(single, 2);
  assert(hv.type === "voted" && hv.result === "changed" && JSON.stringify(hv.options) === "[2]",
         "HTTP vote: " + JSON.stringify(hv));
  assert(ballotsOf(single, voter) === "2", "after the HTTP vote poll.ballots holds " + ballotsOf(single, voter));
  const he = await rejection(h.vote(closed, 1));
  assert(he.code === "closed" && he.poll === closed && typeof he.ref === "string", "HTTP refusal: " + he.code);
  const hr = await h.retract(single);
  assert(hr.result === "retracted", "HTTP retraction: " + JSON.stringify(hr));
  assert(ballotsOf(single, voter) === "", "the HTTP retraction left a ballot");
  h.close();
  console.log("ok: in the polling fallback, vote(), a refusal and retract() go over HTTP with the same outcomes");
});
