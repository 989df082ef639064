#!/usr/bin/env node
// Interop: @stomp/stompjs over sockjs-client (the way Spring applications do STOMP over
// SockJS) against tidings' /sockjs-stomp, each SockJS transport forced: subscribe with a
// receipt, send with a receipt, receive; a TCP-line client's message reaches the STOMP
// subscriber.
//
//   node node_stomp_sockjs.mjs http://127.0.0.1:HTTP 127.0.0.1:TCP
import net from "node:net";
import { randomBytes } from "node:crypto";

let SockJS, Client;
try {
  ({ default: SockJS } = await import("sockjs-client"));
  ({ Client } = await import("@stomp/stompjs"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}
const [base, tcpAddr] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAIL: overall timeout of 40s exceeded");
  process.exit(1);
}, 40000).unref();
const within = (ms, what, p) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

async function scenario(transport) {
  const topic = `stomp.sockjs.${transport.replace("-", "_")}.${randomBytes(3).toString("hex")}`;
  const got = [];
  let wake = () => {};
  const client = new Client({
    webSocketFactory: () => new SockJS(`${base}/sockjs-stomp`, null, { transports: [transport] }),
    reconnectDelay: 0,
    heartbeatIncoming: 4000,
    heartbeatOutgoing: 4000,
    debug: () => {},
  });
  const connected = new Promise((res, rej) => {
    client.onConnect = res;
    client.onStompError = (f) => rej(new Error(`ERROR frame: ${f.headers.message}`));
    client.onWebSocketClose = (e) => rej(new Error(`closed ${e.code}`));
  });
  client.activate();
  await within(8000, `${transport} connect`, connected);
  const receipts = new Set();
  client.onUnhandledReceipt = (f) => receipts.add(f.headers["receipt-id"]);
  const subscribed = new Promise((r) => client.watchForReceipt("sub-1", r));
  client.subscribe(`/topic/${topic}`, (m) => { got.push(m.body); wake(); }, { receipt: "sub-1" });
  await within(5000, "subscribe receipt", subscribed);
  const sent = new Promise((r) => client.watchForReceipt("send-1", r));
  client.publish({ destination: `/topic/${topic}`, body: `from-stompjs-${transport}`, headers: { receipt: "send-1" } });
  await within(5000, "send receipt", sent);
  const [host, port] = tcpAddr.split(":");
  const line = net.connect(Number(port), host);
  await new Promise((r) => line.on("connect", r));
  line.write(`PUB ${topic} from-tcp\r\n`);
  await within(5000, "messages", new Promise((res) => {
    wake = () => got.includes(`from-stompjs-${transport}`) && got.includes("from-tcp") && res();
    wake();
  }));
  line.end();
  await client.deactivate();
  console.log(`ok: @stomp/stompjs over sockjs-client ${transport}: subscribe, send, receipts, a TCP-line message`);
}

try {
  for (const t of ["websocket", "xhr-streaming", "xhr-polling"]) await scenario(t);
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
}
