#!/usr/bin/env node
// Interop: the real @stomp/stompjs client against tidings' STOMP broker, over WebSocket (node
// `ws`) or over TCP (@stomp/tcp-wrapper).
//
//   node node_stomp_client.mjs ws  ws://HOST:HTTP_PORT/stomp  --line HOST:PORT --native ws://HOST:HTTP_PORT/ws
//   node node_stomp_client.mjs tcp HOST:STOMP_PORT            --line HOST:PORT --native ws://HOST:HTTP_PORT/ws
//
// Scenarios (each prints `ok: <name>`): pub/sub with wildcards and user headers, receipts, a
// binary body with NUL bytes, queues in each ack mode, redelivery after a consumer dies,
// NACK, transactions (commit and abort), heart-beats keeping a connection alive and a silent
// peer being dropped, cross-protocol traffic with a TCP line client and a native WebSocket
// client. The server must run with `[stomp_broker] heart_beat_send_ms = 200,
// heart_beat_receive_ms = 200`. Exits 1 with `FAIL: ...` on failure; never runs longer than 40 s.
import { randomBytes } from "node:crypto";
import net from "node:net";

let Client, TCPWrapper, WebSocket;
try {
  ({ Client } = await import("@stomp/stompjs"));
  ({ TCPWrapper } = await import("@stomp/tcp-wrapper"));
  ({ default: WebSocket } = await import("ws"));
} catch (e) {
  console.error(`FAIL: ${e.message}: run scripts/install-test-deps.sh`);
  process.exit(3);
}

const OVERALL_MS = 40000;
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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const [transport, target, ...rest] = process.argv.slice(2);
const opt = (name) => {
  const i = rest.indexOf(name);
  check(i >= 0 && rest[i + 1], `missing ${name}`);
  return rest[i + 1];
};
const lineAddr = opt("--line");
const nativeUrl = opt("--native");
check(transport === "ws" || transport === "tcp", `transport must be ws or tcp, not ${transport}`);

/** A queue of things with a timed wait. */
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }
  put(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else this.items.push(x);
  }
  get(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new Failure(`no ${this.what} within ${WAIT_MS} ms: ${what}`));
      }, WAIT_MS);
      const done = (x) => {
        clearTimeout(t);
        resolve(x);
      };
      this.waiters.push(done);
    });
  }
  async quiet(what, ms = 300) {
    await sleep(ms);
    check(this.items.length === 0, `unexpected ${this.what} (${what}): ${JSON.stringify(this.items[0]?.headers)}`);
  }
}

const open = [];

/** Connects a stompjs client; resolves once CONNECTED. */
function connect({ heartbeat = 0, name = "c" } = {}) {
  const errors = new Inbox("ERROR frame");
  const closed = new Inbox("close");
  const receipts = new Map();
  const client = new Client({
    webSocketFactory: () =>
      transport === "ws"
        ? new WebSocket(target, ["v12.stomp", "v11.stomp", "v10.stomp"])
        : new TCPWrapper(...hostPort(target)),
    heartbeatIncoming: heartbeat,
    heartbeatOutgoing: heartbeat,
    reconnectDelay: 0,
    debug: () => {},
  });
  client.onStompError = (frame) => errors.put(frame);
  client.onWebSocketClose = () => closed.put(true);
  const c = { client, errors, closed, receipts, name };
  c.receipt = (id) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Failure(`${name}: no RECEIPT ${id} within ${WAIT_MS} ms`)), WAIT_MS);
      client.watchForReceipt(id, () => {
        clearTimeout(t);
        resolve();
      });
    });
  // Sends with a receipt and waits for it.
  c.publish = async (destination, body, headers = {}) => {
    const id = unique("r");
    const p = c.receipt(id);
    const frame = { destination, headers: { ...headers, receipt: id } };
    if (typeof body === "string") frame.body = body;
    else frame.binaryBody = body;
    client.publish(frame);
    await p;
  };
  c.subscribe = async (destination, headers = {}) => {
    const inbox = new Inbox(`message on ${destination}`);
    const id = unique("s");
    const p = c.receipt(id);
    const sub = client.subscribe(destination, (m) => inbox.put(m), { ...headers, receipt: id });
    await p;
    inbox.sub = sub;
    return inbox;
  };
  open.push(client);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Failure(`${name}: not CONNECTED within ${WAIT_MS} ms`)), WAIT_MS);
    client.onConnect = (frame) => {
      clearTimeout(t);
      c.connected = frame;
      resolve(c);
    };
    client.activate();
  });
}

