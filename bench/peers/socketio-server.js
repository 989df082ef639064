// The peer for `tidings-bench socketio`: the official Node socket.io server with the same
// event API as tidings' Socket.IO bridge (subscribe = join a room, publish = broadcast
// `message` to the room, acks with an offset), so one load generator drives both.
//
//   node socketio-server.js [PORT]      prints `socketio-server: listening on 127.0.0.1:PORT`
const { createServer } = require("node:http");
const { Server } = require("socket.io");

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
require("./socketio-events")(io);

httpServer.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`socketio-server: listening on 127.0.0.1:${httpServer.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
