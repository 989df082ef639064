#!/usr/bin/env node
// End-to-end tests of the demo pages served by `tidings serve` (web/), in headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core). Every check reads what a person
// would see: the message list, the presence list, the status line, the price cells.
//
//   node demo_browser.mjs chat   http://127.0.0.1:PORT 127.0.0.1:TCPPORT
//   node demo_browser.mjs resume http://127.0.0.1:PORT 127.0.0.1:TCPPORT
//   node demo_browser.mjs gap    http://127.0.0.1:PORT 127.0.0.1:TCPPORT  (history of 3 messages)
//   node demo_browser.mjs ticker http://127.0.0.1:PORT      (server runs --demo-ticker)
//
// chat:   pages on different transports (every transport of the picker, in pairs) exchange
//         messages, see each other in the presence list and see it update when the other
//         page closes; a late joiner gets the history; a TCP line client (as `nc`) and a page
//         exchange messages.
// resume: a page loses its connection (network offline + its socket dropped), misses
//         messages, comes back online and shows exactly the missed ones, once each.
// gap:    the same, but history no longer holds all it missed: the page says which messages
//         are gone and shows what is still held.
// ticker: the ticker page shows prices from the feed, changing, and a messages/s figure.
//
// Prints `ok: ...` lines; exits 1 with `FAIL: ...`.
import net from "node:net";
import { randomBytes } from "node:crypto";

import { launchChromium } from "./chromium.mjs";

