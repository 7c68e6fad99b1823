#!/usr/bin/env node
/*
 * csv_rows.js — reads CSV on stdin with csv-parse (RFC 4180: quoted
 * fields, doubled quotes, line breaks inside quotes, CRLF records) and
 * prints the records as one JSON array, the header row first.  Fails on
 * anything csv-parse refuses (a quote out of place, ragged records).
 */
"use strict";
const { parse } = require("csv-parse/sync");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", d => { input += d; });
process.stdin.on("end", () => {
  const rows = parse(input, { relax_column_count: false, record_delimiter: "\r\n" });
  process.stdout.write(JSON.stringify(rows));
});
