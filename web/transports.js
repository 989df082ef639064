// One chat connection per transport, all with the same shape, so the page does not care
// which one carries it:
//
//   const conn = TRANSPORTS[id].open({ topic, nick, position, on });
//   conn.publish({ nick, text })  -> Promise
//   conn.drop()                   -> lose the connection as a network failure would (it comes back)
//   conn.close()                  -> leave for good
//
// `position()` returns { since, epoch } of the last message the page has shown: every
// (re)connect subscribes from there, so nothing is lost while history holds it. `on` receives
// message({offset, epoch, payload}), presence() (someone joined or left; native transports
// only), gap({earliest, epoch}) (history no longer holds what was missed) and status(up, text).

import { Tidings } from "/client/tidings.js";

const RETRY_MS = 1000;
const base = () => location.origin;
const wsBase = () => base().replace(/^http/, "ws");

// --- the native JSON protocol (docs/native-protocol.md) over SockJS -------------------------

function nativeProtocol(label, makeSocket) {
  return ({ topic, nick, position, on }) => {
    let sock = null;
    let closed = false;
    let nextId = 1;
    const pending = new Map();
    const request = (req) =>
      new Promise((resolve, reject) => {
        if (!sock || sock.readyState !== 1) return reject(new Error("not connected"));
        const id = nextId++;
        pending.set(id, { resolve, reject });
        sock.send(JSON.stringify({ ...req, id }));
      });
    const subscribe = async () => {
      const { since, epoch } = position();
      try {
        await request({ op: "subscribe", topic, presence: true, since, epoch: epoch ?? undefined });
        on.status(true, label);
      } catch (e) {
        if (e.reply?.code !== "resume_unavailable") throw e;
        on.gap({ earliest: e.reply.earliest, epoch: e.reply.epoch });
        await subscribe();
      }
    };
    const connect = () => {
      sock = makeSocket();
      const me = sock;
      me.onopen = () => {
        request({ op: "auth", user: nick, password: "" })
          .then(subscribe)
          .catch((e) => on.status(false, `${label}: ${e.message}`));
      };
      me.onmessage = (e) => {
        if (typeof e.data !== "string") return on.message({ binary: true });
        const f = JSON.parse(e.data);
        if (f.type === "message") {
          const payload = "data" in f ? f.data : "text" in f ? f.text : { binary: f.base64 };
          on.message({ offset: f.offset, epoch: f.epoch, payload });
        } else if (f.type === "presence") on.presence(f);
        else if (f.id != null && pending.has(f.id)) {
          const { resolve, reject } = pending.get(f.id);
          pending.delete(f.id);
          if (f.type === "error") reject(Object.assign(new Error(f.message), { reply: f }));
          else resolve(f);
        }
      };
      me.onclose = () => {
        if (sock !== me) return;
        for (const { reject } of pending.values()) reject(new Error("connection lost"));
        pending.clear();
        sock = null;
        if (closed) return;
        on.status(false, `${label}: connection lost, reconnecting`);
        setTimeout(() => !closed && connect(), RETRY_MS);
      };
    };
    connect();
    return {
      publish: (payload) => request({ op: "publish", topic, data: payload, ack: true }),
      drop: () => sock?.close(),
      close: () => {
        closed = true;
        // Leave the room first: a polling SockJS transport has no way to tell the server it
        // went away, which would keep this page "here" until its session expires.
        if (sock?.readyState === 1) sock.send(JSON.stringify({ op: "unsubscribe", topic }));
        sock?.close();
      },
    };
  };
}

// --- WebSocket /ws through tidings' own JavaScript client (/client/tidings.js) ---------------
// The client reconnects, resumes from the last offset and reports gaps by itself; the page
// gives it where it stands (`position`) and listens.

const tidingsClient = ({ topic, nick, position, on }) => {
  const label = "WebSocket /ws (tidings.js)";
  const client = new Tidings(`${wsBase()}/ws`, {
    user: nick,
    password: "",
    backoffBase: RETRY_MS,
    backoffMax: 2000,
    fallbackAfter: 0, // the picker chooses the transport: stay on WebSocket
  });
  const { since, epoch } = position();
  client.subscribe(
    topic,
    (m) => on.message({ offset: m.offset, epoch: m.epoch, payload: m.kind === "binary" ? { binary: true } : m.data }),
    {
      presence: true,
      since,
      epoch: epoch ?? undefined,
      onPresence: (ev) => on.presence(ev),
      onGap: (g) => on.gap({ earliest: g.next ?? 0, epoch: g.epoch }),
    },
  );
  client.on("subscribed", (s) => s.topic === topic && on.status(true, label));
  client.on("disconnected", () => on.status(false, `${label}: connection lost, reconnecting`));
  client.on("error", (e) => on.status(client.state === "ready", `${label}: ${e.message}`));
  return {
    publish: (payload) => client.publish(topic, payload),
    drop: () => client.reconnect(),
    close: () => client.close(),
  };
};

