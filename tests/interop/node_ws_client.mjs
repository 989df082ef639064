#!/usr/bin/env node
// Interop: the real node `ws` client against tidings' native JSON protocol and /echo.
//
//   node node_ws_client.mjs ws://127.0.0.1:PORT/ws
//
// Checks permessage-deflate is negotiated, a 100 KB compressible message round trip (via the
// hub and via /echo), binary publish, broken JSON. Prints `ok: <scenario>` lines; exits 1 with
// `FAIL: ...` otherwise; never runs longer than 20 s.
import { randomBytes } from "node:crypto";

let WebSocket;
try {
  ({ default: WebSocket } = await import("ws"));
} catch {
  console.error("FAIL: node package `ws` missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const OVERALL_MS = 20000;
const WAIT_MS = 5000;

setTimeout(() => {
  console.error(`FAIL: overall timeout of ${OVERALL_MS / 1000}s exceeded`);
  process.exit(1);
}, OVERALL_MS).unref();

class Failure extends Error {}
const check = (cond, msg) => {
  if (!cond) throw new Failure(msg);
};
const ok = (s) => console.log(`ok: ${s}`);
const unique = (p) => `${p}.${process.pid}x${randomBytes(3).toString("hex")}`;
const show = (f) => (f.binary ? `binary(${JSON.stringify(f.obj)}, ${f.payload.length} bytes)` : `text(${String(f.raw).slice(0, 300)})`);

function parseFrame(raw, isBinary) {
  if (isBinary) {
    const nl = raw.indexOf(0x0a);
    check(nl >= 0, `binary frame without a JSON header line: ${raw.subarray(0, 80)}`);
    const header = raw.subarray(0, nl).toString("utf8");
    let obj;
    try {
      obj = JSON.parse(header);
    } catch (e) {
      throw new Failure(`binary frame header is not JSON (${e.message}): ${header.slice(0, 200)}`);
    }
    return { binary: true, obj, payload: raw.subarray(nl + 1), raw };
  }
  const text = raw.toString("utf8");
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new Failure(`server sent a text frame that is not JSON (${e.message}): ${text.slice(0, 200)}`);
  }
  return { binary: false, obj, raw: text };
}

class Client {
  constructor(ws, name, raw) {
    this.ws = ws;
    this.name = name;
    this.rawMode = raw; // /echo: frames are not JSON
    this.frames = [];
    this.seen = [];
    this.closed = null;
    this.waiters = new Set();
    this.nextId = 0;
    ws.on("message", (data, isBinary) => {
      try {
        const f = raw ? { binary: isBinary, raw: data } : parseFrame(data, isBinary);
        this.frames.push(f);
        this.seen.push(f);
      } catch (e) {
        this.closed = e;
      }
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closed ??= new Error(`connection closed (code ${code} ${reason})`);
      this.wake();
    });
    ws.on("error", (e) => {
      this.closed ??= e;
      this.wake();
    });
  }

  static open(url, name, { raw = false, ...opts } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: true, handshakeTimeout: WAIT_MS, ...opts });
      const client = new Client(ws, name, raw);
      const t = setTimeout(() => reject(new Failure(`${name}: cannot connect to ${url}: timeout`)), WAIT_MS);
      ws.once("open", () => {
        clearTimeout(t);
        resolve(client);
      });
      ws.once("error", (e) => {
        clearTimeout(t);
        reject(new Failure(`${name}: cannot connect to ${url}: ${e.message}`));
      });
    });
  }

  wake() {
    for (const w of this.waiters) w();
  }

  async wait(pred, what, timeout = WAIT_MS) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed instanceof Failure) throw this.closed;
      if (this.closed) {
        throw new Failure(`${this.name}: ${this.closed.message} while waiting for ${what}; received: ${this.seen.slice(-10).map(show)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Failure(`${this.name}: timed out after ${timeout / 1000}s waiting for ${what}; unconsumed: ${this.frames.slice(-10).map(show)}`);
      }
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  send(obj) {
    this.ws.send(typeof obj === "string" || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  request(obj) {
    const id = ++this.nextId;
    this.send({ ...obj, id });
    return id;
  }

  reply(id, what) {
    return this.wait((f) => f.obj?.id === id && (f.obj?.type === "ok" || f.obj?.type === "error"), `the reply to ${what} (id ${id})`);
  }

  async expectOk(id, what) {
    const f = await this.reply(id, what);
    check(f.obj.type === "ok", `${this.name}: ${what} failed: ${show(f)}`);
    return f.obj;
  }

  message(topic, offset) {
    return this.wait(
      (f) => f.obj?.type === "message" && f.obj.topic === topic && (offset === undefined || f.obj.offset === offset),
      `a message on ${topic}${offset === undefined ? "" : ` with offset ${offset}`}`,
    );
  }

  close() {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      const t = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, WAIT_MS);
      this.ws.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      this.ws.close(1000, "bye");
    });
  }
}

async function main(url) {
  const c = await Client.open(url, "node");
  check(
    c.ws.extensions.includes("permessage-deflate"),
    `permessage-deflate was not negotiated on /ws (Sec-WebSocket-Extensions: ${JSON.stringify(c.ws.extensions)})`,
  );
  ok(`permessage-deflate negotiated on /ws (${c.ws.extensions})`);

  const hello = await c.wait(() => true, "the hello frame");
  check(hello.obj.type === "hello", `first frame is not hello: ${show(hello)}`);
  check(typeof hello.obj.client === "string" && String(hello.obj.server).startsWith("tidings/"), `bad hello: ${show(hello)}`);
  ok(`hello (${hello.obj.server}, client ${hello.obj.client})`);

  const topic = unique("interop.node");
  const sub = await c.expectOk(c.request({ op: "subscribe", topic }), `subscribe ${topic}`);
  check(sub.offset === 0, `subscribe to a fresh topic should say offset 0: ${JSON.stringify(sub)}`);
  ok("subscribe");

  const data = { greeting: "hello from node", list: [1, "two", { three: 3 }], unicode: "héllo ✓ 😀" };
  let ack = await c.expectOk(c.request({ op: "publish", topic, data, ack: true }), "publish");
  check(ack.offset === 1, `first publish should get offset 1: ${JSON.stringify(ack)}`);
  check(typeof ack.epoch === "string" && ack.epoch.length > 0, `publish ack has no epoch: ${JSON.stringify(ack)}`);
  let m = await c.message(topic, 1);
  check(JSON.stringify(m.obj.data) === JSON.stringify(data), `data changed in transit: ${show(m)}`);
  check(m.obj.epoch === ack.epoch, `message epoch ${m.obj.epoch} != publish ack epoch ${ack.epoch}`);
  ok("publish with ack, own message with offset 1");

  // 100 KB compressible text through the hub (compressed both ways by permessage-deflate)
  const big = "tidings says hello to every subscriber; ".repeat(2600).slice(0, 100 * 1024);
  ack = await c.expectOk(c.request({ op: "publish", topic, text: big, ack: true }), "publish 100 KB");
  check(ack.offset === 2, `100 KB publish should get offset 2: ${JSON.stringify(ack)}`);
  m = await c.message(topic, 2);
  check(m.obj.text === big, `100 KB text changed in transit (got ${m.obj.text?.length} chars)`);
  ok("100 KB compressible message round trip via the hub");

  // binary publish -> binary frame back
  const payload = Buffer.concat([Buffer.from([0, 1, 2, 10, 13, 255, 254]), randomBytes(5000), Buffer.from("\n\r\n")]);
  const bid = ++c.nextId;
  c.send(Buffer.concat([Buffer.from(JSON.stringify({ op: "publish", id: bid, topic, ack: true }) + "\n"), payload]));
  ack = await c.expectOk(bid, "binary publish");
  check(ack.offset === 3, `binary publish should get offset 3: ${JSON.stringify(ack)}`);
  m = await c.message(topic, 3);
  check(m.binary, `binary payload should come back as a binary frame: ${show(m)}`);
  check(m.payload.equals(payload), `binary payload changed in transit (${payload.length} sent, ${m.payload.length} got)`);
  ok("binary publish round trip as a binary frame");

  // broken JSON -> error, connection stays
  c.send('{"op": "subscribe", "topic": ');
  const err = await c.wait((f) => f.obj?.type === "error", "an error for broken JSON");
  check(err.obj.code === "bad_request", `broken JSON should give bad_request: ${show(err)}`);
  ack = await c.expectOk(c.request({ op: "publish", topic, data: 4, ack: true }), "publish after error");
  check(ack.offset === 4, `publish after the error should get offset 4: ${JSON.stringify(ack)}`);
  await c.message(topic, 4);
  ok("broken JSON gives bad_request and the connection stays");

  // wildcard subscription from a second connection sees messages of matching topics
  const prefix = unique("interop.nodewild");
  const c2 = await Client.open(url, "node-wild");
  await c2.wait((f) => f.obj?.type === "hello", "hello");
  await c2.expectOk(c2.request({ op: "subscribe", topic: `${prefix}.*` }), "wildcard subscribe");
  await c.expectOk(c.request({ op: "publish", topic: `${prefix}.a`, data: "A", ack: true }), "publish a");
  await c.expectOk(c.request({ op: "publish", topic: `${prefix}.b.c`, data: "deep", ack: true }), "publish b.c");
  await c.expectOk(c.request({ op: "publish", topic: `${prefix}.d`, data: "D", ack: true }), "publish d");
  const wa = await c2.message(`${prefix}.a`);
  const wd = await c2.message(`${prefix}.d`);
  check(wa.obj.data === "A" && wd.obj.data === "D", `wildcard payloads wrong: ${show(wa)} ${show(wd)}`);
  await new Promise((r) => setTimeout(r, 300));
  check(!c2.frames.some((f) => f.obj?.topic === `${prefix}.b.c`), "`*` must match exactly one token, but b.c was delivered");
  ok("wildcard `*` subscription from a second connection");
  await c2.close();
  await c.close();

  // /echo: 100 KB compressible text and a binary message echoed back, deflate negotiated
  const echoUrl = url.replace(/\/ws(\?.*)?$/, "/echo");
  const e = await Client.open(echoUrl, "echo", { raw: true });
  check(e.ws.extensions.includes("permessage-deflate"), `permessage-deflate not negotiated on /echo (${e.ws.extensions})`);
  e.ws.send(big);
  let f = await e.wait(() => true, "the echo of 100 KB text");
  check(!f.binary && f.raw.toString("utf8") === big, "the echo of 100 KB text differs");
  const bin = randomBytes(64 * 1024);
  e.ws.send(bin);
  f = await e.wait(() => true, "the echo of 64 KB binary");
  check(f.binary && Buffer.from(f.raw).equals(bin), "the echo of 64 KB binary differs");
  await e.close();
  ok("/echo round trip of 100 KB compressible text and 64 KB binary with permessage-deflate");
}

try {
  await main(process.argv[2] ?? (console.error("usage: node node_ws_client.mjs ws://HOST:PORT/ws"), process.exit(2)));
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e instanceof Failure ? e.message : e.stack}`);
  process.exit(1);
}
