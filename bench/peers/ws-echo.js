// The peer for `tidings-bench echo`: node `ws`, echoing every message (no compression, as
// the benchmark's clients do not offer it).
//   node ws-echo.js PORT      prints "ws-echo: listening on 127.0.0.1:PORT"
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2] || 0), perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on("listening", () => console.log(`ws-echo: listening on 127.0.0.1:${wss.address().port}`));
