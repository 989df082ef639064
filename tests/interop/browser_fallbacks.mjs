#!/usr/bin/env node
// A real headless Chromium (Debian's, driven by playwright-core) on pages served from the
// tidings origin:
//   1. sockjs-client with WebSocket disabled (xhr-streaming / eventsource), then with only
//      xhr-polling allowed, exchanging messages with a TCP-line client;
//   2. the same from a sandboxed iframe, whose origin is the literal `null` (as a `file://`
//      page's is): `/info` and `xhr_send` are cross-origin with credentials, so the server must
//      echo `Access-Control-Allow-Origin: null` (the browser refuses `*`);
//   3. EventSource on /sse, which the server ends after a small response limit: the browser
//      reconnects by itself with Last-Event-ID and gets every message exactly once, including
//      the ones published while it was away.
//
//   node browser_fallbacks.mjs http://127.0.0.1:HTTP 127.0.0.1:TCP
// (the server must run with [fallback] response_limit small, e.g. 2048)
import net from "node:net";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";

import { launchChromium } from "./chromium.mjs";

const require = createRequire(import.meta.url);
const sockjsBundle = readFileSync(require.resolve("sockjs-client/dist/sockjs.min.js"), "utf8");

const [base, tcpAddr] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAIL: overall timeout of 90s exceeded");
  process.exit(1);
}, 90000).unref();
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

function tcp() {
  const [host, port] = tcpAddr.split(":");
  const sock = net.connect(Number(port), host);
  const lines = [];
  let buf = "";
  sock.on("data", (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\r\n")) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 2); }
  });
  return { sock, lines, send: (l) => sock.write(l + "\r\n") };
}

