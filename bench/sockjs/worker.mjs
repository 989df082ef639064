// One load-generator process: N sockjs-client connections that subscribe (tidings) and time
// every broadcast they receive. Reports latencies to the parent over IPC.
import SockJS from "sockjs-client";

const { url, clients, transport, tidings, topic } = JSON.parse(process.argv[2]);
const latencies = [];
let received = 0;
let ready = 0;
let failed = 0;
const socks = [];
// A connection that never opens (refused, reset under load) counts as failed, not forever pending.
const settle = () => { if (ready + failed === clients) process.send({ ready: true, connected: ready, failed }); };
setTimeout(() => { failed = clients - ready; settle(); }, 30000).unref();
for (let i = 0; i < clients; i++) {
  const s = new SockJS(url, null, { transports: [transport] });
  s.onopen = () => {
    if (tidings) s.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
    else { s.counted = true; ready++; settle(); }
  };
  s.onclose = () => { if (!s.counted) { s.counted = true; failed++; settle(); } };
  s.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    if (tidings && m.type === "ok" && m.id === 1) { s.counted = true; ready++; settle(); return; }
    const body = tidings ? (m.type === "message" ? m.text : undefined) : m.t;
    if (body === undefined) return; // hello and replies are not broadcasts
    const sent = Number(body);
    if (typeof sent === "number" && !Number.isNaN(sent)) {
      if (process.env.DUPCHECK) { s.seen ??= new Set(); if (s.seen.has(sent)) console.error("dup", i, sent, JSON.stringify(m)); s.seen.add(sent); }
      received++; latencies.push(Date.now() - sent);
    }
  };
  socks.push(s);
}
process.on("message", (cmd) => {
  if (cmd === "report") { process.send({ received, latencies }); latencies.length = 0; received = 0; }
  if (cmd === "exit") { for (const s of socks) s.close(); setTimeout(() => process.exit(0), 200); }
});
