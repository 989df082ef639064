// A TCP proxy in front of a server, for tests that need the network to fail the way a real
// one does: `drop()` cuts every connection (a network failure), `hold()` refuses new ones
// until `release()` (the network stays down); with `blockWebSocket`, upgrade requests get a
// 403, as from a proxy that does not pass WebSocket. `requests` lists the request line of each
// connection passed on (what the server was asked, e.g. the upgrade URL's topics). Used by
// clients/js/test (Node) and js_client_browser.mjs (Chromium).
import net from "node:net";

/** Starts a proxy to `upstream` ("HOST:PORT") on 127.0.0.1, port 0; resolves with its handle. */
export async function proxy(upstream, { blockWebSocket = false } = {}) {
  const [host, port] = upstream.split(":");
  const sockets = new Set();
  let held = false;
  const requests = [];
  const server = net.createServer((client) => {
    if (held) {
      client.destroy();
      return;
    }
    client.once("data", (first) => {
      if (blockWebSocket && /^upgrade:\s*websocket/im.test(first.toString("latin1"))) {
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      requests.push(first.toString("latin1").split("\r\n", 1)[0]);
      const upstreamSocket = net.connect(Number(port), host, () => upstreamSocket.write(first));
      sockets.add(client).add(upstreamSocket);
      client.pipe(upstreamSocket).pipe(client);
      const forget = () => {
        client.destroy();
        upstreamSocket.destroy();
        sockets.delete(client);
        sockets.delete(upstreamSocket);
      };
      client.on("error", forget).on("close", forget);
      upstreamSocket.on("error", forget).on("close", forget);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    addr: `127.0.0.1:${server.address().port}`,
    requests,
    drop() {
      for (const s of sockets) s.destroy();
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
    },
    close() {
      this.drop();
      server.close();
    },
  };
}