const until = async (what, pred, ms = 15000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await pred();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timeout: ${what}`);
};

// Local Network Access: Chromium refuses requests from an opaque (`null`) origin to the
// loopback address unless a user grants it. Here everything is on loopback only because tests
// are; a sandboxed page on a public site reaching a public tidings is not subject to it. The
// CORS checks this test is about stay on.
const browser = await launchChromium([
  "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests",
]);
try {
  const context = await browser.newContext();
  // Test pages and the sockjs-client bundle are served on the tidings origin itself, so every
  // transport is same-origin (as in an app that serves its own pages).
  await context.route(`${base}/__test/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/__test/sockjs.min.js") return route.fulfill({ contentType: "application/javascript", body: sockjsBundle });
    return route.fulfill({ contentType: "text/html", body: "<!doctype html><title>test</title><script src='/__test/sockjs.min.js'></script>" });
  });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") console.error("page:", m.text()); });
  await page.goto(`${base}/__test/page.html`);

  for (const transports of [["xhr-streaming", "eventsource"], ["xhr-polling"]]) {
    const topic = `browser.sockjs.${randomBytes(3).toString("hex")}`;
    const line = tcp();
    line.send(`SUB ${topic}`);
    await until("tcp subscribed", () => line.lines.some((l) => l.startsWith(`+OK SUB ${topic}`)));
    const used = await page.evaluate(async ({ topic, transports }) => {
      window.got = [];
      const sock = new SockJS("/sockjs", null, { transports });
      window.sock = sock;
      sock.onmessage = (e) => window.got.push(JSON.parse(e.data));
      await new Promise((res, rej) => { sock.onopen = res; sock.onclose = (e) => rej(new Error(`closed ${e.code}`)); });
      sock.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
      return sock.transport;
    }, { topic, transports });
    check(transports.includes(used), `used ${used}, allowed ${transports}`);
    await until("browser subscribed", () => page.evaluate(() => window.got.some((m) => m.type === "ok" && m.id === 1)));
    line.send(`PUB ${topic} from-tcp`);
    await until("tcp -> browser", () => page.evaluate(() => window.got.some((m) => m.type === "message" && m.text === "from-tcp")));
    await page.evaluate((topic) => window.sock.send(JSON.stringify({ op: "publish", topic, text: "from-browser" })), topic);
    await until("browser -> tcp", () => line.lines.some((l) => l.startsWith(`MSG ${topic} `) && l.endsWith(" from-browser")));
    await page.evaluate(() => window.sock.close());
    line.sock.end();
    console.log(`ok: chromium sockjs-client over ${used} (allowed ${transports.join(", ")}) talks to a TCP-line client`);
  }

  // A sandboxed iframe (origin `null`) talking to the tidings origin. sockjs-client turns its
  // xhr-* transports off in a null origin by itself, so it uses eventsource there: `/info` and
  // every `xhr_send` are CORS requests with credentials from `Origin: null`.
  for (const transports of [["eventsource"]]) {
    const topic = `browser.null.${randomBytes(3).toString("hex")}`;
    const line = tcp();
    line.send(`SUB ${topic}`);
    await until("tcp subscribed", () => line.lines.some((l) => l.startsWith(`+OK SUB ${topic}`)));
    // The bundle goes inline: the frame's own requests are only the SockJS ones under test.
    await page.evaluate((bundle) => {
      document.querySelectorAll("iframe").forEach((f) => f.remove());
      const frame = document.createElement("iframe");
      frame.sandbox = "allow-scripts";
      frame.srcdoc = `<!doctype html><script>${bundle.replaceAll("</", "<\\/")}</script>`;
      document.body.appendChild(frame);
    }, sockjsBundle);
    const frame = await until("sandboxed frame loaded", async () => {
      const f = page.frames().find((f) => f !== page.mainFrame());
      return f && (await f.evaluate(() => typeof SockJS === "function").catch(() => false)) ? f : null;
    });
    const origin = await frame.evaluate(() => self.origin);
    check(origin === "null", `the sandboxed frame's origin is ${origin}, not null`);
    const used = await frame.evaluate(async ({ base, topic, transports }) => {
      window.got = [];
      const sock = new SockJS(`${base}/sockjs`, null, { transports });
      window.sock = sock;
      sock.onmessage = (e) => window.got.push(JSON.parse(e.data));
      await new Promise((res, rej) => {
        sock.onopen = res;
        sock.onclose = (e) => rej(new Error(`closed ${e.code} ${e.reason}`));
        setTimeout(() => rej(new Error("no open in 10 s")), 10000);
      });
      sock.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
      return sock.transport;
    }, { base, topic, transports });
    check(transports.includes(used), `used ${used}, allowed ${transports}`);
    await until("null-origin browser subscribed", () => frame.evaluate(() => window.got.some((m) => m.type === "ok" && m.id === 1)));
    line.send(`PUB ${topic} from-tcp`);
    await until("tcp -> null-origin browser", () => frame.evaluate(() => window.got.some((m) => m.type === "message" && m.text === "from-tcp")));
    await frame.evaluate((topic) => window.sock.send(JSON.stringify({ op: "publish", topic, text: "from-null" })), topic);
    await until("null-origin browser -> tcp", () => line.lines.some((l) => l.startsWith(`MSG ${topic} `) && l.endsWith(" from-null")));
    await frame.evaluate(() => window.sock.close());
    line.sock.end();
    console.log(`ok: chromium sockjs-client in a sandboxed iframe (origin null) over ${used} talks to a TCP-line client`);
  }

  // EventSource: the server ends each response after ~2 KiB; the browser reconnects itself.
  const topic = `browser.sse.${randomBytes(3).toString("hex")}`;
  await page.evaluate((topic) => {
    window.sse = { got: [], opens: 0 };
    const es = new EventSource(`/sse?topic=${topic}`);
    es.addEventListener("subscribed", () => window.sse.opens++);
    es.addEventListener("message", (e) => window.sse.got.push(JSON.parse(e.data).offset));
    window.es = es;
  }, topic);
  await until("sse open", () => page.evaluate(() => window.sse.opens >= 1));
  const line = tcp();
  const total = 60;
  for (let i = 1; i <= total; i++) {
    line.send(`PUB ${topic} message-${i}-${"x".repeat(100)}`);
    if (i % 10 === 0) await new Promise((r) => setTimeout(r, 150));
  }
  const got = await until(`all ${total} messages`, async () => {
    const s = await page.evaluate(() => window.sse);
    return s.got.length >= total ? s : null;
  }, 30000);
  check(got.opens >= 2, `expected the browser to reconnect at least once, it opened ${got.opens} time(s)`);
  const expected = Array.from({ length: total }, (_, i) => i + 1);
  check(JSON.stringify(got.got) === JSON.stringify(expected), `offsets not exactly 1..${total}: ${got.got}`);
  line.sock.end();
  console.log(`ok: chromium EventSource reconnected ${got.opens - 1} time(s) with Last-Event-ID and got offsets 1..${total} exactly once`);
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await browser.close();
  process.exit(1);
}
