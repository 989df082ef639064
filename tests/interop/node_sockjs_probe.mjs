#!/usr/bin/env node
// The real sockjs-client (npm) on one forced transport, subscribed to a topic on tidings'
// /sockjs, printing every message it receives as a JSON string on its own line (after a
// `ready` line), until COUNT messages of type `message` came. tidings-bench's own SockJS
// client prints the same way (`tidings-bench sockjs-probe`), so a test can compare the two
// (crates/tidings-bench/tests/sockjs_client.rs).
//
//   node node_sockjs_probe.mjs http://127.0.0.1:HTTP/sockjs TRANSPORT TOPIC COUNT
let SockJS;
try {
  ({ default: SockJS } = await import("sockjs-client"));
} catch {
  console.error("FAIL: node packages missing: run scripts/install-test-deps.sh");
  process.exit(3);
}

const [url, transport, topic, count] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAIL: overall timeout of 20s exceeded");
  process.exit(1);
}, 20000).unref();

const sock = new SockJS(url, null, { transports: [transport] });
let subscribed = false;
let seen = 0;
sock.onopen = () => {
  if (sock.transport !== transport) {
    console.error(`FAIL: expected transport ${transport}, got ${sock.transport}`);
    process.exit(1);
  }
  sock.send(JSON.stringify({ op: "subscribe", id: 1, topic }));
};
sock.onclose = (e) => {
  console.error(`FAIL: closed ${e.code} ${e.reason}`);
  process.exit(1);
};
sock.onmessage = (e) => {
  if (!subscribed) {
    const m = JSON.parse(e.data);
    if (m.type === "ok" && m.id === 1) {
      subscribed = true;
      console.log("ready");
    }
    return;
  }
  console.log(JSON.stringify(e.data));
  if (e.data.startsWith('{"type":"message"') && ++seen === Number(count)) {
    sock.onclose = null;
    sock.close();
    process.exit(0);
  }
};