function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

async function pubsub() {
  const a = await connect({ name: "a" });
  check(a.connected.headers.version === "1.2", `version ${JSON.stringify(a.connected.headers)}`);
  const b = await connect({ name: "b" });
  const base = unique("js");
  const star = await a.subscribe(`/topic/${base}.*`);
  const hash = await b.subscribe(`/topic/${base}.#`);
  const p = await connect({ name: "p" });
  await p.publish(`/topic/${base}.one`, "first", { "x-custom": "hi there", "x-colon": "a:b" });
  await p.publish(`/topic/${base}.one.two`, "second");
  const m = await star.get("the * subscriber");
  check(m.body === "first", `star body ${m.body}`);
  check(m.headers["x-custom"] === "hi there" && m.headers["x-colon"] === "a:b", `headers ${JSON.stringify(m.headers)}`);
  check(m.headers.destination === `/topic/${base}.one`, `destination ${m.headers.destination}`);
  await star.quiet("`*` matches one token only");
  const got = [(await hash.get("# 1")).body, (await hash.get("# 2")).body];
  check(got.join() === "first,second", `hash got ${got}`);
  ok("pub/sub with wildcards (*, #), user headers travel, receipts after effect");
}

async function binary() {
  const s = await connect();
  const topic = unique("js.bin");
  const inbox = await s.subscribe(`/topic/${topic}`);
  const body = new Uint8Array([0, 1, 98, 0, 0xff, 0xfe, 13, 10, 0]);
  await s.publish(`/topic/${topic}`, body, { "content-type": "application/octet-stream" });
  const m = await inbox.get("binary body");
  check(Buffer.from(m.binaryBody).equals(Buffer.from(body)), `binary body ${Buffer.from(m.binaryBody).toString("hex")}`);
  ok("a binary body with NUL bytes arrives intact (content-length)");
}

