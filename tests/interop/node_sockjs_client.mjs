#!/usr/bin/env node
// Interop: the real sockjs-client (npm) against tidings' /sockjs, each transport forced,
// exchanging messages with a WebSocket-native client (/ws, node `ws`) and a TCP-line client.
//
//   node node_sockjs_client.mjs http://127.0.0.1:HTTP 127.0.0.1:TCP
//
// Prints `ok: <scenario>` lines; exits 1 with `FAIL: ...` otherwise; never runs over 40 s.
import net from "node:net";
import { randomBytes } from "node:crypto";

let SockJS, WebSocket;
try {
  ({ default: SockJS } = await import("sockjs-client"));
  ({ default: WebSocket } = await import("ws"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [base, tcpAddr] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAIL: overall timeout of 40s exceeded");
  process.exit(1);
}, 40000).unref();

const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const within = (ms, what, p) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

/// Collects parsed messages and lets a test wait for one matching a predicate.
function inbox() {
  const items = [];
  const waiters = [];
  return {
    push(m) {
      items.push(m);
      for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    },
    wait(pred, what) {
      const found = items.find(pred);
      if (found) return Promise.resolve(found);
      return within(8000, what, new Promise((resolve) => waiters.push({ pred, resolve })));
    },
  };
}

async function wsClient(topic) {
  const ws = new WebSocket(base.replace("http", "ws") + "/ws");
  const box = inbox();
  ws.on("message", (d, bin) => { if (!bin) box.push(JSON.parse(d.toString())); });
  await within(5000, "ws open", new Promise((r, j) => { ws.on("open", r); ws.on("error", j); }));
  ws.send(JSON.stringify({ op: "subscribe", id: "s", topic }));
  await box.wait((m) => m.type === "ok" && m.id === "s", "ws subscribed");
  return { ws, box };
}

async function tcpClient(topic) {
  const [host, port] = tcpAddr.split(":");
  const sock = net.connect(Number(port), host);
  let buf = "";
  const box = inbox();
  sock.on("data", (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\r\n")) >= 0) { box.push(buf.slice(0, i)); buf = buf.slice(i + 2); }
  });
  await within(5000, "tcp connect", new Promise((r, j) => { sock.on("connect", r); sock.on("error", j); }));
  sock.write(`SUB ${topic}\r\n`);
  await box.wait((l) => l.startsWith(`+OK SUB ${topic}`), "tcp subscribed");
  return { sock, box };
}

async function scenario(transport) {
  const topic = `sockjs.${transport.replace("-", "_")}.${randomBytes(3).toString("hex")}`;
  const sj = new SockJS(base + "/sockjs", null, { transports: [transport] });
  const box = inbox();
  sj.onmessage = (e) => box.push(JSON.parse(e.data));
  await within(8000, `${transport} open`, new Promise((r, j) => { sj.onopen = r; sj.onclose = (e) => j(new Error(`closed ${e.code} ${e.reason}`)); }));
  check(sj.transport === transport, `expected transport ${transport}, got ${sj.transport}`);
  await box.wait((m) => m.type === "hello", "hello");
  sj.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
  await box.wait((m) => m.type === "ok" && m.id === 1, "sockjs subscribed");
  const ws = await wsClient(topic);
  const tcp = await tcpClient(topic);

  ws.ws.send(JSON.stringify({ op: "publish", topic, text: "from-ws" }));
  tcp.sock.write(`PUB ${topic} from-tcp\r\n`);
  await box.wait((m) => m.type === "message" && m.text === "from-ws", "ws -> sockjs");
  await box.wait((m) => m.type === "message" && m.text === "from-tcp", "tcp -> sockjs");

  sj.send(JSON.stringify({ op: "publish", id: 2, topic, text: `from-${transport}`, ack: true }));
  const ack = await box.wait((m) => m.type === "ok" && m.id === 2, "publish ack");
  check(Number.isInteger(ack.offset), `ack without offset: ${JSON.stringify(ack)}`);
  await ws.box.wait((m) => m.type === "message" && m.text === `from-${transport}`, "sockjs -> ws");
  await tcp.box.wait((l) => l === `MSG ${topic} ${ack.offset} from-${transport}`, "sockjs -> tcp");

  sj.close();
  ws.ws.close();
  tcp.sock.end();
  console.log(`ok: sockjs-client over ${transport} exchanges messages with /ws and TCP-line clients`);
}

try {
  for (const t of ["websocket", "xhr-streaming", "xhr-polling"]) await scenario(t);
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
}
