#!/usr/bin/env node
// The JavaScript client (/client/tidings.js, served by the binary) in headless Chromium, with
// the browser's own WebSocket and fetch:
//
//   node js_client_browser.mjs http://127.0.0.1:PORT ADMIN_USER ADMIN_PASSWORD
//
// subscribe/publish/ack (JSON, text, binary as Uint8Array); an admin disconnects the page's
// connection (POST /api/admin/connections/<id>/disconnect) while a feed publishes: the client
// reconnects and resumes, nothing missed, nothing twice. Behind a TCP proxy
// (tcp_proxy.mjs) that serves the page too: the network goes down while messages beyond the
// topic's history (browser.small.>, 3 kept) are published, and the page gets a gap event and
// what history still held; a token (HS256, TIDINGS_JWT_SECRET) is refreshed before it expires
// and a fresh one is asked for on reconnect; a proxy that refuses WebSocket upgrades makes the
// client fall back to SSE + POST, and an SSE stream cut by the network resumes without a loss
// or a duplicate. And the SSE fallback when the page's WebSocket URL is refused outright.
// Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import crypto from "node:crypto";
import { launchChromium } from "./chromium.mjs";
import { proxy } from "./tcp_proxy.mjs";

const [base, adminUser, adminPassword] = process.argv.slice(2);
const SECRET = process.env.TIDINGS_JWT_SECRET;
const upstream = new URL(base).host;
const auth = "Basic " + Buffer.from(`${adminUser}:${adminPassword}`).toString("base64");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await launchChromium();
const overall = setTimeout(async () => {
  console.error("FAIL: overall timeout of 150 s exceeded");
  await browser.close().catch(() => {});
  process.exit(1);
}, 150000);

async function httpPublish(topic, text) {
  const res = await fetch(`${base}/api/publish/${topic}`, { method: "POST", body: text });
  check(res.ok, `publish to ${topic}: ${res.status}`);
  return res.json();
}

