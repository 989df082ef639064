#!/usr/bin/env node
// SockJS broadcast benchmark: C sockjs-client connections on one transport receive every
// message a publisher sends at a fixed rate; prints deliveries/s, p50/p99 latency and the
// server's RSS. Run by bench/sockjs/run.sh against tidings and sockjs-node side by side.
//   node bench.mjs --url http://127.0.0.1:PORT/sockjs --pid PID --tidings 1 --transport xhr-streaming
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import SockJS from "sockjs-client";

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (i % 2 ? a : [...a, [v.replace(/^--/, ""), all[i + 1]]]), []));
const url = args.url, pid = Number(args.pid), tidings = args.tidings === "1";
const transport = args.transport || "xhr-streaming";
const clients = Number(args.clients || 1000), workers = Number(args.workers || 4);
const rate = Number(args.rate || 100), seconds = Number(args.seconds || 10);
const topic = "bench.sockjs";
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);

const kids = [];
let connected = 0;
await Promise.all(Array.from({ length: workers }, (_, i) => new Promise((res) => {
  const n = Math.floor(clients / workers) + (i < clients % workers ? 1 : 0);
  const k = fork(new URL("./worker.mjs", import.meta.url), [JSON.stringify({ url, clients: n, transport, tidings, topic })]);
  k.once("message", (m) => { connected += m.connected; res(); });
  kids.push(k);
})));
const pubSock = new SockJS(url, null, { transports: ["websocket"] });
await new Promise((r) => (pubSock.onopen = r));
const rssIdle = rss();
const started = Date.now();
let sent = 0;
const timer = setInterval(() => {
  const t = Date.now();
  pubSock.send(tidings ? JSON.stringify({ op: "publish", topic, text: String(t) }) : JSON.stringify({ t }));
  sent++;
}, 1000 / rate);
let rssPeak = rssIdle;
const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rss())), 250);
await new Promise((r) => setTimeout(r, seconds * 1000));
clearInterval(timer);
await new Promise((r) => setTimeout(r, 2000)); // let the tail arrive
clearInterval(sampler);
const reports = await Promise.all(kids.map((k) => new Promise((res) => { k.once("message", res); k.send("report"); })));
const lat = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
const received = reports.reduce((a, r) => a + r.received, 0);
const elapsed = (Date.now() - started) / 1000 - 2;
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
console.log(JSON.stringify({
  server: tidings ? "tidings" : "sockjs-node", transport, clients, connected, rate, sent, expected: sent * connected, received,
  deliveries_per_s: Math.round(received / elapsed), p50_ms: q(0.5), p99_ms: q(0.99),
  rss_idle_mib: +(rssIdle / 1024).toFixed(1), rss_peak_mib: +(rssPeak / 1024).toFixed(1),
}));
for (const k of kids) k.send("exit");
pubSock.close();
setTimeout(() => process.exit(0), 500);
