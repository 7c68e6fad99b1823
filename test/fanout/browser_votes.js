#!/usr/bin/env node
/*
 * browser_votes.js BASE POLL FIXED_POLL OUTDIR — headless Chromium votes on
 * the demo page of a daemon with --anonymous-votes:
 *   - a click on "Vote for Blue" moves Blue's count by one and marks it as
 *     the reader's vote; poll.ballots holds one anonymous ballot for Blue;
 *   - after a reload the mark is still there (same voter token from
 *     localStorage, the ballot from GET /polls/ID/vote), and a vote for Green
 *     moves the same voter's ballot: one ballot, now Green;
 *   - from the keyboard alone: Tab to "Retract my vote", Enter: retracted;
 *   - in a poll that allows no change, voting for another option shows a
 *     readable refusal; once the poll closes, its buttons are disabled.
 * Screenshots go to OUTDIR.
 */
"use strict";
const { execFileSync } = require("child_process");
const path = require("path");
const { launch } = require("./chromium");

const [base, pollArg, fixedArg, outdir] = process.argv.slice(2);
const poll = Number(pollArg), fixed = Number(fixedArg);

function sql(q) {
  return execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();
}

function check(cond, what) { if (!cond) throw new Error(what); }

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last === true) return;
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error(`${what} (last: ${last})`);
}

const votesShown = (page, option) => page.locator(`[data-option="${option}"] .votes`).textContent();
const mineShown = (page, option) => page.locator(`[data-option="${option}"]`).getAttribute("data-mine");

async function expectVotes(page, option, want, what) {
  await waitFor(`${what}: option ${option} does not show ${want}`, async () =>
    (await votesShown(page, option)) === String(want) || await votesShown(page, option));
}

async function expectMine(page, mine, options, what) {
  await waitFor(`${what}: own vote not marked on ${mine}`, async () => {
    for (const o of options) {
      const m = await mineShown(page, o);
      if (m !== (o === mine ? "true" : "false")) return `option ${o} data-mine=${m}`;
    }
    return true;
  });
}

/* the anonymous ballots of the poll (the browser's), as "voter:option ..." */
const ballots = p => sql(`SELECT coalesce(string_agg(voter || ':' || option_id, ' ' ORDER BY voter, option_id), '')
                          FROM poll.ballots WHERE poll_id = ${p} AND voter LIKE 'anon:%'`);

async function openPage(context, p, errors) {
  const page = await context.newPage();
  page.on("pageerror", e => errors.push(e.message));
  await page.goto(`${base}/?poll=${p}`);
  await page.locator("#conn").filter({ hasText: "live (websocket)" }).waitFor({ timeout: 10000 });
  return page;
}

async function main() {
  const { context, close } = await launch(outdir);
  const errors = [];
  try {
    /* 1. a click votes; the count moves; the choice is marked */
    let page = await openPage(context, poll, errors);
    const blue = page.getByRole("button", { name: "Vote for Blue" });
    await blue.waitFor({ timeout: 10000 });
    await waitFor("the vote buttons stay disabled", async () => await blue.isEnabled());
    check(ballots(poll) === "", "the poll has anonymous ballots before the test");
    const before = Number(await votesShown(page, 2));
    await blue.click();
    await expectVotes(page, 2, before + 1, "after the click");
    await expectMine(page, 2, [1, 2, 3], "after the click");
    check(await blue.getAttribute("aria-pressed") === "true", "the Blue button is not aria-pressed");
    const notice = await page.locator("#notice").textContent();
    check(/recorded/.test(notice), `the page says "${notice}" after the vote`);
    const first = ballots(poll);
    check(/^anon:[^ ]+:2$/.test(first), "poll.ballots after the click: " + first);
    const voter = first.replace(/:2$/, "");
    const token = await page.evaluate(() => localStorage.getItem("poll-voter-token"));
    check(token, "no voter token in localStorage");
    await page.screenshot({ path: path.join(outdir, "vote-clicked.png"), fullPage: true });
    console.log(`ok: a click on "Vote for Blue" moved Blue from ${before} to ${before + 1} and marked it (${voter})`);

    /* 2. a reload is the same voter */
    await page.reload();
    await page.locator("#conn").filter({ hasText: "live (websocket)" }).waitFor({ timeout: 10000 });
    await expectMine(page, 2, [1, 2, 3], "after a reload");
    check(await page.evaluate(() => localStorage.getItem("poll-voter-token")) === token, "the reload changed the token");
    const green = page.getByRole("button", { name: "Vote for Green" });
    await waitFor("the vote buttons stay disabled after the reload", async () => await green.isEnabled());
    const g0 = Number(await votesShown(page, 3));
    await green.click();
    await expectVotes(page, 3, g0 + 1, "after the change");
    await expectVotes(page, 2, before, "after the change");
    await expectMine(page, 3, [1, 2, 3], "after the change");
    check(ballots(poll) === `${voter}:3`, "poll.ballots after the change: " + ballots(poll));
    console.log("ok: after a reload the vote is still marked, and a vote for Green changes the same voter's ballot");

    /* 3. the keyboard alone: Tab to "Retract my vote", Enter */
    const retract = page.getByRole("button", { name: "Retract my vote" });
    await retract.waitFor({ timeout: 5000 });
    let focused = "";
    for (let i = 0; i < 20 && focused !== "Retract my vote"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    }
    check(focused === "Retract my vote", "Tab never reached the retract button");
    await page.keyboard.press("Enter");
    await expectVotes(page, 3, g0, "after the retraction");
    await expectMine(page, 0, [1, 2, 3], "after the retraction");
    check(ballots(poll) === "", "poll.ballots after the retraction: " + ballots(poll));
    console.log("ok: the keyboard alone retracts the vote");
    await page.close();

    /* 4. a refusal, readable */
    page = await openPage(context, fixed, errors);
    const yes = page.getByRole("button", { name: "Vote for Yes" });
    await waitFor("the vote buttons stay disabled", async () => await yes.isEnabled());
    await yes.click();
    await expectMine(page, 1, [1, 2], "in the poll without changes");
    await page.getByRole("button", { name: "Vote for No" }).click();
    await waitFor("no readable refusal", async () =>
      /does not allow changing/.test(await page.locator("#notice").textContent()) || await page.locator("#notice").textContent());
    await expectMine(page, 1, [1, 2], "after the refusal");
    await page.screenshot({ path: path.join(outdir, "vote-refused.png"), fullPage: true });
    console.log("ok: a refused change says so: " + await page.locator("#notice").textContent());

    /* 5. a poll closed under the open page: no more vote buttons to press */
    sql(`SELECT poll.close_poll(${fixed})`);
    await page.locator("#status").filter({ hasText: "closed" }).waitFor({ timeout: 10000 });
    await waitFor("the vote buttons stay enabled in a closed poll", async () =>
      !(await page.getByRole("button", { name: "Vote for No" }).isEnabled()) &&
      !(await page.getByRole("button", { name: "Vote for Yes" }).isEnabled()));
    console.log("ok: when the poll closes, its vote buttons are disabled");
    if (errors.length) throw new Error("page errors: " + errors.join("; "));
  } finally {
    await close();
  }
}

main().then(() => process.exit(0), e => { console.error("FAIL:", e.message); process.exit(1); });
