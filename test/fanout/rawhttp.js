/*
 * rawhttp.js — raw bytes over TCP, for requests no HTTP library sends
 * (a body on a GET, pipelining, OPTIONS, hand-made WebSocket frames).
 *
 *   const { raw } = require("./rawhttp");
 *   const text = await raw(port, "GET / HTTP/1.1\r\n...", { ms: 1000, until: /\r\n\r\n/ });
 *
 * Resolves with everything received (latin1) when the server closes, when
 * `until` matches what was received, or after `ms` milliseconds.
 */
"use strict";
const net = require("net");

function raw(port, bytes, { ms = 2000, until = null, host = "127.0.0.1" } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    let got = Buffer.alloc(0), done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(got.toString("latin1"));
    };
    const timer = setTimeout(finish, ms);
    sock.on("connect", () => sock.write(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes));
    sock.on("data", d => {
      got = Buffer.concat([got, d]);
      if (until && until.test(got.toString("latin1"))) finish();
    });
    sock.on("close", finish);
    sock.on("error", finish);
  });
}

/* the status codes of every response in text, in order */
function statuses(text) {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map(m => Number(m[1]));
}

module.exports = { raw, statuses };
