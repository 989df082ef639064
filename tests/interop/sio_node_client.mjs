#!/usr/bin/env node
// Interop: the official socket.io-client (Node) against tidings' /socket.io/, meeting a
// WebSocket-native client (/ws, JSON protocol, node `ws`) and a TCP line-protocol client on
// the same topics.
//
//   node sio_node_client.mjs http://127.0.0.1:PORT 127.0.0.1:TCPPORT [--auth]
//
// Per transport (["polling"], ["websocket"], default = polling upgraded to WebSocket): acks
// with offsets, text / JSON / binary payloads across the three protocols. Then reconnection
// with connection state recovery of missed messages, namespaces and presence. With --auth
// (server configured with user alice/secret allowed to publish chat.> only): the handshake
// `auth` payload is checked. Prints `ok: <scenario>` lines; exits 1 with `FAIL: ...`.
import net from "node:net";
import { randomBytes } from "node:crypto";

let io, WebSocket;
try {
  ({ io } = await import("socket.io-client"));
  ({ default: WebSocket } = await import("ws"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [base, tcpAddr, mode] = process.argv.slice(2);
const OVERALL_MS = 25000;
const WAIT_MS = 5000;
setTimeout(() => {
  console.error(`FAIL: overall timeout of ${OVERALL_MS / 1000}s exceeded`);
  process.exit(1);
}, OVERALL_MS).unref();

const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const ok = (s) => console.log(`ok: ${s}`);
const unique = (p) => `${p}.${process.pid}x${randomBytes(3).toString("hex")}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Resolves with the first queued item matching `pred`, waiting up to WAIT_MS.
class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) w();
  }
  take(pred, what) {
    return new Promise((resolve, reject) => {
      const look = () => {
        const i = this.items.findIndex(pred);
        if (i >= 0) {
          this.waiters = this.waiters.filter((w) => w !== look);
          clearTimeout(timer);
          resolve(this.items.splice(i, 1)[0]);
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== look);
        reject(new Error(`${this.name}: no ${what} within ${WAIT_MS} ms; got ${JSON.stringify(this.items).slice(0, 600)}`));
      }, WAIT_MS);
      this.waiters.push(look);
      look();
    });
  }
}

function sio(nsp = "", opts = {}) {
  const s = io(base + nsp, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300, ...opts });
  s.inbox = new Inbox(`socket.io${nsp}`);
  s.on("message", (msg, offset) => s.inbox.push({ kind: "message", msg, offset }));
  s.on("presence", (p) => s.inbox.push({ kind: "presence", ...p }));
  s.on("error", (e) => s.inbox.push({ kind: "error", ...e }));
  return s;
}

function connected(s) {
  return new Promise((resolve, reject) => {
    if (s.connected) return resolve(s);
    const t = setTimeout(() => reject(new Error("socket.io: no connect within 5 s")), WAIT_MS);
    s.once("connect", () => (clearTimeout(t), resolve(s)));
    s.once("connect_error", (e) => (clearTimeout(t), reject(new Error(`connect_error: ${e.message}`))));
  });
}

const ack = (s, ...args) => s.timeout(WAIT_MS).emitWithAck(...args);

// --- the WebSocket-native client -------------------------------------------------------
async function nativeClient() {
  const url = base.replace(/^http/, "ws") + "/ws";
  const ws = new WebSocket(url);
  const inbox = new Inbox("ws");
  let id = 0;
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      const nl = data.indexOf(0x0a);
      inbox.push({ ...JSON.parse(data.subarray(0, nl).toString()), bytes: data.subarray(nl + 1) });
    } else inbox.push(JSON.parse(data.toString()));
  });
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  await inbox.take((f) => f.type === "hello", "hello");
  const request = async (op) => {
    const rid = ++id;
    ws.send(JSON.stringify({ ...op, id: rid }));
    const reply = await inbox.take((f) => f.id === rid, `reply ${rid}`);
    check(reply.type === "ok", `ws ${op.op}: ${JSON.stringify(reply)}`);
    return reply;
  };
  return { ws, inbox, request };
}

// --- the TCP line client ----------------------------------------------------------------
async function lineClient() {
  const [host, port] = tcpAddr.split(":");
  const sock = net.connect(Number(port), host);
  const inbox = new Inbox("tcp");
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const nl = buf.indexOf("\r\n");
      if (nl < 0) return;
      const line = buf.subarray(0, nl).toString();
      const m = /^BMSG (\S+) (\d+) (\d+)$/.exec(line);
      if (m) {
        const len = Number(m[3]);
        if (buf.length < nl + 2 + len + 2) return;
        inbox.push({ line, topic: m[1], offset: Number(m[2]), bytes: buf.subarray(nl + 2, nl + 2 + len) });
        buf = buf.subarray(nl + 2 + len + 2);
      } else {
        inbox.push({ line });
        buf = buf.subarray(nl + 2);
      }
    }
  });
  await new Promise((r, j) => (sock.once("connect", r), sock.once("error", j)));
  await inbox.take((i) => i.line.startsWith("+OK tidings"), "greeting");
  const send = (line) => sock.write(line + "\r\n");
  return { sock, inbox, send };
}

async function crossProtocol(label, transports) {
  const topic = unique(`sio.${label}`);
  const s = await connected(sio("", transports ? { transports } : {}));
  const w = await nativeClient();
  const t = await lineClient();
  const sub = await ack(s, "subscribe", topic);
  check(sub.ok && sub.topic === topic && typeof sub.epoch === "string", `subscribe ack: ${JSON.stringify(sub)}`);
  await w.request({ op: "subscribe", topic });
  t.send(`SUB ${topic}`);
  await t.inbox.take((i) => i.line.startsWith(`+OK SUB ${topic}`), "+OK SUB");

  // socket.io publishes text, JSON and binary; everyone gets each, in order.
  const p1 = await ack(s, "publish", topic, "hello from socket.io");
  check(p1.ok && p1.offset === 1 && p1.epoch === sub.epoch, `publish ack: ${JSON.stringify(p1)}`);
  const p2 = await ack(s, "publish", topic, { n: 2, list: [true, null] });
  check(p2.offset === 2, `second offset: ${JSON.stringify(p2)}`);
  const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
  const p3 = await ack(s, "publish", topic, bin);
  check(p3.offset === 3, `binary offset: ${JSON.stringify(p3)}`);

  const m1 = await s.inbox.take((i) => i.msg.offset === 1, "message 1");
  check(m1.msg.topic === topic && m1.msg.data === "hello from socket.io" && m1.offset === `1:${topic}`, `sio text: ${JSON.stringify(m1)}`);
  const m2 = await s.inbox.take((i) => i.msg.offset === 2, "message 2");
  check(JSON.stringify(m2.msg.data) === '{"n":2,"list":[true,null]}', `sio json: ${JSON.stringify(m2)}`);
  const m3 = await s.inbox.take((i) => i.msg.offset === 3, "message 3");
  check(Buffer.isBuffer(m3.msg.data) && m3.msg.data.equals(bin), `sio binary: ${JSON.stringify(m3)}`);

  const w1 = await w.inbox.take((f) => f.type === "message" && f.offset === 1, "ws message 1");
  check(w1.text === "hello from socket.io", `ws text: ${JSON.stringify(w1)}`);
  const w2 = await w.inbox.take((f) => f.type === "message" && f.offset === 2, "ws message 2");
  check(w2.data?.n === 2, `ws json: ${JSON.stringify(w2)}`);
  const w3 = await w.inbox.take((f) => f.type === "message" && f.offset === 3, "ws message 3");
  check(w3.bytes?.equals(bin), `ws binary: ${JSON.stringify(w3)}`);

  await t.inbox.take((i) => i.line === `MSG ${topic} 1 hello from socket.io`, "MSG 1");
  await t.inbox.take((i) => i.line === `MSG ${topic} 2 {"n":2,"list":[true,null]}`, "MSG 2");
  const t3 = await t.inbox.take((i) => i.topic === topic && i.offset === 3, "BMSG 3");
  check(t3.bytes.equals(bin), "tcp binary");
  ok(`${label}: socket.io publishes text, JSON and binary with acked offsets; ws and tcp receive them`);

  // The other protocols publish; socket.io receives.
  w.ws.send(JSON.stringify({ op: "publish", topic, data: { from: "ws" } }));
  const m4 = await s.inbox.take((i) => i.msg.offset === 4, "message 4 (from ws)");
  check(m4.msg.data?.from === "ws", `from ws: ${JSON.stringify(m4)}`);
  t.send(`PUB ${topic} from tcp`);
  const m5 = await s.inbox.take((i) => i.msg.offset === 5, "message 5 (from tcp)");
  check(m5.msg.data === "from tcp", `from tcp: ${JSON.stringify(m5)}`);
  t.sock.write(`BPUB ${topic} 3\r\n`);
  t.sock.write(Buffer.from([0xff, 0x00, 0x0a]));
  t.sock.write("\r\n");
  const m6 = await s.inbox.take((i) => i.msg.offset === 6, "message 6 (binary from tcp)");
  check(Buffer.isBuffer(m6.msg.data) && m6.msg.data.equals(Buffer.from([0xff, 0x00, 0x0a])), `binary from tcp: ${JSON.stringify(m6)}`);
  ok(`${label}: socket.io receives what ws (JSON) and tcp (text, binary) publish`);

  const transport = s.io.engine.transport.name;
  if (transports) check(transport === transports[0], `transport is ${transport}`);
  else {
    for (let i = 0; i < 50 && s.io.engine.transport.name !== "websocket"; i++) await sleep(50);
    check(s.io.engine.transport.name === "websocket", `default transport did not upgrade: ${s.io.engine.transport.name}`);
  }
  ok(`${label}: transport ${s.io.engine.transport.name}`);
  const u = await ack(s, "unsubscribe", topic);
  check(u.ok, `unsubscribe: ${JSON.stringify(u)}`);
  s.close();
  w.ws.close();
  t.sock.destroy();
}

async function recovery() {
  const topic = unique("sio.recover");
  const a = await connected(sio("", { transports: ["websocket"] }));
  const b = await connected(sio());
  await ack(a, "subscribe", topic);
  await ack(b, "publish", topic, "seen");
  await a.inbox.take((i) => i.msg.offset === 1, "message 1");
  const id = a.id;
  const back = new Promise((r) => a.once("connect", r));
  a.io.engine.close(); // the transport drops; the client reconnects by itself
  for (const text of ["missed 2", "missed 3"]) await ack(b, "publish", topic, text);
  await back;
  check(a.recovered === true, "socket.recovered should be true");
  check(a.id === id, `socket id kept: ${a.id} vs ${id}`);
  await ack(b, "publish", topic, "live 4");
  for (const n of [2, 3, 4]) await a.inbox.take((i) => i.msg.offset === n, `message ${n}`);
  await sleep(100);
  check(!a.inbox.items.some((i) => i.kind === "message"), `duplicates: ${JSON.stringify(a.inbox.items)}`);
  ok("reconnection with connection state recovery: missed messages 2, 3 replayed, then live 4, no duplicates");

  // Beyond recovery: an unknown pid is a fresh session (recovered false, no subscriptions).
  a.io.engine.close();
  await new Promise((r) => a.once("connect", r));
  check(a.recovered === true, "second recovery");
  a._pid = "not-a-session";
  a.io.engine.close();
  await new Promise((r) => a.once("connect", r));
  check(a.recovered === false && a.id !== id, "a forgotten session is not recovered");
  await ack(b, "publish", topic, "after reset");
  await sleep(200);
  check(!a.inbox.items.some((i) => i.kind === "message"), "a fresh session has no subscriptions");
  ok("an unknown recovery id gives a fresh session (recovered=false)");
  a.close();
  b.close();
}

async function namespacesAndPresence() {
  const room = unique("lobby").replace(/\./g, "_");
  const root = await connected(sio());
  const chat = await connected(sio("/chat"));
  const sub = await ack(chat, "subscribe", room, { presence: true });
  check(sub.ok && sub.topic === room, `ns subscribe: ${JSON.stringify(sub)}`);
  const other = await connected(sio("/chat"));
  await ack(other, "subscribe", room);
  const join = await chat.inbox.take((i) => i.kind === "presence" && i.event === "join", "presence join");
  check(join.topic === room && /^c\d+$/.test(join.client), `join: ${JSON.stringify(join)}`);
  const who = await ack(chat, "presence", room);
  check(who.members.length === 2, `members: ${JSON.stringify(who)}`);
  const p = await ack(root, "publish", `chat.${room}`, "to the chat namespace");
  const m = await chat.inbox.take((i) => i.kind === "message", "message in /chat");
  check(m.msg.topic === room && m.msg.offset === p.offset && m.offset === `${p.offset}:chat.${room}`, `ns message: ${JSON.stringify(m)}`);
  other.close();
  const leave = await chat.inbox.take((i) => i.kind === "presence" && i.event === "leave", "presence leave");
  check(leave.client === join.client, "leave names the same client");
  const hist = await ack(chat, "history", room);
  check(hist.messages.length === 1 && hist.messages[0].data === "to the chat namespace", `history: ${JSON.stringify(hist)}`);
  ok("namespace /chat sees chat.* topics by relative name; presence join/leave; history");
  const bad = sio("/no.such", { reconnection: false });
  const err = await new Promise((r) => bad.once("connect_error", r));
  check(err.message === "Invalid namespace", `unknown namespace: ${err.message}`);
  ok("unknown namespace: connect_error Invalid namespace");
  const e = await ack(root, "subscribe", "bad..topic");
  check(e.ok === false && e.error === "bad_request", `bad topic: ${JSON.stringify(e)}`);
  root.emit("publish"); // no ack: an error event
  const ev = await root.inbox.take((i) => i.kind === "error", "error event");
  check(ev.event === "publish" && ev.error === "bad_request", `error event: ${JSON.stringify(ev)}`);
  ok("bad requests: error in the ack, or an error event without one");
  root.close();
  chat.close();
  bad.close();
}

async function auth() {
  const bad = sio("", { auth: { user: "alice", password: "wrong" }, reconnection: false });
  const err = await new Promise((r) => bad.once("connect_error", r));
  check(err.data?.code === "unauthorized", `bad credentials: ${err.message} ${JSON.stringify(err.data)}`);
  bad.close();
  const alice = await connected(sio("", { auth: { user: "alice", password: "secret" } }));
  const ok1 = await ack(alice, "publish", unique("chat.auth"), "hi");
  check(ok1.ok, `alice may publish to chat.>: ${JSON.stringify(ok1)}`);
  const no = await ack(alice, "publish", unique("other.auth"), "hi");
  check(no.ok === false && no.error === "forbidden", `alice may not publish elsewhere: ${JSON.stringify(no)}`);
  const anon = await connected(sio());
  const no2 = await ack(anon, "publish", unique("chat.auth"), "hi");
  check(no2.ok === false && no2.error === "forbidden", `anonymous may not publish: ${JSON.stringify(no2)}`);
  ok("handshake auth: bad credentials refused (connect_error), rights per user and anonymous");
  alice.close();
  anon.close();
}

try {
  if (mode === "--auth") {
    await auth();
  } else {
    await crossProtocol("polling", ["polling"]);
    await crossProtocol("websocket", ["websocket"]);
    await crossProtocol("upgrade", undefined);
    await recovery();
    await namespacesAndPresence();
  }
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
}
