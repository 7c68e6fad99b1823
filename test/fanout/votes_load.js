#!/usr/bin/env node
/*
 * votes_load.js BASE SECRET POLL OPTIONS CLIENTS SECONDS OUT — CLIENTS
 * WebSocket clients, each its own voter (signed with SECRET), vote one
 * after another as fast as answers come, but at most one every 60 ms
 * (within a connection's 20 messages a second): the k-th vote of a voter chooses
 * option 1 + k % OPTIONS, so that consecutive ballots differ.  A client
 * whose connection drops, or whose vote goes unanswered for 3 s, reconnects
 * (with backoff) and goes on with its next vote.  Until SECONDS have
 * passed.  Every voted answer must carry the ballot of its vote.  Half the
 * clients (the odd ones) are casters instead: before each vote they send
 * an auth message with a token of a new voter (load-I-K), so that each of
 * their votes is a new ballot that must stay.  OUT gets per voter the last
 * acknowledged k and the ks sent after it (in doubt: unanswered or
 * refused), the casters' acknowledged votes, and the totals.
 */
"use strict";
const fs = require("fs");
const WebSocket = require("ws");
const { token } = require("./votelib");
const [base, secret, pollArg, optArg, nArg, secArg, out] = process.argv.slice(2);
const poll = Number(pollArg), nopt = Number(optArg), n = Number(nArg);
const deadline = Date.now() + Number(secArg) * 1000;
const url = base.replace(/^http/, "ws") + "/ws";
const sleep = ms => new Promise(r => setTimeout(r, ms));
const totals = { acked: 0, unavailable: 0, unanswered: 0, other: 0, errors: [] };
const voters = {}, casts = {};

const tokenOf = voter => token(secret, { sub: voter, vote: "*", exp: Math.floor(Date.now() / 1000) + 3600 });

function connect(voter) {
  return new Promise(resolve => {
    const ws = new WebSocket(url + "?token=" + tokenOf(voter));
    ws.on("open", () => resolve(ws));
    ws.on("error", () => resolve(null));
  });
}

function answer(ws, ref) {
  return new Promise(resolve => {
    const done = v => { clearTimeout(t); ws.off("message", onMsg); ws.off("close", onClose); resolve(v); };
    const onMsg = data => {
      const m = JSON.parse(data);
      if ((m.type === "voted" || m.type === "error") && m.ref === ref) done(m);
    };
    const onClose = () => done(null);
    const t = setTimeout(() => done(null), 3000);
    ws.on("message", onMsg);
    ws.on("close", onClose);
  });
}

async function client(i) {
  const voter = "load-" + i;
  const caster = i % 2 === 1;
  const st = caster ? { lastAcked: -1, after: [] } : (voters[voter] = { lastAcked: -1, after: [] });
  const acked = caster ? (casts[voter] = []) : null;
  let ws = null, k = 0, backoff = 50;
  while (Date.now() < deadline) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      ws = await connect(voter);
      if (!ws) { await sleep(backoff); backoff = Math.min(backoff * 2, 500); continue; }
      backoff = 50;
    }
    const pace = sleep(caster ? 120 : 60);
    const ref = String(k), opt = 1 + (k % nopt);
    const wait = answer(ws, ref);
    try {
      if (caster) ws.send(JSON.stringify({ type: "auth", token: tokenOf(voter + "-" + k) }));
      ws.send(JSON.stringify({ type: "vote", poll, option: opt, ref }));
    } catch (e) { /* closed */ }
    const m = await wait;
    if (m && m.type === "voted") {
      if (JSON.stringify(m.options) !== JSON.stringify([opt]))
        totals.errors.push(`${voter} vote ${k}: ${JSON.stringify(m)}`);
      st.lastAcked = k;
      st.after = [];
      totals.acked++;
      if (caster) acked.push(k);
    } else {
      st.after.push(k);
      if (!m) { totals.unanswered++; try { ws.terminate(); } catch (e) { /* gone */ } ws = null; }
      else if (m.code === "unavailable") { totals.unavailable++; await sleep(20); }
      else { totals.other++; totals.errors.push(`${voter} vote ${k}: ${JSON.stringify(m)}`); }
    }
    k++;
    await pace;
  }
  if (ws) ws.terminate();
}

Promise.all(Array.from({ length: n }, (_, i) => client(i))).then(() => {
  fs.writeFileSync(out, JSON.stringify({ totals, voters, casts, nopt }));
  console.error(`load: ${totals.acked} acknowledged, ${totals.unavailable} unavailable, ` +
                `${totals.unanswered} unanswered, ${totals.other} other`);
  process.exit(totals.errors.length ? 1 : 0);
});
