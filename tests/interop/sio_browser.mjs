#!/usr/bin/env node
// Interop: the socket.io-client browser bundle in headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core) against tidings' /socket.io/, meeting a WebSocket-native client
// (/ws) and a TCP line-protocol client on the same topic.
//
//   node sio_browser.mjs http://127.0.0.1:PORT 127.0.0.1:TCPPORT
//
// The page is served from another origin (a static server started here, which also serves
// node_modules/socket.io-client/dist/socket.io.min.js), so long-polling goes through CORS
// (the server must allow the origin). Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import http from "node:http";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";

let chromium, WebSocket;
try {
  ({ chromium } = await import("playwright-core"));
  ({ default: WebSocket } = await import("ws"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [base, tcpAddr] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = path.join(here, "node_modules/socket.io-client/dist/socket.io.min.js");
const WAIT_MS = 8000;
let browser;
let profile;
const cleanup = async () => {
  try {
    await browser?.close();
  } catch {}
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
};
setTimeout(async () => {
  console.error("FAIL: overall timeout of 25s exceeded");
  await cleanup();
  process.exit(1);
}, 25000).unref();

const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const topic = `browser.t${process.pid}`;

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>tidings socket.io</title>
<script src="/socket.io.min.js"></script></head>
<body><pre id="log"></pre>
<script>
  window.state = { connected: false, messages: [], acks: [], errors: [] };
  const socket = io(${JSON.stringify(base)}, { reconnection: false });
  window.socket = socket;
  socket.on("connect_error", (e) => state.errors.push(String(e && e.message)));
  socket.on("message", (m, offset) => {
    const data = m.data instanceof ArrayBuffer ? { binary: Array.from(new Uint8Array(m.data)) } : m.data;
    state.messages.push({ topic: m.topic, offset: m.offset, data, recovery: offset });
  });
  socket.on("connect", async () => {
    state.connected = true;
    state.acks.push(await socket.emitWithAck("subscribe", ${JSON.stringify(topic)}));
    state.subscribed = true;
  });
  window.publishFromPage = async () => {
    state.acks.push(await socket.emitWithAck("publish", ${JSON.stringify(topic)}, "hello from the browser"));
    state.acks.push(await socket.emitWithAck("publish", ${JSON.stringify(topic)}, new Uint8Array([7, 255, 0]).buffer));
  };
</script></body></html>`;

async function staticServer() {
  const js = fs.readFileSync(bundle);
  const srv = http.createServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "application/javascript" });
      return res.end(js);
    }
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(page);
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return srv;
}

async function nativeClient() {
  const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws");
  const frames = [];
  ws.on("message", (d, bin) => {
    if (bin) {
      const nl = d.indexOf(0x0a);
      frames.push({ ...JSON.parse(d.subarray(0, nl)), bytes: Array.from(d.subarray(nl + 1)) });
    } else frames.push(JSON.parse(d));
  });
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  ws.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
  return { ws, frames };
}

async function lineClient() {
  const [host, port] = tcpAddr.split(":");
  const sock = net.connect(Number(port), host);
  let text = "";
  sock.on("data", (d) => (text += d.toString("latin1")));
  await new Promise((r, j) => (sock.once("connect", r), sock.once("error", j)));
  sock.write(`SUB ${topic}\r\n`);
  return { sock, text: () => text };
}

async function until(what, fn) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${until.debug ? ": " + until.debug() : ""}`);
    await sleep(50);
  }
}

try {
  check(fs.existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/install-test-deps.sh`);
  check(fs.existsSync(bundle), `${bundle} missing: run scripts/install-test-deps.sh`);
  const srv = await staticServer();
  const pageUrl = `http://127.0.0.1:${srv.address().port}/`;
  const w = await nativeClient();
  const t = await lineClient();
  await until("ws subscribe", () => w.frames.some((f) => f.id === 1));
  await until("tcp subscribe", () => t.text().includes(`+OK SUB ${topic}`));

  profile = fs.mkdtempSync(path.join(os.tmpdir(), "tidings-chromium-"));
  // The machine has no network: without these flags Chromium hangs on refused connections.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  browser = context;
  const tab = context.pages()[0] ?? (await context.newPage());
  const consoleLines = [];
  tab.on("console", (m) => consoleLines.push(m.text()));
  await tab.goto(pageUrl);
  const state = () => tab.evaluate(() => window.state);
  await until("the page's subscription", async () => (await state()).subscribed || (await state()).errors.length)
    .catch((e) => {
      throw new Error(`${e.message}; console: ${consoleLines.join(" | ")}`);
    });
  const s0 = await state();
  check(s0.errors.length === 0, `connect_error in the page: ${s0.errors}`);
  check(s0.acks[0]?.ok === true, `subscribe ack: ${JSON.stringify(s0.acks[0])}`);
  console.log(`ok: the browser bundle connected from another origin (CORS) and subscribed to ${topic}`);

  await tab.evaluate(() => window.publishFromPage());
  const s1 = await until("the page's publish acks", async () => {
    const s = await state();
    return s.acks.length >= 3 && s;
  });
  check(s1.acks[1].offset === 1 && s1.acks[2].offset === 2, `publish acks: ${JSON.stringify(s1.acks)}`);
  const wm = await until("ws messages", () => {
    const m = w.frames.filter((f) => f.type === "message");
    return m.length >= 2 && m;
  });
  check(wm[0].text === "hello from the browser", `ws text: ${JSON.stringify(wm[0])}`);
  check(JSON.stringify(wm[1].bytes) === "[7,255,0]", `ws binary: ${JSON.stringify(wm[1])}`);
  until.debug = () => JSON.stringify(t.text());
  await until("tcp MSG and BMSG", () => {
    const x = t.text();
    return x.includes(`MSG ${topic} 1 hello from the browser\r\n`) && x.includes(`BMSG ${topic} 2 3\r\n\x07\xff\x00\r\n`);
  });
  console.log("ok: the browser publishes text and binary (acked offsets 1, 2); ws and tcp receive them");

  // The ws publish must take offset 3 before tcp publishes: wait for its ack, not a sleep.
  w.ws.send(JSON.stringify({ op: "publish", id: 2, topic, data: { from: "ws" }, ack: true }));
  await until("the ws publish ack", () => w.frames.some((f) => f.id === 2));
  t.sock.write(`PUB ${topic} from tcp\r\n`);
  const s2 = await until("the page's messages", async () => {
    const s = await state();
    return s.messages.length >= 4 && s;
  });
  const [m1, m2, m3, m4] = s2.messages;
  check(m1.data === "hello from the browser" && m1.recovery === `1:${topic}`, `page text: ${JSON.stringify(m1)}`);
  check(JSON.stringify(m2.data) === '{"binary":[7,255,0]}', `page binary: ${JSON.stringify(m2)}`);
  check(m3.data?.from === "ws" && m3.offset === 3, `page from ws: ${JSON.stringify(m3)}`);
  check(m4.data === "from tcp" && m4.offset === 4, `page from tcp: ${JSON.stringify(m4)}`);
  console.log("ok: the browser receives its own messages and what ws (JSON) and tcp (text) publish");

  const transport = await until("the upgrade to websocket", async () => {
    const name = await tab.evaluate(() => window.socket.io.engine.transport.name);
    return name === "websocket" && name;
  });
  console.log(`ok: the browser's transport upgraded from polling to ${transport}`);
  w.ws.close();
  t.sock.destroy();
  srv.close();
  await cleanup();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await cleanup();
  process.exit(1);
}
