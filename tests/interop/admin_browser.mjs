#!/usr/bin/env node
// The admin dashboard (/admin) in headless Chromium, reading what a person sees.
//
//   node admin_browser.mjs http://127.0.0.1:PORT 127.0.0.1:TCPPORT USER PASSWORD
//
// A wrong password is refused on the page; the right one shows the dashboard; clients on
// three protocols (/ws with node `ws`, the TCP line protocol, SSE) appear in the connections
// table; a feed's topic shows a moving rate; the page publishes and the /ws client gets it;
// the page disconnects the /ws client, which sees its socket close, and its row goes. The page
// follows the live stream (/api/admin/live) and asks nothing else while nobody clicks; when the
// server refuses the stream (its bound of live streams is taken) the page falls back to
// polling and still shows the node.
// Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import net from "node:net";
import WebSocket from "ws";

import { launchChromium } from "./chromium.mjs";

const [base, tcpAddr, user, password] = process.argv.slice(2);
const WAIT_MS = 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await launchChromium();
const overall = setTimeout(async () => {
  console.error("FAIL: overall timeout of 120 s exceeded");
  await browser.close().catch(() => {});
  process.exit(1);
}, 120000);

async function until(what, pred, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The rows of a table as the page shows them: arrays of cell texts. */
async function rows(page, table) {
  return page.$$eval(`#${table} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
}

try {
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (e) => console.error(`page: ${e.message}`));
  const asked = []; // admin API paths the page requested
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/api/admin/")) asked.push(u.pathname);
  });
  await page.goto(`${base}/admin`);
  await page.waitForSelector("#login:not([hidden])", { timeout: WAIT_MS });

  // A wrong password: refused, still on the sign-in form.
  await page.fill("#login-user", user);
  await page.fill("#login-password", "not-the-password");
  await page.click("#login-submit");
  await until("the refusal", async () => (await page.textContent("#login-error")).includes("Wrong user or password"));
  check(await page.isHidden("#dash"), "the dashboard must stay hidden after a wrong password");
  console.log("ok: a wrong password is refused");

  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.waitForSelector("#dash:not([hidden])", { timeout: WAIT_MS });
  await until("the version", async () => (await page.textContent("#node-version")).length > 0);
  check((await page.textContent("#who")).includes(user), "signed in as the admin");
  console.log(`ok: signed in, version ${await page.textContent("#node-version")}`);

  // Live over the server's own SSE stream: the uptime moves with no request of the page's own.
  await until("the live stream", async () => (await page.textContent("#status")) === "live");
  check(asked.includes("/api/admin/live"), `the page opened the live stream: ${asked}`);
  const before = asked.length;
  const uptime = await page.textContent("#node-uptime");
  await until("the uptime to move", async () => (await page.textContent("#node-uptime")) !== uptime, 5000);
  check(asked.length === before, `no polling while the stream runs: ${asked.slice(before)}`);
  await until("this node in the nodes table", async () => (await rows(page, "nodes")).some((r) => r[0].endsWith("(this)")));
  console.log(`ok: live over /api/admin/live (uptime ${uptime} -> ${await page.textContent("#node-uptime")}), no polling`);

  // Three clients on three protocols.
  const ws = new WebSocket(`${base.replace("http", "ws")}/ws`);
  const wsGot = [];
  let wsClosed = false;
  ws.on("message", (d) => wsGot.push(JSON.parse(d.toString())));
  ws.on("close", () => (wsClosed = true));
  await new Promise((r, j) => ws.once("open", r).once("error", j));
  ws.send(JSON.stringify({ op: "subscribe", id: 1, topic: "admin.ui" }));
  const [host, port] = tcpAddr.split(":");
  const line = net.connect(Number(port), host);
  line.on("error", () => {});
  line.write("SUB admin.ui\r\n");
  const sse = new AbortController();
  const sseRes = await fetch(`${base}/sse?topic=admin.feed`, { signal: sse.signal });
  check(sseRes.ok, "the SSE client connects");

  const seen = await until("a connection on each protocol", async () => {
    const protocols = new Set((await rows(page, "connections")).map((r) => r[1]));
    return ["ws", "line", "sse"].every((p) => protocols.has(p)) && protocols;
  });
  console.log(`ok: connections appear on ws, line and sse (${[...seen].join(", ")})`);

  // A feed: the topic's rate moves.
  let feeding = true;
  const feed = (async () => {
    for (let i = 0; feeding; i++) {
      await fetch(`${base}/api/publish/admin.feed`, { method: "POST", body: `tick ${i}` });
      await sleep(50);
    }
  })();
  const rate = await until("a moving rate on admin.feed", async () => {
    const r = (await rows(page, "topics")).find((r) => r[0] === "admin.feed");
    return r && Number(r[5]) > 2 && r;
  });
  feeding = false;
  await feed;
  console.log(`ok: admin.feed shows ${rate[5]} msg/s, offset ${rate[2]}`);
  sse.abort();

  // Publish from the page: the /ws client gets it.
  await page.fill("#publish-topic", "admin.ui");
  await page.fill("#publish-message", "hello from the dashboard");
  await page.click("#publish button");
  await until("the /ws client to get it", () => wsGot.some((m) => m.type === "message" && m.text === "hello from the dashboard"));
  await until("the page to confirm", async () => (await page.textContent("#publish-result")).includes("2 receiver(s)"));
  console.log("ok: published from the page, the subscriber got it");

  // The topic's detail: presence and history.
  await page.click('#topics tbody tr[data-topic="admin.ui"]');
  await until("the topic's detail", async () => (await rows(page, "detail-history")).some((r) => r[1] === "hello from the dashboard"));
  check((await rows(page, "detail-members")).length === 2, "two present in admin.ui");
  console.log("ok: a topic's presence and recent history");

  // Open the line client's connection and unsubscribe it from admin.ui: the page shows one
  // subscriber fewer.
  await page.click('#connections tbody tr[data-protocol="line"] td');
  await page.waitForSelector('#conn-subscriptions tbody tr[data-subscription="admin.ui"]', { timeout: WAIT_MS });
  await page.click('#conn-subscriptions tbody tr[data-subscription="admin.ui"] button');
  await until("the subscription to go", async () => (await rows(page, "conn-subscriptions")).length === 0);
  await until("admin.ui to show one subscriber", async () => (await rows(page, "topics")).find((r) => r[0] === "admin.ui")?.[1] === "1");
  console.log("ok: unsubscribed the line client from admin.ui from the page");

  // Disconnect the /ws client from the page: its socket closes, its row goes.
  const wsRow = await page.$('#connections tbody tr[data-protocol="ws"]');
  const wsId = await wsRow.getAttribute("data-connection");
  // By selector, not by handle: the table is redrawn with every snapshot.
  await page.click(`#connections tbody tr[data-connection="${wsId}"] button`);
  await until("the /ws client to be closed", () => wsClosed);
  await until("its row to go", async () => !(await rows(page, "connections")).some((r) => r[0] === wsId));
  console.log(`ok: disconnected ${wsId} from the page; it is gone`);

  // Signing out shows the form again.
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])", { timeout: WAIT_MS });
  console.log("ok: signed out");

  // Every live stream the server allows is taken (32, by a script with an admin cookie): the
  // page's stream is refused with 503, so it polls the JSON API and still shows the node.
  const login = await fetch(`${base}/api/admin/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user, password }),
  });
  const cookie = login.headers.get("set-cookie").split(";")[0];
  const hogs = new AbortController();
  let held = 0;
  await until("32 live streams held", async () => {
    const r = await fetch(`${base}/api/admin/live`, { headers: { cookie }, signal: hogs.signal });
    if (r.ok) held++;
    else await r.body.cancel();
    return held === 32;
  });
  const refused = await fetch(`${base}/api/admin/live`, { headers: { cookie } });
  check(refused.status === 503, `the 33rd stream is refused: ${refused.status}`);
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await until("the polling fallback", async () => (await page.textContent("#status")) === "live (polling)");
  const polled = asked.length;
  await until("polls of the JSON API", async () => asked.slice(polled).filter((p) => p === "/api/admin/node").length >= 2);
  check((await page.textContent("#node-version")).length > 0, "the node shows while polling");
  hogs.abort();
  console.log("ok: with the live streams all taken the page polls the JSON API");
  line.destroy();
  clearTimeout(overall);
  await browser.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
