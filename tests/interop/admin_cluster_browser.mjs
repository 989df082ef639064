#!/usr/bin/env node
// The dashboard of one node of a Redis cluster, in headless Chromium: it lists the other node
// (and says the cluster's size) as a person sees it, and drops it when it stops.
//
//   node admin_cluster_browser.mjs http://NODE_A USER PASSWORD OTHER_NODE_ID
//
// After `ok: lists the other node` it waits for a line on stdin (the test stops the other
// node), then for the row to go. Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import readline from "node:readline";
import { launchChromium } from "./chromium.mjs";

const [base, user, password, otherId] = process.argv.slice(2);
const WAIT_MS = 15000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await launchChromium();

async function until(what, pred) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

try {
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (e) => console.error(`page: ${e.message}`));
  await page.goto(`${base}/admin`);
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.waitForSelector("#dash:not([hidden])", { timeout: WAIT_MS });
  const nodeIds = () => page.$$eval("#nodes tbody tr", (trs) => trs.map((tr) => tr.dataset.node));
  await until("the other node's row", async () => (await nodeIds()).includes(otherId));
  const kind = await page.textContent("#nodes-kind");
  if (!kind.includes("cluster of 2")) throw new Error(`the panel says ${kind}`);
  const thisId = await page.textContent("#node-id");
  const rows = await page.$$eval("#nodes tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  if (!rows.some((r) => r[0] === `${thisId} (this)`)) throw new Error(`this node is not marked: ${JSON.stringify(rows)}`);
  console.log(`ok: lists the other node (${kind}: ${rows.map((r) => r[0]).join(", ")})`);
  await new Promise((r) => readline.createInterface({ input: process.stdin }).once("line", r));
  await until("the stopped node to go", async () => !(await nodeIds()).includes(otherId));
  console.log("ok: the stopped node is gone");
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
