#!/usr/bin/env node
/*
 * token_expiry.js BASE SECRET POLL — a subscription lives only as long as the
 * token that granted it: at exp a WebSocket client gets `error`
 * `unauthorized` for each of its polls and no further message for them; an
 * SSE stream gets the error event, then is closed.  A fresh token (`auth`)
 * and a new subscribe bring the poll back.  Votes are cast by the caller
 * (stdin gets "vote" lines: this script prints "VOTE" when it wants one).
 */
"use strict";
const crypto = require("crypto");
const http = require("http");
const { open, assert, main, sleep } = require("./wsprobe");
const [base, secret, pollArg] = process.argv.slice(2);
const poll = Number(pollArg);
const b64 = x => Buffer.from(JSON.stringify(x)).toString("base64url");
function token(claims) {
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return head + "." + crypto.createHmac("sha256", secret).update(head).digest("base64url");
}
const soon = () => token({ polls: [poll], exp: Math.floor(Date.now() / 1000) + 2 });

/* asks the shell for a committed vote, waits for its answer on stdin */
const lines = [];
process.stdin.on("data", d => lines.push(...String(d).split("\n").filter(Boolean)));
async function vote() {
  const n = lines.length;
  console.log("VOTE");
  for (let i = 0; i < 100 && lines.length === n; i++) await sleep(50);
  assert(lines.length > n, "the shell did not vote");
}

function sse(path) {
  return new Promise((resolve, reject) => {
    const s = { text: "", ended: false };
    http.get(base + path, res => {
      s.status = res.statusCode;
      res.on("data", d => s.text += d);
      res.on("end", () => s.ended = true);
      res.on("error", () => s.ended = true);
      resolve(s);
    }).on("error", reject);
  });
}

main(async () => {
  const ws = await open(base.replace(/^http/, "ws") + "/ws?token=" + soon());
  const stream = await sse("/polls/" + poll + "/events?token=" + soon());
  ws.send({ type: "subscribe", poll });
  assert((await ws.next()).type === "snapshot", "no snapshot over WS");
  await sleep(300);
  assert(stream.status === 200 && /"type":"snapshot"/.test(stream.text), "no snapshot over SSE");

  const err = await ws.next(4000);
  assert(err.type === "error" && err.code === "unauthorized" && err.poll === poll,
    "WS: expected unauthorized for poll " + poll + " at exp, got " + JSON.stringify(err));
  // the same 1 s sweep ends both; under ASan on a busy machine the SSE close can come later
  for (let t = 0; t < 30 && !stream.ended; t++) await sleep(100);
  assert(/"code":"unauthorized"/.test(stream.text), "SSE: no unauthorized event at exp: " + stream.text);
  assert(stream.ended, "SSE: the stream was not closed within 3 s of the unauthorized event");

  const after = [];
  ws.ws.on("message", d => after.push(String(d)));
  await vote();
  await sleep(800);
  assert(after.length === 0, "WS: a message after exp: " + after[0]);

  ws.send({ type: "auth", token: token({ polls: [poll], exp: Math.floor(Date.now() / 1000) + 600 }) });
  ws.send({ type: "subscribe", poll });
  assert((await ws.next()).type === "snapshot", "no snapshot after a fresh token");
  console.log("ok: expired tokens end their subscriptions (WS and SSE); a fresh one resubscribes");
  process.exit(0);
});
