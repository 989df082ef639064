// Interop: Chromium over the HTTPS listener (test certificate accepted with
// ignoreHTTPSErrors). More EventSource streams than HTTP/1.1's six connections per host all
// receive one publish, which only works because they share one HTTP/2 connection; the page
// checks the protocol each resource used, and a WebSocket from the page works over wss.
//
//     node tls_browser.mjs https://127.0.0.1:PORT
//
// Prints `ok: ...` per scenario and `ok: all ...` at the end; exits 1 with `FAIL: ...`.

import { launchChromium } from "./chromium.mjs";

const base = process.argv[2];
const STREAMS = 10;
setTimeout(() => {
  console.error("FAIL: overall timeout of 40s exceeded");
  process.exit(1);
}, 40000).unref();

const browser = await launchChromium();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on("console", (m) => console.log(`page: ${m.text()}`));
  const nav = await page.goto(`${base}/healthz`);
  if (!nav.ok()) throw new Error(`GET /healthz: ${nav.status()}`);

  const result = await page.evaluate(
    async ({ streams }) => {
      const topic = `tls.browser.${Math.random().toString(36).slice(2)}`;
      const wait = (what, ms, promise) =>
        Promise.race([promise, new Promise((_, no) => setTimeout(() => no(new Error(`timeout: ${what}`)), ms))]);
      const sources = [];
      const subscribed = [];
      const received = [];
      for (let i = 0; i < streams; i++) {
        const es = new EventSource(`/sse?topic=${topic}&n=${i}`);
        sources.push(es);
        subscribed.push(new Promise((ok) => es.addEventListener("subscribed", ok, { once: true })));
        received.push(new Promise((ok) => (es.onmessage = (e) => ok(JSON.parse(e.data)))));
      }
      await wait(`${streams} streams subscribed`, 10000, Promise.all(subscribed));
      const pub = await fetch(`/api/publish/${topic}`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: "over h2",
      });
      if (!pub.ok) throw new Error(`publish: ${pub.status}`);
      const messages = await wait(`${streams} streams received`, 10000, Promise.all(received));
      sources.forEach((es) => es.close());
      const protocols = performance
        .getEntriesByType("resource")
        .concat(performance.getEntriesByType("navigation"))
        .map((e) => `${e.nextHopProtocol} ${new URL(e.name).pathname}`);

      const ws = new WebSocket(`wss://${location.host}/ws`);
      const hello = await wait(
        "a WebSocket hello",
        10000,
        new Promise((ok, no) => {
          ws.onmessage = (e) => ok(JSON.parse(e.data));
          ws.onerror = () => no(new Error("WebSocket error"));
        }),
      );
      ws.close();
      return { texts: messages.map((m) => m.text), protocols, hello: hello.type };
    },
    { streams: STREAMS },
  );
  const got = result.texts.filter((t) => t === "over h2").length;
  if (got !== STREAMS) throw new Error(`only ${got} of ${STREAMS} streams got the message: ${JSON.stringify(result)}`);
  const notH2 = result.protocols.filter((p) => !p.startsWith("h2 "));
  if (notH2.length) throw new Error(`not over h2: ${notH2.join(", ")}`);
  console.log(`ok: chromium: ${STREAMS} EventSource streams over one HTTP/2 connection all received (${result.protocols.length} resources, all h2)`);
  if (result.hello !== "hello") throw new Error(`the WebSocket said ${result.hello}`);
  console.log("ok: chromium WebSocket over wss:// says hello");
  console.log("ok: all chromium TLS scenarios");
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
