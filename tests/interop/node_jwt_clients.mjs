#!/usr/bin/env node
// Interop: signed tokens (JWT) with the real clients of each protocol against `tidings serve`
// started with TIDINGS_JWT_SECRET (and `[auth.jwt] leeway_secs = 0`).
//
//   node node_jwt_clients.mjs HTTP_ADDR TCP_ADDR STOMP_ADDR SECRET TOKEN USER PASSWORD
//
// TOKEN comes from `tidings token --sub ann --publish 'chat.*' --subscribe 'chat.>'`; the
// others are signed here with node's crypto (HS256), so every bad kind can be made. USER and
// PASSWORD are a configured user whose password is an argon2id `password_hash`.
//
// Scenarios (each prints `ok: <name>`): node `ws` on /ws (token on the URL and in `auth`,
// exactly its rights, each bad token kind refused by name, expiry closing with 4401, refresh
// narrowing rights and ending a subscription); @stomp/stompjs over WebSocket and over TCP
// (`Authorization: Bearer`, `passcode` alone, refusals, expiry ERROR); socket.io-client
// (handshake `auth: {token}`, connect_error, `refresh` event, expiry disconnect); fetch for
// SSE (`?token=`, Bearer, the token_expired event) and the HTTP API; the TCP line protocol
// (`AUTH TOKEN`, expiry `-ERR`, the hashed password). Exits 1 with `FAIL: ...`.
import { createHmac } from "node:crypto";
import net from "node:net";

let WebSocket, Client, TCPWrapper, io;
try {
  ({ default: WebSocket } = await import("ws"));
  ({ Client } = await import("@stomp/stompjs"));
  ({ TCPWrapper } = await import("@stomp/tcp-wrapper"));
  ({ io } = await import("socket.io-client"));
} catch (e) {
  console.error(`FAIL: ${e.message}: run scripts/install-test-deps.sh`);
  process.exit(3);
}

const OVERALL_MS = 60000;
const WAIT_MS = 6000;
setTimeout(() => {
  console.error(`FAIL: overall timeout of ${OVERALL_MS / 1000}s exceeded`);
  process.exit(1);
}, OVERALL_MS).unref();

