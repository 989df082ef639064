#!/usr/bin/env node
// Screenshots of the demo pages for the README, taken in headless Chromium from a running
// `tidings serve --demo-ticker` (scripts/screenshots.sh starts one and calls this).
//
//   node screenshots.mjs http://127.0.0.1:PORT OUT_DIR [ADMIN_USER ADMIN_PASSWORD]
//     -> OUT_DIR/chat.png, OUT_DIR/ticker.png (and OUT_DIR/admin.png with an admin account)
import path from "node:path";
import { launchChromium } from "./chromium.mjs";

const [base, out, adminUser, adminPassword] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await launchChromium();
const viewport = { width: 1100, height: 620 };

async function publish(topic, body, json = true) {
  await fetch(`${base}/api/publish/${topic}`, {
    method: "POST",
    headers: { "content-type": json ? "application/json" : "text/plain" },
    body: json ? JSON.stringify(body) : body,
  });
}

async function chatPage(nick, transport) {
  const page = await (await browser.newContext({ viewport })).newPage();
  await page.goto(`${base}/chat?room=lobby&nick=${nick}&transport=${transport}&join=1`);
  await page.waitForSelector("#status.up");
  return page;
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await sleep(250);
}

try {
  // Earlier conversation: the page shows it as history on join.
  await publish("chat.lobby", { nick: "bob", text: "morning! anyone tried the new ticker page?" });
  await publish("chat.lobby", { nick: "cy", text: "yes, 200 updates/s and the tab stays smooth (prices.> is conflated)" });
  await publish("chat.lobby", "deploy finished (sent with nc: PUB chat.lobby ...)", false);
  const bob = await chatPage("bob", "sse");
  const cy = await chatPage("cy", "stomp");
  const ann = await chatPage("ann", "ws");
  await say(ann, "hi all, I'm on the native WebSocket");
  await say(bob, "SSE + POST here");
  await say(cy, "STOMP over WebSocket, same room");
  await sleep(2500); // a presence refresh
  await ann.fill("#text", "and a terminal: tidings chat lobby --nick dan");
  await ann.screenshot({ path: path.join(out, "chat.png") });

  const ticker = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  await ticker.goto(`${base}/ticker`);
  await ticker.waitForFunction(() => document.querySelectorAll(".quote").length >= 20);
  await sleep(6000); // sparklines fill in
  await ticker.screenshot({ path: path.join(out, "ticker.png") });
  console.log(`wrote ${path.join(out, "chat.png")} and ${path.join(out, "ticker.png")}`);

  if (adminUser) {
    // The dashboard while the chat pages and the ticker are open and the feed runs.
    const admin = await (await browser.newContext({ viewport: { width: 1280, height: 1180 } })).newPage();
    await admin.goto(`${base}/admin`);
    await admin.fill("#login-user", adminUser);
    await admin.fill("#login-password", adminPassword);
    await admin.click("#login-submit");
    await admin.waitForSelector("#dash:not([hidden])");
    await sleep(1500);
    await admin.click('#topics tbody tr[data-topic="chat.lobby"]');
    await admin.click('#connections tbody tr[data-protocol="sse"] td');
    await sleep(8000); // the chart fills in
    await admin.evaluate(() => window.scrollTo(0, 0));
    await admin.screenshot({ path: path.join(out, "admin.png") });
    console.log(`wrote ${path.join(out, "admin.png")}`);
  }
} finally {
  await browser.close();
}