async function queues() {
  const p = await connect({ name: "p" });
  let dest = `/queue/${unique("js.q")}`;
  for (let i = 0; i < 4; i++) await p.publish(dest, `m${i}`);
  const a = await connect({ name: "qa" });
  const qa = await a.subscribe(dest);
  const kept = [];
  for (let i = 0; i < 4; i++) kept.push((await qa.get("kept messages")).body);
  check(kept.join() === "m0,m1,m2,m3", `kept ${kept}`);
  const b = await connect({ name: "qb" });
  const qb = await b.subscribe(dest);
  for (let i = 4; i < 8; i++) await p.publish(dest, `m${i}`);
  const got = [];
  for (let i = 0; i < 2; i++) got.push((await qa.get("rr a")).body, (await qb.get("rr b")).body);
  check(got.sort().join() === "m4,m5,m6,m7", `round robin ${got}`);
  await qa.quiet("each message exactly once");
  ok("queue: kept while no consumer, then round-robin, each message to exactly one (ack auto)");

  // client: cumulative.
  dest = `/queue/${unique("js.qc")}`;
  const c = await connect({ name: "qc" });
  const qc = await c.subscribe(dest, { ack: "client" });
  for (let i = 0; i < 3; i++) await p.publish(dest, `c${i}`);
  const ms = [await qc.get("c0"), await qc.get("c1"), await qc.get("c2")];
  const rid = unique("ack");
  const acked = c.receipt(rid);
  ms[2].ack({ receipt: rid });
  await acked;
  c.client.forceDisconnect();
  const d = await connect({ name: "qd" });
  const qd = await d.subscribe(dest, { ack: "client" });
  await qd.quiet("a cumulative ACK covered every earlier message", 500);
  ok("queue: ack client is cumulative");

  // client-individual + redelivery after a consumer dies.
  dest = `/queue/${unique("js.qi")}`;
  const e = await connect({ name: "qe" });
  const qe = await e.subscribe(dest, { ack: "client-individual", "prefetch-count": "10" });
  for (let i = 0; i < 3; i++) await p.publish(dest, `i${i}`);
  const es = [await qe.get("i0"), await qe.get("i1"), await qe.get("i2")];
  const rid2 = unique("ack");
  const acked2 = e.receipt(rid2);
  es[1].ack({ receipt: rid2 });
  await acked2;
  const f = await connect({ name: "qf" });
  const qf = await f.subscribe(dest, { ack: "client-individual" });
  e.client.forceDisconnect();
  const again = [await qf.get("redelivered 1"), await qf.get("redelivered 2")];
  check(again.map((m) => m.body).join() === "i0,i2", `redelivered ${again.map((m) => m.body)}`);
  check(again.every((m) => m.headers.redelivered === "true"), "redelivered flag missing");
  ok("queue: ack client-individual; a dead consumer's unacked messages go to another, marked redelivered");

  // NACK: to the other consumer.
  again.forEach((m) => m.ack());
  const g = await connect({ name: "qg" });
  const qg = await g.subscribe(dest, { ack: "client-individual" });
  await p.publish(dest, "nack-me");
  // Round-robin may pick either; whoever gets it NACKs it and the other must get it.
  let first;
  for (let t = 0; !first && t < WAIT_MS / 20; t++) {
    if (qf.items.length) first = [qf.items.shift(), qg];
    else if (qg.items.length) first = [qg.items.shift(), qf];
    else await sleep(20);
  }
  check(first, "nobody got the message to NACK");
  const [m, other] = first;
  m.nack();
  const m2 = await other.get("the NACKed message at the other consumer");
  check(m2.body === "nack-me" && m2.headers.redelivered === "true", `after NACK ${JSON.stringify(m2.headers)} ${m2.body}`);
  ok("queue: NACK gives the message to another consumer, marked redelivered");
}

async function transactions() {
  const topic = `/topic/${unique("js.tx")}`;
  const s = await connect({ name: "txs" });
  const sub = await s.subscribe(topic);
  const qdest = `/queue/${unique("js.txq")}`;
  const p = await connect({ name: "txp" });
  await p.publish(qdest, "to-ack");
  const c = await connect({ name: "txc" });
  const qc = await c.subscribe(qdest, { ack: "client-individual" });
  const m = await qc.get("to ack in a transaction");

  const tx = p.client.begin();
  p.client.publish({ destination: topic, body: "one", headers: { transaction: tx.id } });
  p.client.publish({ destination: topic, body: "two", headers: { transaction: tx.id } });
  const ctx = c.client.begin();
  m.ack({ transaction: ctx.id });
  await sub.quiet("nothing before COMMIT");
  tx.commit();
  // stompjs's commit takes no headers; a later frame's receipt shows the COMMIT was handled.
  await p.publish(`/topic/${unique("js.barrier")}`, "barrier");
  check([(await sub.get("one")).body, (await sub.get("two")).body].join() === "one,two", "committed messages");
  ctx.commit();

  const tx2 = p.client.begin();
  p.client.publish({ destination: topic, body: "never", headers: { transaction: tx2.id } });
  tx2.abort();
  await p.publish(topic, "after");
  check((await sub.get("after abort")).body === "after", "an aborted SEND was delivered");
  c.client.forceDisconnect();
  const d = await connect({ name: "txd" });
  const qd = await d.subscribe(qdest, { ack: "client-individual" });
  await qd.quiet("the committed ACK holds", 500);
  ok("transactions: SENDs and ACKs apply at COMMIT, nothing on ABORT");
}