const sockjs = (transport) => () => new SockJS(`${base()}/sockjs`, null, { transports: [transport] });

// --- Server-Sent Events and long-polling (docs/http-fallbacks.md): receive by GET, send by POST

const feedQuery = (topic, nick, position) => {
  const { since, epoch } = position();
  const q = new URLSearchParams({ topic, user: nick, since: String(since) });
  if (epoch) q.set("epoch", epoch);
  return q;
};

const postPublish = async (path, topic, payload) => {
  const resp = await fetch(`${base()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ topic, data: payload }),
  });
  if (!resp.ok) throw new Error(`publish: HTTP ${resp.status}`);
  return resp.json();
};

const sse = ({ topic, nick, position, on }) => {
  let es = null;
  let closed = false;
  const label = "SSE + POST";
  const connect = () => {
    // Our own reconnect (not EventSource's) so it resumes from what the page has shown.
    const me = new EventSource(`${base()}/sse?${feedQuery(topic, nick, position)}`);
    es = me;
    me.addEventListener("subscribed", () => on.status(true, label));
    me.addEventListener("message", (e) => {
      const f = JSON.parse(e.data);
      const payload = "data" in f ? f.data : "text" in f ? f.text : { binary: f.base64 };
      on.message({ offset: f.offset, epoch: f.epoch, payload });
    });
    me.addEventListener("gap", (e) => on.gap(JSON.parse(e.data).gap)); // {"type":"gap","gap":{...}}
    me.onerror = () => {
      if (es !== me) return;
      me.close();
      es = null;
      if (closed) return;
      on.status(false, `${label}: connection lost, reconnecting`);
      setTimeout(() => !closed && connect(), RETRY_MS);
    };
  };
  connect();
  return {
    publish: (payload) => postPublish("/sse", topic, payload),
    drop: () => es?.onerror(),
    close: () => {
      closed = true;
      es?.close();
    },
  };
};

const longPoll = ({ topic, nick, position, on }) => {
  let closed = false;
  let abort = null;
  const label = "long-polling + POST";
  (async () => {
    let cursor = null;
    while (!closed) {
      abort = new AbortController();
      try {
        const q = feedQuery(topic, nick, position);
        // The first poll of a connection answers at once, so the page knows it is connected.
        if (cursor) q.set("cursor", cursor);
        else q.set("timeout", "0");
        const resp = await fetch(`${base()}/poll?${q}`, { signal: abort.signal });
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        const body = await resp.json();
        on.status(true, label);
        for (const g of body.gaps) on.gap(g);
        for (const f of body.messages) {
          const payload = "data" in f ? f.data : "text" in f ? f.text : { binary: f.base64 };
          on.message({ offset: f.offset, epoch: f.epoch, payload });
        }
        cursor = body.cursor;
      } catch (e) {
        if (closed) return;
        cursor = null; // resume from what the page has shown
        on.status(false, `${label}: connection lost, reconnecting`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  })();
  return {
    publish: (payload) => postPublish("/poll", topic, payload),
    drop: () => abort?.abort(),
    close: () => {
      closed = true;
      abort?.abort();
    },
  };
};

// --- Socket.IO (docs/socketio.md) ------------------------------------------------------------

const socketio = (transports) => ({ topic, nick, position, on }) => {
  const label = `Socket.IO (${transports.join(" → ")})`;
  const socket = io(base(), { auth: { user: nick }, transports, reconnectionDelayMax: RETRY_MS });
  const subscribe = async () => {
    const { since, epoch } = position();
    const ack = await socket.emitWithAck("subscribe", topic, { presence: true, since, epoch: epoch ?? undefined });
    if (ack.ok) return on.status(true, label);
    if (ack.error !== "resume_unavailable") return on.status(false, `${label}: ${ack.message}`);
    on.gap({ earliest: ack.earliest, epoch: ack.epoch });
    await subscribe();
  };
  socket.on("connect", () => {
    // A recovered session got its subscription back and the missed messages replayed.
    if (socket.recovered) on.status(true, `${label}, recovered`);
    else subscribe();
  });
  socket.on("disconnect", () => on.status(false, `${label}: connection lost, reconnecting`));
  socket.on("message", (m) => on.message({ offset: m.offset, epoch: m.epoch, payload: m.data }));
  socket.on("presence", (p) => on.presence(p));
  return {
    publish: async (payload) => {
      const ack = await socket.emitWithAck("publish", topic, payload);
      if (!ack.ok) throw new Error(ack.message);
      return ack;
    },
    drop: () => socket.io.engine?.close(),
    close: () => {
      // On long-polling, the request carrying the goodbye may not outlive a closing tab, and
      // the server would count this page present until the heartbeat gives up (45 s); a
      // beacon does outlive it. "41" is Socket.IO's DISCONNECT inside an Engine.IO message.
      const engine = socket.io.engine;
      if (engine?.transport?.name === "polling" && engine.id && navigator.sendBeacon) {
        navigator.sendBeacon(`${base()}/socket.io/?EIO=4&transport=polling&sid=${engine.id}`, "41");
      }
      socket.disconnect();
    },
  };
};

// --- STOMP over WebSocket (docs/stomp.md) -----------------------------------------------------

const stomp = ({ topic, nick, position, on }) => {
  const label = "STOMP over WebSocket";
  const client = new StompJs.Client({
    brokerURL: `${wsBase()}/stomp`,
    connectHeaders: { login: nick, passcode: "" },
    reconnectDelay: RETRY_MS,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  client.onConnect = () => {
    const { since, epoch } = position();
    const headers = { since: String(since) };
    if (epoch) headers.epoch = epoch;
    client.subscribe(
      `/topic/${topic}`,
      (m) => {
        let payload = m.body;
        if ((m.headers["content-type"] || "").startsWith("application/json")) payload = JSON.parse(m.body);
        on.message({ offset: Number(m.headers.offset), epoch: m.headers.epoch, payload });
      },
      headers,
    );
    on.status(true, label);
  };
  client.onStompError = (frame) => {
    // A resume that history cannot serve: start from what history still holds next time.
    // The hub says "cannot resume T after offset N: ... (epoch E, history holds A..=B)".
    const text = `${frame.headers.message} ${frame.body}`;
    const held = /epoch (\w+), history holds (\d+)\.\.=/.exec(text);
    if (/cannot resume/.test(text)) on.gap({ earliest: held ? Number(held[2]) : 1, epoch: held ? held[1] : null });
    on.status(false, `${label}: ${frame.headers.message}`);
  };
  client.onWebSocketClose = () => on.status(false, `${label}: connection lost, reconnecting`);
  client.activate();
  return {
    publish: async (payload) =>
      client.publish({
        destination: `/topic/${topic}`,
        body: JSON.stringify(payload),
        headers: { "content-type": "application/json" },
      }),
    drop: () => client.forceDisconnect(),
    close: () => client.deactivate(),
  };
};

// id -> { label, open }; the order is the picker's.
export const TRANSPORTS = {
  ws: { label: "WebSocket (native, /ws, tidings.js)", open: tidingsClient },
  sse: { label: "SSE + POST (/sse)", open: sse },
  poll: { label: "long-polling + POST (/poll)", open: longPoll },
  "sockjs-websocket": { label: "SockJS: websocket", open: nativeProtocol("SockJS websocket", sockjs("websocket")) },
  "sockjs-xhr-streaming": { label: "SockJS: xhr-streaming", open: nativeProtocol("SockJS xhr-streaming", sockjs("xhr-streaming")) },
  "sockjs-eventsource": { label: "SockJS: eventsource", open: nativeProtocol("SockJS eventsource", sockjs("eventsource")) },
  "sockjs-xhr-polling": { label: "SockJS: xhr-polling", open: nativeProtocol("SockJS xhr-polling", sockjs("xhr-polling")) },
  "sockjs-jsonp-polling": { label: "SockJS: jsonp-polling", open: nativeProtocol("SockJS jsonp-polling", sockjs("jsonp-polling")) },
  socketio: { label: "Socket.IO (polling, upgrade)", open: socketio(["polling", "websocket"]) },
  "socketio-polling": { label: "Socket.IO (polling only)", open: socketio(["polling"]) },
  stomp: { label: "STOMP over WebSocket (/stomp)", open: stomp },
};
