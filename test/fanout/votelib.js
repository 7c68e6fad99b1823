/*
 * votelib.js — helpers of the vote tests: HS256 tokens, HTTP requests with
 * their status and JSON body, and a vote over a WebSocket awaited by ref.
 */
"use strict";
const crypto = require("crypto");
const http = require("http");

const b64 = x => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

/* token(secret, claims): exp defaults to ten minutes from now */
function token(secret, claims) {
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ exp: now() + 600, ...claims });
  return head + "." + crypto.createHmac("sha256", secret).update(head).digest("base64url");
}

/* request(base, method, path, {token, body, headers}) -> {status, headers, body, json} */
function request(base, method, path, opts = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ...(opts.headers || {}) };
    if (opts.token) headers.authorization = "Bearer " + opts.token;
    let body = opts.body;
    if (body !== undefined && typeof body !== "string") body = JSON.stringify(body);
    if (body !== undefined) headers["content-length"] = Buffer.byteLength(body);
    const req = http.request(base + path, { method, headers, agent: opts.agent || false }, res => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", d => text += d);
      res.on("end", () => {
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/* sends a vote or retract message and waits for the answer carrying its ref */
async function wsVote(probe, msg, ms = 5000) {
  probe.send(msg);
  return probe.until(m => (m.type === "voted" || m.type === "error") && m.ref === msg.ref, ms);
}

module.exports = { token, request, wsVote, now };
