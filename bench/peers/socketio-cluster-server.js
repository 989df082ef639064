// The peer for `tidings-bench cluster`: the official Node socket.io server on a Redis adapter,
// one process per node, with the same event API as socketio-server.js (subscribe = join a
// room, publish = broadcast `message` to the room, acks with an offset: socketio-events.js),
// so one load generator drives it and tidings alike.
//
//   node socketio-cluster-server.js PORT ADAPTER REDIS_URL
//     ADAPTER: `redis` (@socket.io/redis-adapter, Redis pub/sub) or
//              `streams` (@socket.io/redis-streams-adapter, one Redis stream)
//   prints `socketio-cluster-server: listening on 127.0.0.1:PORT` once the adapter's Redis
//   connections are up.
//
// The offset is counted by the process the publisher is connected to (the benchmark uses one
// publisher), so every subscriber, on any node, sees one sequence and can count losses.
const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");

const [port, adapterName, redisUrl] = process.argv.slice(2);
if (!["redis", "streams"].includes(adapterName) || !redisUrl) {
  console.error("usage: node socketio-cluster-server.js PORT redis|streams REDIS_URL");
  process.exit(2);
}

async function adapter() {
  const client = createClient({ url: redisUrl });
  client.on("error", (e) => console.error("socketio-cluster-server: redis:", e.message));
  await client.connect();
  if (adapterName === "streams") {
    return require("@socket.io/redis-streams-adapter").createAdapter(client);
  }
  const sub = client.duplicate();
  sub.on("error", (e) => console.error("socketio-cluster-server: redis sub:", e.message));
  await sub.connect();
  return require("@socket.io/redis-adapter").createAdapter(client, sub);
}

async function main() {
  const httpServer = createServer();
  const io = new Server(httpServer, { serveClient: false, adapter: await adapter() });
  require("./socketio-events")(io);
  httpServer.listen(Number(port || 0), "127.0.0.1", () => {
    console.log(
      `socketio-cluster-server: listening on 127.0.0.1:${httpServer.address().port}`
    );
  });
}

main().catch((e) => {
  console.error("socketio-cluster-server:", e);
  process.exit(1);
});
process.on("SIGTERM", () => process.exit(0));