const [mode, base, tcpAddr] = process.argv.slice(2);
const WAIT_MS = 10000;
const run = randomBytes(2).toString("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await launchChromium();
const overall = setTimeout(async () => {
  console.error(`FAIL: ${mode}: overall timeout of 150 s exceeded`);
  await browser.close().catch(() => {});
  process.exit(1);
}, 150000);

// --- the page, as a person sees it -------------------------------------------------------------

async function openChat({ room, nick, transport, context }) {
  const ctx = context ?? (await browser.newContext());
  const page = await ctx.newPage();
  // Refused loads while the test holds the page offline are expected.
  page.on("console", (m) => m.type() === "error" && !m.text().includes("ERR_INTERNET_DISCONNECTED") && console.error(`page ${nick} (${transport}): ${m.text()}`));
  page.on("pageerror", (e) => console.error(`page ${nick} (${transport}): ${e.message}`));
  await page.goto(`${base}/chat?room=${room}&nick=${nick}&transport=${transport}&join=1`);
  await waitConnected(page, `${nick} on ${transport}`);
  return { page, ctx, nick, transport };
}

async function waitConnected(page, who) {
  try {
    await page.waitForSelector("#status.up", { timeout: WAIT_MS });
  } catch {
    throw new Error(`${who}: status never showed connected: ${await page.textContent("#status")}`);
  }
}

// The lines of the message list: [{nick, text}].
const lines = (page) =>
  page.$$eval("#messages li.msg", (lis) =>
    lis.map((li) => ({ nick: li.querySelector(".nick").textContent, text: li.querySelector(".text").textContent })),
  );

async function seeLine(chat, nick, text, what) {
  try {
    await chat.page.waitForFunction(
      ([nick, text]) =>
        [...document.querySelectorAll("#messages li.msg")].some(
          (li) => li.querySelector(".nick").textContent === nick && li.querySelector(".text").textContent === text,
        ),
      [nick, text],
      { timeout: WAIT_MS },
    );
  } catch {
    throw new Error(`${what}: ${chat.nick} (${chat.transport}) never showed "${nick}: ${text}"; it shows ${JSON.stringify(await lines(chat.page))}`);
  }
}

const presence = (page) => page.$$eval("#presence li", (lis) => lis.map((li) => li.dataset.name));

async function seePresence(chat, want, what) {
  try {
    await chat.page.waitForFunction(
      (want) => {
        const names = [...document.querySelectorAll("#presence li")].map((li) => li.dataset.name);
        return Object.entries(want).every(([name, here]) => names.includes(name) === here);
      },
      want,
      { timeout: WAIT_MS },
    );
  } catch {
    throw new Error(`${what}: ${chat.nick}'s presence list is ${JSON.stringify(await presence(chat.page))}, wanted ${JSON.stringify(want)}`);
  }
}

async function say(chat, text) {
  await chat.page.fill("#text", text);
  await chat.page.press("#text", "Enter");
}

// --- a TCP line-protocol client, as `nc` ---------------------------------------------------------

function lineClient() {
  const [host, port] = tcpAddr.split(":");
  const sock = net.connect(Number(port), host);
  const got = [];
  let buf = "";
  sock.on("data", (d) => {
    buf += d.toString("utf8");
    let i;
    while ((i = buf.indexOf("\r\n")) >= 0) {
      got.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
  });
  return { sock, got, send: (l) => sock.write(`${l}\r\n`) };
}

async function until(what, fn, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// --- chat: pairs of transports ---------------------------------------------------------------

// Every transport of the picker, in pairs of different kinds.
const PAIRS = [
  ["ws", "sse"],
  ["poll", "stomp"],
  ["sockjs-websocket", "socketio"],
  ["sockjs-xhr-streaming", "socketio-polling"],
  ["sockjs-eventsource", "sockjs-xhr-polling"],
  ["sockjs-jsonp-polling", "ws"],
];

async function chatPairs() {
  const offered = await (async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${base}/chat`);
    const ids = await page.$$eval("#transport option", (os) => os.map((o) => o.value));
    await ctx.close();
    return ids;
  })();
  const covered = new Set(PAIRS.flat());
  check(offered.every((t) => covered.has(t)), `transports in the picker not covered: ${offered.filter((t) => !covered.has(t))}`);

  for (const [i, [ta, tb]] of PAIRS.entries()) {
    const room = `pair${i}${run}`;
    const a = await openChat({ room, nick: `ann${i}`, transport: ta });
    const b = await openChat({ room, nick: `bob${i}`, transport: tb });
    await seePresence(a, { [a.nick]: true, [b.nick]: true }, "both here");
    await seePresence(b, { [a.nick]: true, [b.nick]: true }, "both here");
    await say(a, `hello over ${ta}`);
    await seeLine(b, a.nick, `hello over ${ta}`, `${ta} -> ${tb}`);
    await seeLine(a, a.nick, `hello over ${ta}`, `${ta} sees its own`);
    await say(b, `hi back over ${tb}`);
    await seeLine(a, b.nick, `hi back over ${tb}`, `${tb} -> ${ta}`);
    if (i === 0) {
      // A late joiner on a third transport gets the room's history.
      const c = await openChat({ room, nick: `cy${i}`, transport: "socketio" });
      await seeLine(c, a.nick, `hello over ${ta}`, "history on join");
      await seeLine(c, b.nick, `hi back over ${tb}`, "history on join");
      const shown = await lines(c.page);
      check(shown.length === 2, `history shown twice or more: ${JSON.stringify(shown)}`);
      await c.ctx.close();
      console.log("ok: a page joining late shows the room's history once");
    }
    // As a person closes a tab (unload handlers run).
    await b.page.close({ runBeforeUnload: true });
    await seePresence(a, { [a.nick]: true, [b.nick]: false }, `${tb} page closed`);
    await b.ctx.close();
    await a.ctx.close();
    console.log(`ok: ${ta} and ${tb} pages chat both ways; presence shows both, then drops ${tb}'s page when it closes`);
  }
}

async function chatWithLineClient() {
  const room = `nc${run}`;
  const topic = `chat.${room}`;
  const nc = lineClient();
  nc.send(`SUB ${topic}`);
  await until("nc subscribed", () => nc.got.some((l) => l.startsWith(`+OK SUB ${topic}`)));
  const page = await openChat({ room, nick: "dana", transport: "sse" });
  await seePresence(page, { dana: true }, "page with nc");
  const names = await presence(page.page);
  check(names.some((n) => n.startsWith("anonymous c")), `the nc client is not in the presence list: ${names}`);
  await say(page, "hello nc");
  await until("nc sees the page's message", () =>
    nc.got.some((l) => l.startsWith(`MSG ${topic} `) && l.endsWith(' {"nick":"dana","text":"hello nc"}')),
  ).catch(() => {
    throw new Error(`nc got ${JSON.stringify(nc.got)}`);
  });
  nc.send(`PUB ${topic} plain words from nc`);
  await seeLine(page, "anonymous", "plain words from nc", "nc -> page (text)");
  nc.send(`PUB ${topic} {"nick":"eve","text":"json from nc"}`);
  await seeLine(page, "eve", "json from nc", "nc -> page (JSON)");
  nc.sock.end();
  await page.ctx.close();
  console.log("ok: a TCP line client (as nc) sees the page's {nick,text} and the page shows its text and JSON lines");
}

// --- resume: lose the connection, miss messages, come back -----------------------------------

const RESUMERS = ["ws", "sse", "poll", "stomp", "socketio", "sockjs-xhr-streaming", "sockjs-xhr-polling"];

async function resume() {
  for (const [i, transport] of RESUMERS.entries()) {
    const room = `resume${i}${run}`;
    const away = await openChat({ room, nick: `away${i}`, transport });
    const stays = await openChat({ room, nick: `stays${i}`, transport: "ws" });
    await say(stays, "before");
    await seeLine(away, stays.nick, "before", "before the loss");

    await away.ctx.setOffline(true);
    await away.page.evaluate(() => window.tidingsChat.drop());
    await away.page.waitForSelector("#status.down", { timeout: WAIT_MS });
    for (const n of [1, 2, 3]) await say(stays, `missed ${n}`);
    await seeLine(stays, stays.nick, "missed 3", "sent while the other is away");
    await sleep(1500);
    const during = (await lines(away.page)).map((l) => l.text);
    check(!during.includes("missed 1"), `${transport}: the page got messages while offline: ${during}`);
    check(await away.page.$("#status.down"), `${transport}: the page reconnected while offline`);

    await away.ctx.setOffline(false);
    await waitConnected(away.page, `${transport} after coming back`);
    await seeLine(away, stays.nick, "missed 3", `${transport} after coming back`);
    await say(stays, "after");
    await seeLine(away, stays.nick, "after", `${transport} live again`);
    const texts = (await lines(away.page)).map((l) => l.text);
    check(
      JSON.stringify(texts) === JSON.stringify(["before", "missed 1", "missed 2", "missed 3", "after"]),
      `${transport}: after resuming the page shows ${JSON.stringify(texts)}`,
    );
    await away.ctx.close();
    await stays.ctx.close();
    console.log(`ok: ${transport}: a page that lost its connection came back and showed the 3 messages it missed, once each`);
  }
}

// --- gap: what was missed is no longer held (the server keeps 3 messages per topic) ---------

const GAPPERS = ["ws", "sse", "poll", "stomp", "socketio", "sockjs-xhr-polling"];

async function gap() {
  for (const [i, transport] of GAPPERS.entries()) {
    const room = `gap${i}${run}`;
    const away = await openChat({ room, nick: `away${i}`, transport });
    const stays = await openChat({ room, nick: `stays${i}`, transport: "ws" });
    await say(stays, "before");
    await seeLine(away, stays.nick, "before", "before the loss");
    await away.ctx.setOffline(true);
    await away.page.evaluate(() => window.tidingsChat.drop());
    await away.page.waitForSelector("#status.down", { timeout: WAIT_MS });
    for (const n of [1, 2, 3, 4, 5, 6]) await say(stays, `lost ${n}`);
    await seeLine(stays, stays.nick, "lost 6", "sent while the other is away");
    await away.ctx.setOffline(false);
    await waitConnected(away.page, `${transport} after coming back`);
    await seeLine(away, stays.nick, "lost 6", `${transport} after coming back`);
    await say(stays, "after");
    await seeLine(away, stays.nick, "after", `${transport} live again`);
    const shown = await away.page.$$eval("#messages li", (lis) =>
      lis.map((li) => (li.classList.contains("notice") ? `[${li.textContent}]` : li.querySelector(".text").textContent)),
    );
    // Offsets: before = 1, lost n = n + 1; the server holds 5..7 (lost 4..6) when the page is back.
    const want = ["before", "[messages up to #4 are no longer held by the server]", "lost 4", "lost 5", "lost 6", "after"];
    check(JSON.stringify(shown) === JSON.stringify(want), `${transport}: the page shows ${JSON.stringify(shown)}`);
    await away.ctx.close();
    await stays.ctx.close();
    console.log(`ok: ${transport}: back after history moved on, the page says which messages are gone and shows what is held`);
  }
}

// --- ticker ------------------------------------------------------------------------------------

async function ticker() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${base}/ticker`);
  await page.waitForSelector("#status.up", { timeout: WAIT_MS });
  await page.waitForFunction(
    () => [...document.querySelectorAll(".quote .price")].filter((p) => p.textContent).length >= 20,
    null,
    { timeout: WAIT_MS },
  );
  const prices = () =>
    page.$$eval(".quote", (qs) => Object.fromEntries(qs.map((q) => [q.dataset.symbol, q.querySelector(".price").textContent])));
  const published = async () =>
    Number(/^tidings_published_total (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text())[1]);
  const [p0, t0, n0] = [await published(), Date.now(), Number(await page.textContent("#total"))];
  const first = await prices();
  check(Object.values(first).every((p) => /^\d+\.\d\d$/.test(p)), `price cells: ${JSON.stringify(first)}`);
  await sleep(1500);
  const later = await prices();
  const [p1, t1, n1] = [await published(), Date.now(), Number(await page.textContent("#total"))];
  const secs = (t1 - t0) / 1000;
  const moved = Object.keys(first).filter((s) => first[s] !== later[s]);
  check(moved.length >= 5, `prices hardly moved in 1.5 s: ${JSON.stringify(first)} -> ${JSON.stringify(later)}`);
  const rate = Number(await page.textContent("#rate"));
  const total = Number(await page.textContent("#total"));
  check(rate >= 50, `messages/s shown: ${rate}`);
  check(total >= rate, `messages received shown: ${total}`);
  const sparkline = await page.$eval(".quote canvas", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < d.length; i += 4) ink += d[i] > 0;
    return ink;
  });
  check(sparkline > 50, `the sparkline is blank (${sparkline} pixels drawn)`);
  await ctx.close();
  console.log(`ok: the ticker page shows ${Object.keys(first).length} symbols, ${moved.length} prices changed in 1.5 s, ${rate} messages/s, sparklines drawn`);
  console.log(`ticker: the server published ${Math.round((p1 - p0) / secs)} prices/s, the page received ${Math.round((n1 - n0) / secs)}/s (prices.> is conflated)`);
}

try {
  if (mode === "chat") {
    await chatPairs();
    await chatWithLineClient();
  } else if (mode === "resume") await resume();
  else if (mode === "gap") await gap();
  else if (mode === "ticker") await ticker();
  else throw new Error(`unknown mode ${mode}; use chat, resume, gap or ticker`);
  clearTimeout(overall);
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${mode}: ${e.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
