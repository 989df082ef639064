// The peer for `tidings-bench socketio`: the official Node socket.io server with the same
// event API as tidings' Socket.IO bridge (subscribe = join a room, publish = broadcast
// `message` to the room, acks with an offset), so one load generator drives both.
//
//   node socketio-server.js [PORT]      prints `socketio-server: listening on 127.0.0.1:PORT`
const { createServer } = require("node:http");
const { Server } = require("socket.io");

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
const offsets = new Map();

io.on("connection", (socket) => {
  socket.on("subscribe", (topic, ack) => {
    socket.join(topic);
    if (typeof ack === "function") ack({ ok: true, topic });
  });
  socket.on("publish", (topic, data, ack) => {
    const offset = (offsets.get(topic) || 0) + 1;
    offsets.set(topic, offset);
    io.to(topic).emit("message", { topic, offset, data });
    if (typeof ack === "function") ack({ ok: true, topic, offset });
  });
});

httpServer.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`socketio-server: listening on 127.0.0.1:${httpServer.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
