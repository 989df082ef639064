#!/usr/bin/env node
// Interop: permessage-deflate on Socket.IO's WebSocket. The official socket.io-client in Node
// (its `ws` WebSocket offers permessage-deflate by default) connects over WebSocket; the
// server must accept the extension (`ws.extensions` lists it) and a message bigger than the
// client's compression threshold must round-trip (a publish acknowledged, then delivered).
//
//   node sio_deflate.mjs http://127.0.0.1:PORT TCPADDR [--expect-off]
//
// With --expect-off (server configured with `socketio.compression = false`) the extension
// must not be negotiated. Prints `ok: <scenario>` lines; exits 1 with `FAIL: ...`.
let io;
try {
  ({ io } = await import("socket.io-client"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [base, , mode] = process.argv.slice(2); // the second argument (a TCP address) is unused
const expectOn = mode !== "--expect-off";
setTimeout(() => {
  console.error("FAIL: overall timeout of 15s exceeded");
  process.exit(1);
}, 15000).unref();

const s = io(base, { transports: ["websocket"], forceNew: true, reconnection: false });
try {
  await new Promise((resolve, reject) => {
    s.on("connect", resolve);
    s.on("connect_error", reject);
  });
  const ws = s.io.engine.transport.ws;
  // ws 8 reports the negotiated extensions as the response header's text.
  const negotiated = typeof ws.extensions === "string" ? ws.extensions : Object.keys(ws.extensions || {}).join(", ");
  const on = negotiated.includes("permessage-deflate");
  if (on !== expectOn) {
    throw new Error(`permessage-deflate negotiated: ${on} (extensions ${JSON.stringify(negotiated)}), expected ${expectOn}`);
  }
  console.log(`ok: permessage-deflate ${on ? "negotiated" : "not negotiated"}`);
  const topic = `deflate.t${process.pid}`;
  const big = "tidings ".repeat(1000); // 8000 bytes, above the client's 1024-byte threshold
  const ack = await s.timeout(5000).emitWithAck("subscribe", topic);
  if (!ack.ok) throw new Error(`subscribe: ${JSON.stringify(ack)}`);
  const got = new Promise((resolve) => s.on("message", (m) => resolve(m)));
  const pub = await s.timeout(5000).emitWithAck("publish", topic, big);
  if (!pub.ok) throw new Error(`publish: ${JSON.stringify(pub)}`);
  const msg = await got;
  if (msg.data !== big) throw new Error("the big message came back different");
  console.log("ok: a compressed message round-trips");
  s.close();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
}
