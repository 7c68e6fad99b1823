#!/usr/bin/env node
/*
 * idle_hold.js — holds one WebSocket and one SSE stream on a quiet poll
 * (through a proxy) and says whether the proxy let them live.
 *
 *   node idle_hold.js BASE POLL SECONDS survive|drop
 *
 * survive: both connections are still open after SECONDS, each got its
 *          snapshot and at least SECONDS/2 keepalives (pings, comment lines);
 * drop:    both were closed within SECONDS, and not before 2 s (a proxy's
 *          idle timeout, not a refusal).
 * Prints one line of figures; exits 1 with the reason on a mismatch.
 */
"use strict";
const http = require("http");
const WebSocket = require("ws");

const [base, poll, secs, expect] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
const t0 = Date.now();
const ws = { pings: 0, snapshot: false, closedAt: null };
const sse = { comments: 0, snapshot: false, closedAt: null };

const sock = new WebSocket(base.replace(/^http/, "ws") + "/ws");
sock.on("open", () => sock.send(JSON.stringify({ type: "subscribe", poll })));
sock.on("message", d => { if (JSON.parse(d).type === "snapshot") ws.snapshot = true; });
sock.on("ping", () => ws.pings++);
sock.on("close", () => { if (ws.closedAt === null) ws.closedAt = Date.now() - t0; });
sock.on("error", () => {});

const req = http.get(base + "/polls/" + poll + "/events", res => {
  let buf = "";
  res.on("data", d => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith(":")) sse.comments++;
      else if (line.startsWith("data:") && JSON.parse(line.slice(5)).type === "snapshot") sse.snapshot = true;
    }
  });
  res.on("close", () => { if (sse.closedAt === null) sse.closedAt = Date.now() - t0; });
});
req.on("error", () => { if (sse.closedAt === null) sse.closedAt = Date.now() - t0; });

setTimeout(() => {
  const figures = `WebSocket ${JSON.stringify(ws)}, SSE ${JSON.stringify(sse)}`;
  const problems = [];
  if (expect === "survive") {
    if (ws.closedAt !== null) problems.push(`the WebSocket was closed after ${ws.closedAt} ms`);
    if (sse.closedAt !== null) problems.push(`the SSE stream was closed after ${sse.closedAt} ms`);
    if (!ws.snapshot || !sse.snapshot) problems.push("a connection got no snapshot");
    if (ws.pings < secs / 2) problems.push(`${ws.pings} pings in ${secs} s`);
    if (sse.comments < secs / 2) problems.push(`${sse.comments} keepalive comments in ${secs} s`);
  } else {
    for (const [name, c] of [["WebSocket", ws], ["SSE stream", sse]]) {
      if (c.closedAt === null) problems.push(`the ${name} was still open after ${secs} s`);
      else if (c.closedAt < 2000) problems.push(`the ${name} was closed after ${c.closedAt} ms, before any idle timeout`);
    }
  }
  if (problems.length) {
    console.error(`idle connections (${expect}): ${problems.join("; ")} (${figures})`);
    process.exit(1);
  }
  console.log(`ok (${expect}): ${figures}`);
  process.exit(0);
}, secs * 1000);
