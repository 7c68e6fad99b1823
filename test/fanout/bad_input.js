#!/usr/bin/env node
/*
 * bad_input.js BASE POLL FIRST_OF_65 — every bad input gets its error or close.
 */
"use strict";
const { open, assert, sleep, main } = require("./wsprobe");
const [base, pollArg, firstArg] = process.argv.slice(2);
const ws = base.replace(/^http/, "ws") + "/ws";
const poll = Number(pollArg), first = Number(firstArg);

async function expectError(c, send, code, what, pollId) {
  c.send(send);
  const m = await c.next();
  assert(m.type === "error" && m.code === code, `${what}: expected error ${code}, got ${JSON.stringify(m)}`);
  assert(typeof m.message === "string" && m.message.length > 0, `${what}: error without a message`);
  if (pollId !== undefined) assert(m.poll === pollId, `${what}: error should carry poll ${pollId}: ${JSON.stringify(m)}`);
  console.log(`ok: ${what} -> ${code} (${m.message})`);
}

main(async () => {
  let c = await open(ws);
  await expectError(c, "{not json", "bad_request", "malformed JSON");
  await expectError(c, "[1,2]", "bad_request", "a JSON array");
  await expectError(c, { type: "frobnicate" }, "bad_request", "unknown type");
  await expectError(c, { poll: 1 }, "bad_request", "no type");
  await expectError(c, { type: "subscribe", poll: "abc" }, "bad_request", "non-numeric poll id");
  await expectError(c, { type: "subscribe", poll: "42" }, "bad_request", "poll id as a string");
  await expectError(c, { type: "subscribe", poll: -5 }, "bad_request", "negative poll id");
  await expectError(c, { type: "subscribe", poll: 1.5 }, "bad_request", "fractional poll id");
  await expectError(c, { type: "subscribe" }, "bad_request", "missing poll id");
  await expectError(c, { type: "subscribe", poll: poll, version: "x" }, "bad_request", "bad version", poll);
  await expectError(c, { type: "subscribe", poll: 987654321 }, "not_found", "unknown poll", 987654321);

  c.send({ type: "ping", id: "anything" });
  let m = await c.next();
  assert(m.type === "pong" && m.id === "anything", "ping: expected pong, got " + JSON.stringify(m));
  console.log("ok: ping -> pong");

  /* the connection still works after all that */
  c.send({ type: "subscribe", poll });
  m = await c.next();
  assert(m.type === "snapshot" && m.poll === poll, "subscribe after errors: " + JSON.stringify(m));
  c.close();

  /* 65 subscriptions, paced under the rate limit */
  c = await open(ws);
  for (let i = 0; i < 64; i++) c.send({ type: "subscribe", poll: first + i });  /* a resubscription burst */
  const got = new Set();
  while (got.size < 64) {
    m = await c.next(5000);
    assert(m.type === "snapshot", "64 subscriptions: unexpected " + JSON.stringify(m));
    got.add(m.poll);
  }
  await expectError(c, { type: "subscribe", poll: first + 64 }, "too_many_subscriptions",
                    "65th subscription", first + 64);
  c.close();

  /* a frame over 4 KiB closes with 1009 */
  c = await open(ws);
  c.send(JSON.stringify({ type: "ping", id: "x".repeat(5000) }));
  let code = await Promise.race([c.closed, sleep(3000).then(() => "open")]);
  assert(code === 1009, "5000-byte frame: expected close 1009, got " + code);
  console.log("ok: 5000-byte frame -> close 1009");

  /* exactly 4096 bytes is still fine */
  c = await open(ws);
  const pad = 4096 - JSON.stringify({ type: "subscribe", poll, pad: "" }).length;
  const big = JSON.stringify({ type: "subscribe", poll, pad: "y".repeat(pad) });
  assert(big.length === 4096, "test bug: frame is " + big.length);
  c.send(big);
  m = await c.next();
  assert(m.type === "snapshot", "4096-byte frame should be answered: " + JSON.stringify(m).slice(0, 80));
  console.log("ok: 4096-byte frame -> snapshot");
  c.close();

  /* more than 20 messages/s sustained: rate_limited, then a close */
  c = await open(ws);
  for (let i = 0; i < 200; i++) c.send({ type: "ping", id: i });
  m = await c.until(x => x.type === "error", 3000);
  assert(m.code === "rate_limited", "flood: expected rate_limited, got " + JSON.stringify(m));
  code = await Promise.race([c.closed, sleep(3000).then(() => "open")]);
  assert(code === 1008, "flood: expected close 1008 after rate_limited, got " + code);
  console.log("ok: 200 messages at once -> rate_limited, close 1008");

  /* 10 messages/s for 3 s stays under the limit */
  c = await open(ws);
  for (let i = 0; i < 30; i++) {
    c.send({ type: "ping", id: i });
    m = await c.next();
    assert(m.type === "pong", "10 msgs/s: expected pong, got " + JSON.stringify(m));
    await sleep(100);
  }
  c.close();
  console.log("ok: 10 messages/s for 3 s are all answered");

  /* a WebSocket on another path is refused */
  let refused = false;
  try { await open(base.replace(/^http/, "ws") + "/elsewhere"); } catch (e) { refused = true; }
  assert(refused, "a WebSocket on /elsewhere should be refused");
  console.log("ok: WebSocket outside /ws refused");
});
