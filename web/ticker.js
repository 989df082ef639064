// The ticker page: subscribes to prices.> over the native WebSocket protocol (with tidings'
// own client, /client/tidings.js) and draws the
// newest price of each symbol with a sparkline. The topics are conflated by the server
// (`prices.>` rule), so a tab that cannot keep up gets the newest price, not a backlog.
//
// Payload of each message: {"symbol":"AAPL","price":189.32,"open":187.10}.
import { Tidings } from "/client/tidings.js";

const POINTS = 80;
const FRAME_MS = 100;
const $ = (id) => document.getElementById(id);

const quotes = new Map(); // symbol -> { el, prices: [], open, price, n, dirty }
let total = 0;
const arrivals = []; // timestamps of the last second's messages

function setStatus(up, text) {
  $("status").className = `status ${up ? "up" : "down"}`;
  $("status").textContent = text;
}

function quote(symbol) {
  let q = quotes.get(symbol);
  if (q) return q;
  const el = document.createElement("div");
  el.className = "quote panel";
  el.dataset.symbol = symbol;
  el.innerHTML = `<span class="price"></span><span class="sym"></span><span class="chg"></span>
    <div class="n"></div><canvas width="300" height="42"></canvas>`;
  el.querySelector(".sym").textContent = symbol;
  q = { el, prices: [], open: null, price: null, n: 0, dirty: true };
  quotes.set(symbol, q);
  const sorted = [...quotes.keys()].sort();
  const grid = $("quotes");
  grid.insertBefore(el, grid.children[sorted.indexOf(symbol)] ?? null);
  $("symbols").textContent = quotes.size;
  $("hint").hidden = true;
  return q;
}

function onPrice(topic, payload) {
  // JSON from /ws publishers arrives as data; over the line protocol it was sent as text.
  let data = payload;
  if (typeof payload === "string") {
    try {
      data = JSON.parse(payload);
    } catch {}
  }
  const symbol = data?.symbol ?? topic.split(".").slice(1).join(".");
  const price = Number(data?.price ?? data);
  if (!Number.isFinite(price)) return;
  const q = quote(symbol);
  q.open ??= Number(data?.open ?? price);
  q.price = price;
  q.n += 1;
  q.prices.push(price);
  if (q.prices.length > POINTS) q.prices.shift();
  q.dirty = true;
  total += 1;
  arrivals.push(performance.now());
}

function draw(q) {
  const up = q.price >= q.open;
  q.el.querySelector(".price").textContent = q.price.toFixed(2);
  const chg = q.el.querySelector(".chg");
  const pct = ((q.price - q.open) / q.open) * 100;
  chg.textContent = `${up ? "+" : ""}${(q.price - q.open).toFixed(2)} (${pct.toFixed(2)}%)`;
  chg.className = `chg ${up ? "up" : "down"}`;
  q.el.querySelector(".n").textContent = `${q.n} updates`;
  const canvas = q.el.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  const lo = Math.min(...q.prices);
  const hi = Math.max(...q.prices);
  const span = hi - lo || 1;
  ctx.beginPath();
  q.prices.forEach((p, i) => {
    const x = (i / (POINTS - 1)) * w;
    const y = h - 3 - ((p - lo) / span) * (h - 6);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.strokeStyle = up ? "#3ecf7a" : "#ff6b6b";
  ctx.lineWidth = 2;
  ctx.stroke();
}

// Redraws at most every FRAME_MS, only the symbols that changed.
function frame() {
  const now = performance.now();
  while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
  $("rate").textContent = arrivals.length;
  $("total").textContent = total;
  for (const q of quotes.values()) {
    if (q.dirty) {
      q.dirty = false;
      draw(q);
    }
  }
}

function connect() {
  // tidings' own client: it reconnects by itself; a conflated ticker needs no resume.
  const client = new Tidings(`${location.origin.replace(/^http/, "ws")}/ws`, { backoffBase: 1000, backoffMax: 5000, fallbackAfter: 0 });
  client.subscribe("prices.>", (m) => onPrice(m.topic, m.data));
  client.on("subscribed", () => setStatus(true, "connected: WebSocket /ws (tidings.js), prices.>"));
  client.on("disconnected", () => setStatus(false, "connection lost, reconnecting"));
}

setInterval(frame, FRAME_MS);
connect();