async function heartBeats() {
  const c = await connect({ heartbeat: 200, name: "hb" });
  check(c.connected.headers["heart-beat"] === "200,200", `heart-beat ${c.connected.headers["heart-beat"]}`);
  await sleep(1500);
  check(c.client.connected, "dropped although beating");
  await c.publish(`/topic/${unique("js.hb")}`, "alive");
  ok("heart-beats keep an idle connection open");

  const silent = await connect({ heartbeat: 200, name: "silent" });
  // Stop every write below stompjs: the server hears nothing more.
  silent.client.webSocket.send = () => {};
  const e = await silent.errors.get("the ERROR for a silent peer");
  check(String(e.headers.message).includes("heart-beat"), `ERROR ${JSON.stringify(e.headers)}`);
  await silent.closed.get("the close of a silent peer");
  ok("a silent peer is dropped (ERROR, then close)");
}

/** The TCP line protocol, as `nc` would speak it. */
function lineClient(addr) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(...hostPort(addr).reverse());
    const lines = new Inbox("line");
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.put(buf.slice(0, i).replace(/\r$/, ""));
        buf = buf.slice(i + 1);
      }
    });
    sock.on("error", reject);
    const c = {
      sock,
      async expect(pred, what) {
        for (;;) {
          const l = await lines.get(what);
          if (pred(l)) return l;
        }
      },
      async cmd(line) {
        sock.write(line + "\r\n");
        const r = await c.expect((l) => l.startsWith("+OK") || l.startsWith("-ERR"), line);
        check(r.startsWith("+OK"), `${line}: ${r}`);
      },
    };
    c.expect((l) => l.startsWith("+OK"), "greeting").then(() => resolve(c), reject);
  });
}

/** The native JSON protocol over WebSocket. */
function nativeClient(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames = new Inbox("native frame");
    let n = 0;
    ws.on("message", (d) => frames.put(JSON.parse(d.toString("utf8"))));
    ws.on("error", reject);
    const c = {
      ws,
      async expect(pred, what) {
        for (;;) {
          const f = await frames.get(what);
          if (pred(f)) return f;
        }
      },
      async request(obj) {
        const id = ++n;
        ws.send(JSON.stringify({ ...obj, id }));
        const r = await c.expect((f) => f.id === id, JSON.stringify(obj));
        check(r.type === "ok", `${JSON.stringify(obj)}: ${JSON.stringify(r)}`);
        return r;
      },
    };
    ws.on("open", () => resolve(c));
  });
}

async function crossProtocol() {
  const topic = unique("js.cross");
  const s = await connect({ name: "cross" });
  const inbox = await s.subscribe(`/topic/${topic}`);
  const line = await lineClient(lineAddr);
  const native = await nativeClient(nativeUrl);
  await line.cmd(`PUB ${topic} hello from the line protocol`);
  check((await inbox.get("from line")).body === "hello from the line protocol", "line -> stomp");
  await native.request({ op: "publish", topic, text: "hello from ws", ack: true });
  check((await inbox.get("from native ws")).body === "hello from ws", "native -> stomp");
  ok("STOMP subscriber receives what TCP-line and WebSocket-native clients publish");

  const back = unique("js.back");
  await line.cmd(`SUB ${back}`);
  await native.request({ op: "subscribe", topic: back });
  await s.publish(`/topic/${back}`, "from stomp");
  await line.expect((l) => l === `MSG ${back} 1 from stomp`, "the line MSG");
  const f = await native.expect((f) => f.type === "message" && f.topic === back, "the native message");
  check(f.text === "from stomp", `native got ${JSON.stringify(f)}`);
  ok("TCP-line and WebSocket-native subscribers receive what a STOMP client sends");
  line.sock.destroy();
  native.ws.close();
}

try {
  await pubsub();
  await binary();
  await queues();
  await transactions();
  await heartBeats();
  await crossProtocol();
  ok(`all @stomp/stompjs scenarios over ${transport}`);
  for (const c of open) c.forceDisconnect();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e instanceof Failure ? e.message : e.stack}`);
  process.exit(1);
}
