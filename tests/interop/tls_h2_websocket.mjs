// Interop: a WebSocket over one HTTP/2 stream (RFC 8441 extended CONNECT), with node's own
// http2 client (no WebSocket library speaks it yet; the frames are written by hand here).
//
//     node tls_h2_websocket.mjs https://127.0.0.1:PORT      (NODE_EXTRA_CA_CERTS=the test CA)
//
// Checks that the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, that CONNECT
// :protocol=websocket on /echo gets 200, that masked text frames are echoed on that stream
// while plain requests share the same connection, that /ws gives the native hello, and that
// Socket.IO's WebSocket transport opens and connects over one too.
// Prints `ok: ...` per scenario and `ok: all ...` at the end; exits 1 with `FAIL: ...`.

import http2 from "node:http2";
import { randomBytes } from "node:crypto";

const base = process.argv[2];
const WAIT_MS = 5000;
setTimeout(() => {
  console.error("FAIL: overall timeout of 20s exceeded");
  process.exit(1);
}, 20000).unref();
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const ok = (s) => console.log(`ok: ${s}`);

/** A client WebSocket frame (FIN, masked). */
function frame(opcode, payload) {
  const data = Buffer.from(payload);
  check(data.length < 126, "short frames only");
  const mask = randomBytes(4);
  const masked = Buffer.from(data.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | data.length]), mask, masked]);
}

/** Reads whole server frames (unmasked, short or 16-bit length) from a stream. */
function frames(stream) {
  let buf = Buffer.alloc(0);
  const queue = [];
  const waiters = [];
  stream.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) break;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        off = 4;
      }
      check(len !== 127, "no 64-bit lengths expected");
      if (buf.length < off + len) break;
      const f = { opcode: buf[0] & 0x0f, data: buf.subarray(off, off + len).toString() };
      buf = buf.subarray(off + len);
      const w = waiters.shift();
      if (w) w(f);
      else queue.push(f);
    }
  });
  return () =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise((resolve, reject) => {
          waiters.push(resolve);
          setTimeout(() => reject(new Error("no frame within 5 s")), WAIT_MS).unref();
        });
}

function connect(session, path) {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "CONNECT",
      ":protocol": "websocket",
      ":scheme": "https",
      ":path": path,
      "sec-websocket-version": "13",
    });
    stream.on("response", (headers) => resolve({ stream, status: headers[":status"] }));
    stream.on("error", reject);
  });
}

function get(session, path) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":path": path });
    let body = "";
    req.setEncoding("utf8");
    req.on("response", (h) => {
      req.on("data", (d) => (body += d));
      req.on("end", () => resolve({ status: h[":status"], body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  const session = http2.connect(base);
  session.on("error", (e) => {
    console.error(`FAIL: session error ${e}`);
    process.exit(1);
  });
  const settings = await new Promise((resolve) => session.once("remoteSettings", resolve));
  check(settings.enableConnectProtocol === true, `no SETTINGS_ENABLE_CONNECT_PROTOCOL: ${JSON.stringify(settings)}`);
  check(session.alpnProtocol === "h2", `ALPN chose ${session.alpnProtocol}`);
  ok("h2 negotiated by ALPN; server advertises extended CONNECT");

  const echo = await connect(session, "/echo");
  check(echo.status === 200, `CONNECT /echo answered ${echo.status}`);
  const next = frames(echo.stream);
  for (const text of ["hello over h2", "second ✓"]) {
    echo.stream.write(frame(0x1, text));
    const f = await next();
    check(f.opcode === 1 && f.data === text, `echo of ${text}: ${JSON.stringify(f)}`);
  }
  ok("/echo over an HTTP/2 stream echoes text frames");

  const health = await get(session, "/healthz");
  check(health.status === 200 && health.body.includes("ok"), `healthz beside the WebSocket: ${JSON.stringify(health)}`);
  ok("a plain request shares the connection with the WebSocket");

  const native = await connect(session, "/ws");
  check(native.status === 200, `CONNECT /ws answered ${native.status}`);
  const hello = JSON.parse((await frames(native.stream)()).data);
  check(hello.type === "hello", `first /ws frame is not hello: ${JSON.stringify(hello)}`);
  ok("/ws over an HTTP/2 stream says hello");

  // Socket.IO over its own Engine.IO on the same seam: the OPEN packet, then CONNECT to "/".
  const sio = await connect(session, "/socket.io/?EIO=4&transport=websocket");
  check(sio.status === 200, `CONNECT /socket.io/ answered ${sio.status}`);
  const sioNext = frames(sio.stream);
  const open = (await sioNext()).data;
  check(open.startsWith('0{"sid"'), `first Engine.IO packet is not OPEN: ${open}`);
  sio.stream.write(frame(0x1, "40"));
  const connected = (await sioNext()).data;
  check(connected.startsWith('40{"sid"'), `no Socket.IO CONNECT reply: ${connected}`);
  ok("Socket.IO over an HTTP/2 stream opens and connects to /");

  echo.stream.write(frame(0x8, Buffer.from([0x03, 0xe8])));
  native.stream.close();
  sio.stream.close();
  session.close();
  ok("all RFC 8441 scenarios");
  process.exit(0);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