class Failure extends Error {}
const check = (cond, msg) => {
  if (!cond) throw new Failure(msg);
};
const ok = (s) => console.log(`ok: ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, what, ms = WAIT_MS) =>
  Promise.race([p, sleep(ms).then(() => Promise.reject(new Failure(`no ${what} within ${ms} ms`)))]);

const [http, tcp, stompAddr, SECRET, TOKEN, USER, PASSWORD] = process.argv.slice(2);
check(PASSWORD, "usage: node_jwt_clients.mjs HTTP TCP STOMP SECRET TOKEN USER PASSWORD");

// ---- tokens ---------------------------------------------------------------------------
const b64 = (o) => Buffer.from(typeof o === "string" ? o : JSON.stringify(o)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
function sign(claims, { secret = SECRET, alg = "HS256" } = {}) {
  const data = `${b64({ alg, typ: "JWT" })}.${b64(claims)}`;
  if (alg === "none") return `${data}.`;
  return `${data}.${createHmac("sha256", secret).update(data).digest("base64url")}`;
}
const tok = (sub, ttl, publish = ["chat.*"], subscribe = ["chat.>"]) =>
  sign({ sub, exp: now() + ttl, tidings: { publish, subscribe } });
const BAD = [
  ["not-a-token", "malformed"],
  [sign({ sub: "ann", exp: now() + 60 }, { secret: "another-secret-of-at-least-32-bytes!" }), "bad signature"],
  [tok("ann", -10), "expired"],
  [sign({ sub: "ann", exp: now() + 60 }, { alg: "none" }), "algorithm not allowed"],
  [sign({ sub: "ann", exp: now() + 60, nbf: now() + 300 }), "not yet valid"],
  [sign({ sub: "ann", exp: now() + 60, aud: "another-service" }), "wrong audience"],
  [sign({ sub: "ann" }), "missing the exp claim"],
];

// ---- native WebSocket (/ws) -------------------------------------------------------------
/** Opens /ws (path may carry ?token=); resolves after `hello` with an inbox of JSON messages. */
function ws(path = "/ws") {
  return new Promise((resolve, reject) => {
    const sock = new WebSocket(`ws://${http}${path}`);
    const items = [];
    const waiters = [];
    sock.closed = new Promise((r) => sock.on("close", (code, reason) => r({ code, reason: `${reason}` })));
    sock.on("unexpected-response", (_req, res) => reject(Object.assign(new Failure(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    sock.on("error", (e) => reject(e));
    sock.on("message", (data) => {
      const m = JSON.parse(`${data}`);
      if (m.type === "hello") return resolve(sock);
      const w = waiters.shift();
      if (w) w(m);
      else items.push(m);
    });
    sock.next = (what = "a message") =>
      items.length ? Promise.resolve(items.shift()) : within(new Promise((r) => waiters.push(r)), what);
    sock.ask = (obj) => {
      sock.send(JSON.stringify(obj));
      return sock.next(`a reply to ${obj.op}`);
    };
  });
}

async function nativeWebSocket() {
  const w = await ws(`/ws?token=${TOKEN}`);
  let r = await w.ask({ op: "subscribe", id: 1, topic: "chat.lobby" });
  check(r.type === "ok", `subscribe chat.lobby: ${JSON.stringify(r)}`);
  r = await w.ask({ op: "subscribe", id: 2, topic: "news.x" });
  check(r.code === "forbidden", `subscribe news.x should be forbidden: ${JSON.stringify(r)}`);
  r = await w.ask({ op: "publish", id: 3, topic: "chat.a.b", text: "x", ack: true });
  check(r.code === "forbidden", `publish chat.a.b should be forbidden: ${JSON.stringify(r)}`);
  // The ack and the delivery may come in either order.
  const both = [await w.ask({ op: "publish", id: 4, topic: "chat.lobby", text: "hi", ack: true })];
  both.push(await w.next("the published message"));
  check(both.some((x) => x.type === "ok"), `publish chat.lobby: ${JSON.stringify(both)}`);
  check(both.some((x) => x.type === "message" && x.text === "hi"), `delivery: ${JSON.stringify(both)}`);
  w.close();
  ok("ws: the CLI's token on the URL gives exactly its rights");

  for (const [t, says] of BAD) {
    const w = await ws();
    const r = await w.ask({ op: "auth", id: 1, token: t });
    check(r.code === "unauthorized" && r.message.includes(says), `auth with a token that is ${says}: ${JSON.stringify(r)}`);
    w.close();
  }
  let refused;
  try {
    await ws(`/ws?token=${tok("ann", -10)}`);
  } catch (e) {
    refused = e.status;
  }
  check(refused === 401, `an expired token on the URL: ${refused}`);
  ok("ws: each bad token kind is refused and named (and a bad URL token is a 401)");

  const e = await ws();
  r = await e.ask({ op: "auth", id: 1, token: tok("ann", 2) });
  check(r.type === "ok" && r.user === "ann" && r.expires > now(), `auth: ${JSON.stringify(r)}`);
  const err = await e.next("the expiry error");
  check(err.type === "error" && err.message.includes("expired"), `expiry: ${JSON.stringify(err)}`);
  const closed = await within(e.closed, "the close");
  check(closed.code === 4401, `close code ${closed.code}`);
  ok("ws: expiry closes with 4401");

  const f = await ws();
  await f.ask({ op: "auth", id: 1, token: tok("ann", 2, ["chat.*"], ["chat.>", "news.>"]) });
  r = await f.ask({ op: "subscribe", id: 2, topic: "news.x" });
  check(r.type === "ok", `subscribe news.x: ${JSON.stringify(r)}`);
  f.send(JSON.stringify({ op: "refresh", id: 3, token: tok("ann", 60, [], ["chat.>"]) }));
  const ended = await f.next("the ended subscription");
  check(ended.code === "forbidden" && ended.topic === "news.x", `ended: ${JSON.stringify(ended)}`);
  r = await f.next("the refresh reply");
  check(r.type === "ok", `refresh: ${JSON.stringify(r)}`);
  r = await f.ask({ op: "refresh", id: 4, token: tok("bob", 60) });
  check(r.code === "unauthorized" && r.message.includes("same user"), `refresh as bob: ${JSON.stringify(r)}`);
  await sleep(2500);
  r = await f.ask({ op: "ping", id: 5 });
  check(r.type === "pong", `still open after the first token's expiry: ${JSON.stringify(r)}`);
  r = await f.ask({ op: "publish", id: 6, topic: "chat.a", text: "x", ack: true });
  check(r.code === "forbidden", `the narrower rights hold: ${JSON.stringify(r)}`);
  f.close();
  ok("ws: refresh keeps the connection open and narrows rights, ending what they no longer allow");
}

// ---- STOMP (@stomp/stompjs) -------------------------------------------------------------
/** Connects; resolves {client, connected} or {error} (the ERROR frame). */
function stomp(kind, connectHeaders) {
  return new Promise((resolve) => {
    const client = new Client({
      webSocketFactory: () =>
        kind === "ws"
          ? new WebSocket(`ws://${http}/stomp`, ["v12.stomp"])
          : new TCPWrapper(stompAddr.split(":")[0], Number(stompAddr.split(":")[1])),
      connectHeaders,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      reconnectDelay: 0,
      debug: () => {},
    });
    const errors = [];
    client.onStompError = (frame) => {
      errors.push(frame);
      resolve({ client, error: frame });
    };
    client.onConnect = () => resolve({ client, errors });
    client.activate();
  });
}

async function stompClients() {
  for (const kind of ["ws", "tcp"]) {
    let c = await within(stomp(kind, { Authorization: `Bearer ${TOKEN}` }), "CONNECTED");
    check(!c.error, `${kind} Bearer: ${c.error?.headers.message}`);
    const got = new Promise((r) => c.client.subscribe("/topic/chat.lobby", (m) => r(m.body)));
    await sleep(100);
    c.client.publish({ destination: "/topic/chat.lobby", body: "over stomp" });
    check((await within(got, "the STOMP message")) === "over stomp", "STOMP delivery");
    const refusal = new Promise((r) => (c.client.onStompError = r));
    c.client.subscribe("/topic/news.x", () => {});
    const frame = await within(refusal, "the ERROR for news.x");
    check(frame.headers.message.includes("may not subscribe"), `news.x: ${frame.headers.message}`);
    await c.client.deactivate();

    c = await within(stomp(kind, { passcode: TOKEN }), "CONNECTED");
    check(!c.error, `${kind} passcode alone: ${c.error?.headers.message}`);
    await c.client.deactivate();

    c = await within(stomp(kind, { Authorization: `Bearer ${BAD[1][0]}` }), "the ERROR");
    check(c.error && `${c.error.body}`.includes("bad signature"), `${kind} bad token: ${c.error?.headers.message} ${c.error?.body}`);
    await c.client.deactivate();
    ok(`stomp over ${kind}: Authorization Bearer and passcode alone work with their rights; a bad token is an ERROR`);
  }
  const c = await within(stomp("ws", { Authorization: `Bearer ${tok("ann", 2)}` }), "CONNECTED");
  check(!c.error, `short token: ${c.error?.headers.message} ${c.error?.body}`);
  const expired = new Promise((r) => (c.client.onStompError = r));
  const frame = await within(expired, "the expiry ERROR");
  check(frame.headers.message === "token expired", `expiry: ${frame.headers.message}`);
  await c.client.deactivate();
  ok("stomp: expiry ends the connection with ERROR 'token expired'");
}

// ---- Socket.IO (socket.io-client) -------------------------------------------------------
function sio(token) {
  const socket = io(`http://${http}`, { auth: { token }, reconnection: false, forceNew: true });
  socket.errors = [];
  socket.on("error", (e) => socket.errors.push(e));
  return socket;
}
const connected = (socket) =>
  within(
    new Promise((resolve, reject) => {
      socket.on("connect", resolve);
      socket.on("connect_error", reject);
    }),
    "the Socket.IO connect",
  );

async function socketIo() {
  let s = sio(TOKEN);
  await connected(s);
  let r = await within(s.emitWithAck("subscribe", "chat.lobby"), "the subscribe ack");
  check(r.ok, `subscribe: ${JSON.stringify(r)}`);
  r = await within(s.emitWithAck("subscribe", "news.x"), "the subscribe ack");
  check(!r.ok && r.error === "forbidden", `news.x: ${JSON.stringify(r)}`);
  r = await within(s.emitWithAck("publish", "chat.a.b", "x"), "the publish ack");
  check(!r.ok && r.error === "forbidden", `publish chat.a.b: ${JSON.stringify(r)}`);
  s.close();

  s = sio(BAD[2][0]);
  let refusal;
  try {
    await connected(s);
  } catch (e) {
    refusal = e.message;
  }
  check(refusal && refusal.includes("expired"), `an expired token: ${refusal}`);
  s.close();
  ok("socket.io: handshake auth {token} gives exactly its rights; a bad token is a connect_error");

  s = sio(tok("ann", 2, [], ["chat.>", "news.>"]));
  await connected(s);
  r = await s.emitWithAck("subscribe", "news.x");
  check(r.ok, `subscribe news.x: ${JSON.stringify(r)}`);
  r = await within(s.emitWithAck("refresh", tok("ann", 60, [], ["chat.>"])), "the refresh ack");
  check(r.ok && r.user === "ann", `refresh: ${JSON.stringify(r)}`);
  await sleep(200);
  check(s.errors.some((e) => e.topic === "news.x" && e.error === "forbidden"), `ended: ${JSON.stringify(s.errors)}`);
  await sleep(2500);
  check(s.connected, "still connected after the first token's expiry");
  s.close();
  ok("socket.io: the refresh event keeps the connection and narrows rights");

  s = sio(tok("ann", 2));
  await connected(s);
  const reason = await within(new Promise((r) => s.on("disconnect", r)), "the expiry disconnect");
  check(reason === "io server disconnect", `disconnect reason ${reason}`);
  check(s.errors.some((e) => e.error === "token_expired"), `errors: ${JSON.stringify(s.errors)}`);
  ok("socket.io: expiry disconnects (io server disconnect) after an error event token_expired");
}

// ---- SSE and the HTTP API (fetch) -------------------------------------------------------
async function httpClients() {
  const bearer = (t) => ({ headers: { Authorization: `Bearer ${t}` } });
  let r = await fetch(`http://${http}/api/publish/chat.a`, { method: "POST", body: "x", ...bearer(TOKEN) });
  check(r.ok, `API publish: ${r.status}`);
  r = await fetch(`http://${http}/api/publish/news.a`, { method: "POST", body: "x", ...bearer(TOKEN) });
  check(r.status === 403, `API publish outside the rights: ${r.status}`);
  r = await fetch(`http://${http}/api/publish/chat.a`, { method: "POST", body: "x", ...bearer(BAD[1][0]) });
  check(r.status === 401, `API bad token: ${r.status}`);
  ok("http api: Bearer tokens, rights and refusals");

  const ctl = new AbortController();
  r = await fetch(`http://${http}/sse?topic=chat.a&token=${TOKEN}`, { signal: ctl.signal });
  check(r.status === 200, `sse ?token=: ${r.status}`);
  ctl.abort();
  const ctl2 = new AbortController();
  r = await fetch(`http://${http}/sse?topic=chat.a`, { ...bearer(TOKEN), signal: ctl2.signal });
  check(r.status === 200, `sse Bearer: ${r.status}`);
  ctl2.abort();
  r = await fetch(`http://${http}/sse?topic=news.a&token=${TOKEN}`);
  check(r.status === 403, `sse outside the rights: ${r.status}`);
  r = await fetch(`http://${http}/sse?topic=chat.a&token=${BAD[2][0]}`);
  check(r.status === 401 && (await r.text()).includes("expired"), `sse expired: ${r.status}`);
  r = await fetch(`http://${http}/sse?topic=chat.a&token=${tok("ann", 2)}`);
  const body = await within(r.text(), "the end of the stream");
  check(body.includes("event: error") && body.includes("token_expired"), `sse at expiry: ${body}`);
  ok("sse: ?token= and Bearer, rights, refusals, and the token_expired event ending the stream");
}

// ---- the TCP line protocol --------------------------------------------------------------
function line() {
  const [host, port] = tcp.split(":");
  const sock = net.connect(Number(port), host);
  let buf = "";
  const lines = [];
  const waiters = [];
  sock.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\r\n")) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  sock.read1 = (what = "a line") =>
    lines.length ? Promise.resolve(lines.shift()) : within(new Promise((r) => waiters.push(r)), what);
  sock.ask = (text) => {
    sock.write(`${text}\r\n`);
    return sock.read1(`a reply to ${text.split(" ")[0]}`);
  };
  return sock;
}

async function lineProtocol() {
  const l = line();
  let r = await l.read1("the greeting");
  check(r.startsWith("+OK tidings"), `greeting: ${r}`);
  r = await l.ask(`AUTH TOKEN ${TOKEN}`);
  check(r.startsWith("+OK AUTH ann "), `AUTH TOKEN: ${r}`);
  r = await l.ask("PUB news.x hi");
  check(r.startsWith("-ERR"), `PUB outside the rights: ${r}`);
  r = await l.ask(`AUTH TOKEN ${BAD[3][0]}`);
  check(r.includes("algorithm not allowed"), `alg none: ${r}`);
  r = await l.ask(`AUTH ${USER} ${PASSWORD}`);
  check(r === `+OK AUTH ${USER}`, `the hashed password: ${r}`);
  r = await l.ask(`AUTH ${USER} not-${PASSWORD}`);
  check(r.startsWith("-ERR AUTH: unknown user or wrong password"), `a wrong password: ${r}`);
  l.destroy();
  const e = line();
  await e.read1("the greeting");
  r = await e.ask(`AUTH TOKEN ${tok("ann", 2)}`);
  check(r.startsWith("+OK"), `AUTH TOKEN: ${r}`);
  r = await e.read1("the expiry");
  check(r.startsWith("-ERR token expired"), `expiry: ${r}`);
  e.destroy();
  ok("line: AUTH TOKEN with its rights, expiry -ERR, and an argon2-hashed password");
}

try {
  await nativeWebSocket();
  await stompClients();
  await socketIo();
  await httpClients();
  await lineProtocol();
  ok("all token scenarios");
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e instanceof Failure ? e.message : e.stack}`);
  process.exit(1);
}
