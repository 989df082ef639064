// The peer for the SockJS benchmark: sockjs-node (npm `sockjs`), the reference SockJS server,
// as a broadcast hub: every message a connection sends goes to every open connection.
//   node sockjs-node-server.js PORT      prints "listening on 127.0.0.1:PORT"
const http = require("http");
const sockjs = require("sockjs");
const conns = new Set();
const service = sockjs.createServer({ log: () => {}, disconnect_delay: 5000 });
service.on("connection", (c) => {
  conns.add(c);
  c.on("data", (m) => { for (const o of conns) o.write(m); });
  c.on("close", () => conns.delete(c));
});
const server = http.createServer();
service.installHandlers(server, { prefix: "/sockjs" });
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => console.log(`listening on 127.0.0.1:${server.address().port}`));
