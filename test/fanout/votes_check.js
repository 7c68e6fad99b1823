#!/usr/bin/env node
/*
 * votes_check.js LOAD_OUT BALLOTS — BALLOTS holds "voter|option" lines of
 * poll.ballots.  Every voter's ballot must be the one of its last
 * acknowledged vote, or of a vote sent after it (whose answer was lost or
 * refused, but which may have committed): never an earlier state, never
 * missing when a vote was acknowledged.  Every acknowledged vote of a
 * caster (a new voter each) must be there.
 */
"use strict";
const fs = require("fs");
const load = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const ballots = {};
for (const line of fs.readFileSync(process.argv[3], "utf8").split("\n").filter(Boolean)) {
  const [voter, opt] = line.split("|");
  ballots[voter] = Number(opt);
}
const opt = k => 1 + (k % load.nopt);
let bad = 0, checked = 0;
for (const [voter, st] of Object.entries(load.voters)) {
  const allowed = new Set(st.after.map(opt));
  if (st.lastAcked >= 0) allowed.add(opt(st.lastAcked));
  const got = ballots[voter];
  if (got === undefined ? st.lastAcked >= 0 : !allowed.has(got)) {
    bad++;
    if (bad <= 10) console.error(`${voter}: ballot ${got}, last acknowledged vote ${st.lastAcked} (option ` +
                                 `${st.lastAcked >= 0 ? opt(st.lastAcked) : "-"}), sent after it: ${st.after.join(",")}`);
  }
  checked++;
}
let lost = 0, casts = 0;
for (const [prefix, ks] of Object.entries(load.casts || {}))
  for (const k of ks) {
    casts++;
    if (ballots[prefix + "-" + k] !== opt(k)) {
      lost++;
      if (lost <= 10) console.error(`${prefix}-${k}: acknowledged option ${opt(k)}, ballot ${ballots[prefix + "-" + k]}`);
    }
  }
if (bad || lost) {
  console.error(`${bad} of ${checked} voters lost an acknowledged vote or went back; ${lost} of ${casts} acknowledged new ballots lost`);
  process.exit(1);
}
console.error(`ok: ${checked} voters hold their last acknowledged ballot or a later one; ${casts} acknowledged new ballots all there`);
