#!/usr/bin/env node
// EventSource in a real headless Chromium (Debian's, driven by playwright-core) with a signed
// token on the URL, the only way EventSource can carry one (it cannot send headers):
//   1. `?token=` with rights on chat.>: a message published with a Bearer token arrives;
//   2. a topic outside the token's rights: the request is refused (403), EventSource errors;
//   3. a token that expires in 2 s: the stream's `error` event says token_expired and the
//      response ends.
//
//   node browser_sse_token.mjs http://127.0.0.1:HTTP TOKEN SECRET
// The 2 s token is TOKEN's claims signed again with SECRET (HS256) just before it is used, so
// a slow browser start cannot expire it before the scenario begins.
import { createHmac } from "node:crypto";
import { launchChromium } from "./chromium.mjs";

const [base, token, secret] = process.argv.slice(2);
function reissue(jwt, key, ttlSecs) {
  const [header, payload] = jwt.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  const now = Math.floor(Date.now() / 1000);
  claims.iat = now;
  claims.exp = now + ttlSecs;
  delete claims.nbf;
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${body}.${createHmac("sha256", key).update(body).digest("base64url")}`;
}
setTimeout(() => {
  console.error("FAIL: overall timeout of 60s exceeded");
  process.exit(1);
}, 60000).unref();
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await launchChromium();
try {
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => { if (m.type() === "error") console.error("page:", m.text()); });
  // A page of the tidings origin (any path answers; the 404 page will do as a document).
  await page.goto(`${base}/healthz`);

  const got = await page.evaluate(async ({ token }) => {
    const es = new EventSource(`/sse?topic=chat.browser&token=${encodeURIComponent(token)}`);
    const message = new Promise((resolve, reject) => {
      es.onmessage = (e) => resolve(e.data);
      setTimeout(() => reject(new Error("no message in 5 s")), 5000);
    });
    await new Promise((r) => (es.onopen = r));
    const r = await fetch("/api/publish/chat.browser", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      body: "from chromium",
    });
    if (!r.ok) throw new Error(`publish: ${r.status}`);
    const data = await message;
    es.close();
    return data;
  }, { token });
  check(got.includes("from chromium"), `message: ${got}`);
  console.log("ok: chromium EventSource with ?token= receives within the token's rights");

  const refused = await page.evaluate(async ({ token }) => {
    const es = new EventSource(`/sse?topic=news.x&token=${encodeURIComponent(token)}`);
    const state = await new Promise((resolve) => {
      es.onerror = () => resolve(es.readyState);
      es.onopen = () => resolve("opened");
      setTimeout(() => resolve("nothing"), 5000);
    });
    es.close();
    const r = await fetch(`/sse?topic=news.x&token=${encodeURIComponent(token)}`);
    return { state, status: r.status };
  }, { token });
  check(refused.state === 2 && refused.status === 403, `outside the rights: ${JSON.stringify(refused)}`);
  console.log("ok: chromium EventSource outside the token's rights is refused (403, CLOSED)");

  const short = reissue(token, secret, 2);
  const expired = await page.evaluate(async ({ short }) => {
    const es = new EventSource(`/sse?topic=chat.browser&token=${encodeURIComponent(short)}`);
    const data = await new Promise((resolve) => {
      es.addEventListener("error", (e) => { if (e.data) resolve(e.data); });
      setTimeout(() => resolve("nothing in 6 s"), 6000);
    });
    es.close();
    return data;
  }, { short });
  check(expired.includes("token_expired"), `at expiry: ${expired}`);
  console.log("ok: chromium EventSource gets the token_expired error event at expiry");
  console.log("ok: all EventSource token scenarios");
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
