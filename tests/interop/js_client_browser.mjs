#!/usr/bin/env node
// The JavaScript client (/client/tidings.js, served by the binary) in headless Chromium, with
// the browser's own WebSocket and fetch:
//
//   node js_client_browser.mjs http://127.0.0.1:PORT ADMIN_USER ADMIN_PASSWORD
//
// subscribe/publish/ack (JSON, text, binary as Uint8Array); an admin disconnects the page's
// connection (POST /api/admin/connections/<id>/disconnect) while a feed publishes: the client
// reconnects and resumes, nothing missed, nothing twice; the SSE fallback when the page's
// WebSocket URL is refused. Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import { launchChromium } from "./chromium.mjs";

const [base, adminUser, adminPassword] = process.argv.slice(2);
const auth = "Basic " + Buffer.from(`${adminUser}:${adminPassword}`).toString("base64");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await launchChromium();
const overall = setTimeout(async () => {
  console.error("FAIL: overall timeout of 100 s exceeded");
  await browser.close().catch(() => {});
  process.exit(1);
}, 100000);

async function admin(method, path, body) {
  const res = await fetch(`${base}/api/admin${path}`, {
    method,
    headers: { authorization: auth, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(res.ok, `admin ${path}: ${res.status}`);
  return res.json();
}

try {
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (e) => console.error(`page: ${e.message}`));
  await page.goto(`${base}/`);
  await page.evaluate(async () => {
    const { Tidings } = await import("/client/tidings.js");
    const url = `ws://${location.host}/ws`;
    window.got = [];
    window.gaps = [];
    window.client = new Tidings(url, { backoffBase: 100, backoffMax: 500 });
    window.client.on("gap", (g) => window.gaps.push(g));
    window.client.on("connected", (c) => (window.clientId = c.client));
    await window.client.subscribe("browser.js", (m) => window.got.push({ offset: m.offset, kind: m.kind, data: m.kind === "binary" ? [...m.data] : m.data })).ready;
  });
  const acks = await page.evaluate(async () => {
    const c = window.client;
    return [await c.publish("browser.js", { n: 1 }), await c.publish("browser.js", "two"), await c.publish("browser.js", new Uint8Array([0, 1, 255]))];
  });
  check(acks[1].offset === acks[0].offset + 1 && acks[2].offset === acks[0].offset + 2, `acks: ${JSON.stringify(acks)}`);
  await page.waitForFunction(() => window.got.length === 3, null, { timeout: 10000 });
  const got = await page.evaluate(() => window.got);
  check(JSON.stringify(got.map((m) => m.data)) === JSON.stringify([{ n: 1 }, "two", [0, 1, 255]]), `got ${JSON.stringify(got)}`);
  check(got[2].kind === "binary", "binary arrives as Uint8Array");
  console.log("ok: publish with ack, JSON, text and binary (Uint8Array) in Chromium");

  // The admin disconnects the page while a feed publishes.
  const published = [];
  let feeding = true;
  const feed = (async () => {
    for (let i = 0; feeding; i++) {
      const res = await fetch(`${base}/api/publish/browser.js`, { method: "POST", body: `feed ${i}` });
      published.push((await res.json()).offset);
      await sleep(15);
    }
  })();
  for (let round = 0; round < 2; round++) {
    await sleep(150);
    const id = await page.evaluate(() => window.clientId);
    await admin("POST", `/connections/${id}/disconnect`, {});
    await page.waitForFunction((old) => window.clientId !== old && window.client.state === "ready", id, { timeout: 10000 });
  }
  await sleep(150);
  feeding = false;
  await feed;
  const last = published[published.length - 1];
  await page.waitForFunction((l) => window.got.some((m) => m.offset === l), last, { timeout: 10000 });
  const offsets = (await page.evaluate(() => window.got)).map((m) => m.offset);
  const want = [acks[0].offset, acks[1].offset, acks[2].offset, ...published];
  check(JSON.stringify(offsets) === JSON.stringify(want), `after two admin disconnects: got ${offsets.length} offsets, want ${want.length}: ${JSON.stringify(offsets)}`);
  check((await page.evaluate(() => window.gaps.length)) === 0, "no gap");
  console.log(`ok: disconnected twice by an admin, resumed: ${published.length} feed messages, none missed or repeated`);
  await page.evaluate(() => window.client.close());

  // WebSocket refused (a port nothing listens on): SSE + POST on the page's origin.
  await page.evaluate(async () => {
    const { Tidings } = await import("/client/tidings.js");
    window.sseGot = [];
    window.fb = new Tidings("ws://127.0.0.1:9/ws", { httpUrl: location.origin, backoffBase: 50, backoffMax: 100 });
    window.fb.subscribe("browser.sse", (m) => window.sseGot.push(m.data));
    await window.fb.whenReady();
    await new Promise((r) => setTimeout(r, 200));
    await window.fb.publish("browser.sse", { via: "post" });
  });
  await page.waitForFunction(() => window.sseGot.length === 1, null, { timeout: 10000 });
  check((await page.evaluate(() => window.fb.transport)) === "sse", "fell back to SSE");
  console.log("ok: WebSocket refused: SSE + POST");

  clearTimeout(overall);
  await browser.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
