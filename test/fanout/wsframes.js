#!/usr/bin/env node
/*
 * wsframes.js PORT — hand-made WebSocket frames, the ones RFC 6455 forbids:
 * an unmasked client frame, a control frame over 125 bytes and a close
 * frame with a 1-byte payload must each be answered with a close frame
 * carrying 1002 (not a bare TCP drop, not an echo).  Allowed frames near
 * those limits (a masked 125-byte ping, a close with 1000) still work.
 */
"use strict";
const net = require("net");
const crypto = require("crypto");
const { assert, main } = require("./wsprobe");
const port = Number(process.argv[2]);

function frame(opcode, payload, { mask = true, fin = true, len16 = false } = {}) {
  payload = Buffer.from(payload);
  const head = [(fin ? 0x80 : 0) | opcode];
  const m = mask ? 0x80 : 0;
  if (payload.length < 126 && !len16) head.push(m | payload.length);
  else head.push(m | 126, payload.length >> 8, payload.length & 255);
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/*
 * opens /ws, sends the frames (a number among them: a pause of that many ms
 * before the next), resolves with the frames the server sent and whether it
 * closed
 */
function session(frames, ms = 3000) {
  return new Promise(resolve => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0), upgraded = false, done = false;
    const got = [];
    const finish = (closed) => { if (done) return; done = true; sock.destroy(); resolve({ got, closed }); };
    const timer = setTimeout(() => finish(false), ms);
    sock.on("connect", () => sock.write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: " + crypto.randomBytes(16).toString("base64") + "\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    sock.on("data", d => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        assert(/^HTTP\/1\.1 101/.test(buf.toString("latin1")), "no 101: " + buf.toString("latin1", 0, 40));
        upgraded = true;
        buf = buf.subarray(end + 4);
        (async () => {
          for (const f of frames) {
            if (typeof f === "number") await new Promise(r => setTimeout(r, f));
            else if (!done) sock.write(f);
          }
        })();
      }
      while (buf.length >= 2) {
        const len = buf[1] & 127;
        if (len >= 126 || buf.length < 2 + len) break;
        got.push({ opcode: buf[0] & 15, payload: buf.subarray(2, 2 + len) });
        buf = buf.subarray(2 + len);
      }
    });
    sock.on("close", () => { clearTimeout(timer); finish(true); });
    sock.on("error", () => {});
  });
}

const closeCode = r => {
  const c = r.got.find(f => f.opcode === 8);
  return c && c.payload.length >= 2 ? c.payload.readUInt16BE(0) : null;
};

main(async () => {
  const ping = JSON.stringify({ type: "ping", id: 1 });
  const cases = [
    ["an unmasked text frame", [frame(1, ping, { mask: false })]],
    ["an unmasked ping", [frame(9, "x", { mask: false })]],
    ["a 126-byte ping", [frame(9, "p".repeat(126))]],
    ["a ping with a 16-bit length of 5", [frame(9, "hello", { len16: true })]],
    ["a close with a 1-byte payload", [frame(8, "x")]],
    ["a masked message, then an unmasked one", [frame(1, ping), frame(1, ping, { mask: false })]],
  ];
  for (const [what, frames] of cases) {
    const r = await session(frames);
    assert(closeCode(r) === 1002, what + ": expected a close frame with 1002, got " +
      JSON.stringify(r.got.map(f => [f.opcode, f.payload.toString("hex")])) + (r.closed ? " and a TCP close" : ""));
    console.log("ok: " + what + " -> close 1002");
  }
  // the close comes after the answers: a close that arrives in the same read
  // as a message may end the connection before its answer is written, which
  // RFC 6455 allows (the peer that closes wants no more data)
  let r = await session([frame(9, "p".repeat(125)), frame(1, ping), 500, frame(8, Buffer.from([0x03, 0xe8]))]);
  assert(r.got.some(f => f.opcode === 10 && f.payload.length === 125), "a 125-byte ping got no pong");
  assert(r.got.some(f => f.opcode === 1 && /pong/.test(f.payload)), "a masked message got no answer");
  assert(closeCode(r) === 1000, "a close with 1000 was answered with " + closeCode(r));
  console.log("ok: a 125-byte ping, a message and a close 1000 are served");
});
