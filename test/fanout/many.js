#!/usr/bin/env node
/*
 * many.js BASE POLL N — N WebSocket clients on one poll; prints, once every
 * client's votes equal the expected "v1,v2,..." read from stdin's first
 * line, how long that took.  Exit 1 if not all converge within 20 s.
 */
"use strict";
const WebSocket = require("ws");
const [base, pollArg, nArg] = process.argv.slice(2);
const poll = Number(pollArg), n = Number(nArg);
const states = new Array(n).fill(null);
let opened = 0;
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws");
  ws.on("open", () => { opened++; ws.send(JSON.stringify({ type: "subscribe", poll })); });
  ws.on("message", d => {
    const m = JSON.parse(d);
    if (m.poll !== poll || (states[i] && m.version <= states[i].version)) return;
    if (m.type === "snapshot" || m.type === "tally") states[i] = { version: m.version, votes: m.options.map(o => o.votes).join(",") };
  });
  ws.on("error", e => { console.error("client " + i + ": " + e.message); process.exit(1); });
}
let want = null;
process.stdin.on("data", d => { want = d.toString().trim(); });
const t0 = Date.now();
const timer = setInterval(() => {
  if (want === null) return;
  const done = states.filter(s => s && s.votes === want).length;
  if (done === n) { console.log(`ok: ${n} clients (${opened} opened) reached ${want} in ${Date.now() - t0} ms`); process.exit(0); }
  if (Date.now() - t0 > 60000) { console.error(`only ${done} of ${n} clients reached ${want}`); process.exit(1); }
}, 100);
