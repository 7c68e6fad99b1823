#!/usr/bin/env node
/*
 * stall_client.js HOST PORT POLLS — a WebSocket client (raw socket, no
 * library between us and the kernel) that subscribes to POLLS, reads for
 * one second, then never reads again.  The test watches the daemon's side.
 */
"use strict";
const crypto = require("crypto");
const net = require("net");

const [host, port, pollsArg] = process.argv.slice(2);
const polls = pollsArg.split(",").map(Number);

function frame(text) {
  const data = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = data.length < 126 ? Buffer.from([0x81, 0x80 | data.length])
    : Buffer.from([0x81, 0x80 | 126, data.length >> 8, data.length & 255]);
  const body = Buffer.from(data.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

const s = net.connect(Number(port), host, () => {
  s.write(`GET /ws HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
});
let upgraded = false, got = Buffer.alloc(0);
s.on("data", d => {
  if (upgraded) return;
  got = Buffer.concat([got, d]);
  const end = got.indexOf("\r\n\r\n");
  if (end < 0) return;
  if (!/^HTTP\/1\.1 101/.test(got.toString("latin1", 0, end))) { console.error("no upgrade"); process.exit(1); }
  upgraded = true;
  for (const p of polls) s.write(frame(JSON.stringify({ type: "subscribe", poll: p })));
  setTimeout(() => { s.pause(); console.log("stalled"); }, 1000);
});
s.on("error", e => { console.error("socket error: " + e.message); });
setTimeout(() => process.exit(0), 300000);