/** An HS256 token for `sub`, valid `ttlSecs`, with every right. */
function token(sub, ttlSecs) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttlSecs, tidings: { publish: [">"], subscribe: [">"] } };
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${crypto.createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

/** A page loaded through `p` (so its origin and its sockets go through the proxy). */
async function pageVia(p) {
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (e) => console.error(`page: ${e.message}`));
  await page.goto(`http://${p.addr}/`);
  await page.evaluate(async () => {
    window.Tidings = (await import("/client/tidings.js")).Tidings;
  });
  return page;
}

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

  // The network goes down while six messages are published to a topic that keeps three: on
  // reconnect the page is told of the gap and gets the three history still holds, then live.
  {
    const p = await proxy(upstream);
    const page = await pageVia(p);
    await page.evaluate(async () => {
      window.got = [];
      window.gaps = [];
      window.c = new window.Tidings(`ws://${location.host}/ws`, { backoffBase: 50, backoffMax: 200, fallbackAfter: 0 });
      window.c.on("gap", (g) => window.gaps.push(g));
      await window.c.subscribe("browser.small.x", (m) => window.got.push(m.offset)).ready;
    });
    const one = await httpPublish("browser.small.x", "one");
    await page.waitForFunction(() => window.got.length === 1, null, { timeout: 10000 });
    p.hold();
    p.drop();
    for (let i = 0; i < 6; i++) await httpPublish("browser.small.x", `away ${i}`);
    await page.waitForFunction(() => window.c.state !== "ready", null, { timeout: 10000 });
    p.release();
    await page.waitForFunction(() => window.gaps.length === 1 && window.got.length === 4, null, { timeout: 10000 });
    const live = await httpPublish("browser.small.x", "live");
    await page.waitForFunction(() => window.got.length === 5, null, { timeout: 10000 });
    const [gaps, got] = await page.evaluate(() => [window.gaps, window.got]);
    const o = one.offset;
    check(gaps[0].topic === "browser.small.x" && gaps[0].since === o && gaps[0].next === o + 4, `gap: ${JSON.stringify(gaps)}`);
    check(JSON.stringify(got) === JSON.stringify([o, o + 4, o + 5, o + 6, live.offset]), `offsets: ${JSON.stringify(got)}`);
    // Chromium's own WebSocket resumed with the topic on the upgrade URL (one round trip).
    const onUrl = p.requests.filter((r) => r.startsWith(`GET /ws?topic=browser.small.x&since=${o}&`));
    check(onUrl.length >= 1, `the reconnect named its topic on the upgrade URL: ${JSON.stringify(p.requests)}`);
    console.log(`ok: a gap beyond history is reported (since ${gaps[0].since}, next ${gaps[0].next}) to a resume on the upgrade URL, then live again`);
    await page.evaluate(() => window.c.close());
    p.close();
  }

  // A token that expires in 2 s is refreshed; past its expiry the connection stays; when the
  // network drops it, the client asks for a fresh token before it reconnects.
  {
    const p = await proxy(upstream);
    const page = await pageVia(p);
    await page.exposeFunction("mintToken", (sub, ttl) => token(sub, ttl));
    await page.evaluate(async (first) => {
      window.got = [];
      window.asked = 0;
      window.drops = 0;
      const getToken = async () => {
        window.asked++;
        return window.mintToken("ann", 60);
      };
      window.c = new window.Tidings(`ws://${location.host}/ws`, { token: first, getToken, backoffBase: 50, backoffMax: 200, fallbackAfter: 0 });
      window.c.on("disconnected", () => window.drops++);
      await window.c.subscribe("browser.token", (m) => window.got.push(m.data)).ready;
      const r = await window.c.refresh(await window.mintToken("ann", 60));
      window.refreshed = { user: r.user, expires: r.expires };
    }, token("ann", 2));
    const refreshed = await page.evaluate(() => window.refreshed);
    check(refreshed.user === "ann" && refreshed.expires > Date.now() / 1000 + 30, `refresh: ${JSON.stringify(refreshed)}`);
    await sleep(3000); // past the first token's expiry
    await httpPublish("browser.token", "after expiry");
    await page.waitForFunction(() => window.got.length === 1, null, { timeout: 10000 });
    check((await page.evaluate(() => window.drops)) === 0, "the refreshed connection stayed past the first token's expiry");
    p.drop();
    await page.waitForFunction(() => window.asked === 1 && window.drops === 1 && window.c.state === "ready", null, { timeout: 10000 });
    const members = await page.evaluate(() => window.c.presence("browser.token"));
    check(members.length === 1 && members[0].user === "ann", `presence: ${JSON.stringify(members)}`);
    console.log("ok: token refreshed before expiry; a fresh token asked for on reconnect");
    await page.evaluate(() => window.c.close());
    p.close();
  }

  // A proxy that refuses WebSocket upgrades: SSE + POST; the network cuts the SSE stream and
  // it resumes from its cursor: nothing missed, nothing twice.
  {
    const p = await proxy(upstream, { blockWebSocket: true });
    const page = await pageVia(p);
    await page.evaluate(async () => {
      window.got = [];
      window.gaps = [];
      window.c = new window.Tidings(`ws://${location.host}/ws`, { backoffBase: 50, backoffMax: 200 });
      window.c.on("fallback", (f) => (window.fellBack = f));
      window.c.on("gap", (g) => window.gaps.push(g));
      window.c.subscribe("browser.blocked", (m) => window.got.push(m.data));
      await window.c.whenReady();
      await new Promise((r) => setTimeout(r, 200));
      await window.c.publish("browser.blocked", { via: "post" });
    });
    check((await page.evaluate(() => window.c.transport)) === "sse", "fell back to SSE behind the proxy");
    await httpPublish("browser.blocked", "from curl");
    await page.waitForFunction(() => window.got.length === 2, null, { timeout: 10000 });
    p.drop();
    await httpPublish("browser.blocked", "while away");
    await page.waitForFunction(() => window.got.length === 3, null, { timeout: 10000 });
    await sleep(300);
    const got = await page.evaluate(() => window.got);
    check(JSON.stringify(got) === JSON.stringify([{ via: "post" }, "from curl", "while away"]), `got ${JSON.stringify(got)}`);
    check((await page.evaluate(() => window.gaps.length)) === 0, "no gap");
    console.log("ok: a proxy refuses WebSocket: SSE + POST, and a cut stream resumes from its cursor");
    await page.evaluate(() => window.c.close());
    p.close();
  }

  clearTimeout(overall);
  await browser.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
