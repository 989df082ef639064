// The node `ws` peer for the capacity, fan-out and reconnect-storm scenarios of tidings-bench:
// a pub/sub server on node `ws` speaking the subset of tidings' native protocol
// (docs/native-protocol.md) the load generator uses, so the same clients drive both servers:
// `hello` on connect; `subscribe` -> `ok` with the topic's offset; `publish` (`text`) ->
// `message` with the next offset to every subscriber of that exact topic (the frame is built
// once per publish and sent to each, as the `ws` broadcast example does). No history: a
// `since` in `subscribe` is ignored (node `ws` has no resume).
//
//   node ws-broadcast.js [PORT]      prints `ws-broadcast: listening on 127.0.0.1:PORT`
const { WebSocketServer } = require("ws");

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[2] || 0),
  perMessageDeflate: false,
  clientTracking: false,
});
const topics = new Map();
let clients = 0;

function topicNamed(name) {
  let t = topics.get(name);
  if (!t) {
    t = { offset: 0, subscribers: new Set() };
    topics.set(name, t);
  }
  return t;
}

wss.on("connection", (ws) => {
  const mine = new Set();
  ws.send(JSON.stringify({ type: "hello", client: `c${++clients}`, server: "ws-broadcast" }));
  ws.on("message", (data) => {
    let req;
    try {
      req = JSON.parse(data);
    } catch (e) {
      ws.send(JSON.stringify({ type: "error", code: "bad_request", message: String(e) }));
      return;
    }
    if (req.op === "subscribe" && typeof req.topic === "string") {
      const t = topicNamed(req.topic);
      t.subscribers.add(ws);
      mine.add(t);
      ws.send(JSON.stringify({ type: "ok", id: req.id, topic: req.topic, epoch: "node", offset: t.offset, replayed: 0 }));
    } else if (req.op === "publish" && typeof req.topic === "string") {
      const t = topicNamed(req.topic);
      t.offset += 1;
      const frame = Buffer.from(
        JSON.stringify({ type: "message", topic: req.topic, offset: t.offset, epoch: "node", text: req.text }),
      );
      for (const s of t.subscribers) s.send(frame, { binary: false });
      if (req.ack) ws.send(JSON.stringify({ type: "ok", id: req.id, topic: req.topic, offset: t.offset, epoch: "node" }));
    } else if (req.op === "ping") {
      ws.send(JSON.stringify({ type: "pong", id: req.id }));
    } else {
      ws.send(JSON.stringify({ type: "error", id: req.id, code: "bad_request", message: "unsupported op" }));
    }
  });
  ws.on("close", () => {
    for (const t of mine) t.subscribers.delete(ws);
  });
});
wss.on("listening", () => console.log(`ws-broadcast: listening on 127.0.0.1:${wss.address().port}`));
process.on("SIGTERM", () => process.exit(0));
