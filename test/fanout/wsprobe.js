/*
 * wsprobe.js — a scripted WebSocket client for assertions: messages are
 * queued and awaited one at a time; the close code is recorded.
 */
"use strict";
const WebSocket = require("ws");

function open(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options || {});
    const queue = [], waiters = [];
    const probe = {
      ws, closeCode: null, unexpected: null,
      closed: new Promise(r => ws.on("close", (code) => { probe.closeCode = code; r(code); })),
      send(obj) { ws.send(typeof obj === "string" ? obj : JSON.stringify(obj)); },
      next(ms = 3000) {
        if (queue.length) return Promise.resolve(queue.shift());
        return new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error("no message within " + ms + " ms")), ms);
          waiters.push(m => { clearTimeout(t); res(m); });
        });
      },
      /* the next message satisfying pred, skipping others */
      async until(pred, ms = 3000) {
        const end = Date.now() + ms;
        for (;;) {
          const m = await probe.next(Math.max(1, end - Date.now()));
          if (pred(m)) return m;
        }
      },
      close() { ws.close(); },
    };
    ws.on("message", data => {
      const m = JSON.parse(data);
      if (waiters.length) waiters.shift()(m); else queue.push(m);
    });
    ws.on("open", () => resolve(probe));
    ws.on("unexpected-response", (req, res) => { reject(Object.assign(new Error("HTTP " + res.statusCode), { status: res.statusCode })); });
    ws.on("error", e => reject(e));
  });
}

function assert(cond, what) {
  if (!cond) throw new Error(what);
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function main(fn) {
  fn().then(() => process.exit(0), e => { console.error("FAIL:", e.message); process.exit(1); });
}

module.exports = { open, assert, sleep, main };
