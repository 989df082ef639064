#!/usr/bin/env node
// No sticky sessions: the real sockjs-client (xhr-polling, xhr-streaming) and the real
// socket.io-client (polling only) connect through a round-robin proxy in front of two tidings
// nodes sharing one Redis, so their requests land on either node. Each subscribes, publishes
// with acknowledgements and receives its own messages and what the HTTP API publishes
// directly on each node.
//
//   node nonsticky_clients.mjs http://PROXY http://NODE_A http://NODE_B
//
// Prints `ok: <scenario>` lines; exits 1 with `FAIL: ...` otherwise; never runs over 60 s.
import { randomBytes } from "node:crypto";

let SockJS, io;
try {
  ({ default: SockJS } = await import("sockjs-client"));
  ({ io } = await import("socket.io-client"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [proxy, nodeA, nodeB] = process.argv.slice(2);
const ROUNDS = 12;
// Long enough that, with the test's 4 KiB response limit, xhr-streaming reopens its stream
// every few rounds (on either node).
const PAD = "x".repeat(1000);
setTimeout(() => {
  console.error("FAIL: overall timeout of 60s exceeded");
  process.exit(1);
}, 60000).unref();

const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const within = (ms, what, p) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

/// Collects messages; `wait` resolves with (and removes) the first that matches.
function inbox() {
  const items = [];
  const waiters = [];
  return {
    push(m) {
      const w = waiters.find((w) => w.pred(m));
      if (w) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      } else items.push(m);
    },
    wait(pred, what) {
      const i = items.findIndex(pred);
      if (i >= 0) return Promise.resolve(items.splice(i, 1)[0]);
      return within(10000, what, new Promise((resolve) => waiters.push({ pred, resolve })));
    },
  };
}

/// Publishes `text` on `topic` with the HTTP API of one node, directly (not through the proxy).
async function publishOn(node, topic, text) {
  const r = await fetch(`${node}/api/publish/${topic}`, { method: "POST", body: text });
  check(r.ok, `POST /api/publish on ${node}: ${r.status} ${await r.text()}`);
}

async function sockjs(transport) {
  const topic = `nonsticky.sockjs.${transport.replace("-", "_")}.${randomBytes(3).toString("hex")}`;
  const sj = new SockJS(proxy + "/sockjs", null, { transports: [transport] });
  const box = inbox();
  sj.onmessage = (e) => box.push(JSON.parse(e.data));
  let closed = null;
  await within(10000, `${transport} open`, new Promise((r, j) => {
    sj.onopen = r;
    sj.onclose = (e) => j(new Error(`closed ${e.code} ${e.reason}`));
  }));
  sj.onclose = (e) => (closed = e);
  check(sj.transport === transport, `expected transport ${transport}, got ${sj.transport}`);
  await box.wait((m) => m.type === "hello", "hello");
  sj.send(JSON.stringify({ op: "subscribe", id: "sub", topic }));
  await box.wait((m) => m.type === "ok" && m.id === "sub", "subscribed");
  for (let i = 1; i <= ROUNDS; i++) {
    sj.send(JSON.stringify({ op: "publish", id: `p${i}`, topic, text: `own-${i}-${PAD}`, ack: true }));
    const ack = await box.wait((m) => m.type === "ok" && m.id === `p${i}`, `publish ${i} ack`);
    const got = await box.wait((m) => m.type === "message" && m.text === `own-${i}-${PAD}`, `own message ${i}`);
    check(got.offset === ack.offset, `offset ${got.offset} differs from the ack's ${ack.offset}`);
    await publishOn(i % 2 ? nodeA : nodeB, topic, `api-${i}`);
    await box.wait((m) => m.type === "message" && m.text === `api-${i}`, `api message ${i}`);
  }
  check(closed === null, `the session closed: ${closed && `${closed.code} ${closed.reason}`}`);
  sj.close();
  console.log(`ok: sockjs-client over ${transport} through the round-robin proxy: ${ROUNDS} rounds of publish, ack and receive`);
}

async function socketio() {
  const topic = `nonsticky.sio.${randomBytes(3).toString("hex")}`;
  const s = io(proxy, { forceNew: true, transports: ["polling"], reconnection: false });
  const box = inbox();
  const disconnects = [];
  s.on("message", (msg) => box.push(msg));
  s.on("disconnect", (why) => disconnects.push(why));
  await within(10000, "socket.io connect", new Promise((r, j) => {
    s.once("connect", r);
    s.once("connect_error", (e) => j(new Error(`connect_error: ${e.message}`)));
  }));
  const firstSid = s.io.engine.id;
  const ack = (...args) => s.timeout(10000).emitWithAck(...args);
  const sub = await ack("subscribe", topic);
  check(sub.ok && sub.topic === topic, `subscribe ack: ${JSON.stringify(sub)}`);
  for (let i = 1; i <= ROUNDS; i++) {
    const p = await ack("publish", topic, `own-${i}`);
    check(p.ok && Number.isInteger(p.offset), `publish ack: ${JSON.stringify(p)}`);
    const got = await box.wait((m) => m.data === `own-${i}`, `own message ${i}`);
    check(got.offset === p.offset, `offset ${got.offset} differs from the ack's ${p.offset}`);
    await publishOn(i % 2 ? nodeB : nodeA, topic, `api-${i}`);
    await box.wait((m) => m.data === `api-${i}`, `api message ${i}`);
  }
  check(s.connected && disconnects.length === 0, `disconnected: ${disconnects.join(", ")}`);
  check(s.io.engine.id === firstSid, "the Engine.IO session changed");
  check(s.io.engine.transport.name === "polling", `transport is ${s.io.engine.transport.name}`);
  s.close();
  console.log(`ok: socket.io-client over long-polling through the round-robin proxy: one session, ${ROUNDS} rounds of publish, ack and receive`);
}

try {
  await socketio();
  for (const t of ["xhr-polling", "xhr-streaming"]) await sockjs(t);
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.stack || e.message}`);
  process.exit(1);
}
