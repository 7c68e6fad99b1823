#!/usr/bin/env node
/*
 * unknown_flood.js BASE POLL CONNS IDS MAX_MS — CONNS WebSocket clients each
 * subscribe to IDS poll ids that do not exist; meanwhile a GET /polls/POLL
 * (a poll nobody watches yet) must answer within MAX_MS.  Every unknown id
 * still gets its not_found.  Prints the latency.
 */
"use strict";
const http = require("http");
const { open, assert, main, sleep } = require("./wsprobe");
const [base, pollArg, connsArg, idsArg, maxArg] = process.argv.slice(2);
const conns = Number(connsArg), ids = Number(idsArg), maxMs = Number(maxArg);

function get(path) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    http.get(base + path, res => {
      let body = ""; res.on("data", d => body += d);
      res.on("end", () => resolve({ status: res.statusCode, body, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    }).on("error", reject);
  });
}

main(async () => {
  const url = base.replace(/^http/, "ws") + "/ws";
  const clients = [];
  for (let c = 0; c < conns; c++) clients.push(await open(url));
  const notFound = clients.map(() => 0);
  clients.forEach((cl, c) => cl.ws.on("message", d => { if (/"not_found"/.test(d)) notFound[c]++; }));
  const base_id = 2000000000 + Math.floor(Math.random() * 1e6) * 1000;
  clients.forEach((cl, c) => {
    for (let i = 0; i < ids; i++) cl.send({ type: "subscribe", poll: base_id + c * ids + i });
  });
  await sleep(100);				/* the flood is in the daemon's hands */
  const r = await get("/polls/" + pollArg);
  assert(r.status === 200 && /"type":"snapshot"/.test(r.body), "GET /polls/" + pollArg + ": " + r.status);
  console.log("GET /polls/" + pollArg + " during a flood of " + conns * ids + " unknown ids: " + r.ms.toFixed(1) + " ms");
  const end = Date.now() + 60000;
  while (notFound.reduce((a, b) => a + b, 0) < conns * ids && Date.now() < end) await sleep(100);
  const total = notFound.reduce((a, b) => a + b, 0);
  assert(total === conns * ids, "not_found answers: " + total + " of " + conns * ids);
  assert(r.ms <= maxMs, "the legitimate GET took " + r.ms.toFixed(1) + " ms (limit " + maxMs + " ms)");
  console.log("ok: every unknown id got not_found; the legitimate GET was not held up");
  process.exit(0);
});
