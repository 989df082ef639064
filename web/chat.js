// The chat page: join a room (topic chat.<room>) with a nickname over the transport picked,
// show the room's recent history, live messages, who is here, and resume after a lost
// connection from the last message shown.
//
// Messages are the JSON payload {nick, text}; anything else on the topic (a `PUB chat.lobby hi`
// from nc, a `tidings pub`) is shown as text from an anonymous sender.
//
// URL parameters fill the form: /chat?room=lobby&nick=ann&transport=sse&join=1 joins at once.

import { TRANSPORTS } from "./transports.js";

const HISTORY_LINES = 50;
const PRESENCE_REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

// Everything the page knows about the room it is in.
const room = {
  topic: null,
  nick: null,
  conn: null,
  // The last message shown: every (re)subscribe resumes after it.
  last: { since: 0, epoch: null },
  presenceTimer: null,
};

function setStatus(up, text) {
  $("status").className = `status ${up ? "up" : "down"}`;
  $("status").textContent = up ? `connected: ${text}` : text;
}

// {nick, text} from whatever the topic carried.
function chatLine(payload) {
  if (typeof payload === "string") {
    try {
      const parsed = JSON.parse(payload);
      if (parsed && typeof parsed.text === "string") return chatLine(parsed);
    } catch {}
    return { nick: null, text: payload };
  }
  if (payload && typeof payload === "object" && typeof payload.text === "string") {
    return { nick: typeof payload.nick === "string" ? payload.nick : null, text: payload.text };
  }
  if (payload && payload.binary !== undefined) return { nick: null, text: "(binary message)" };
  return { nick: null, text: JSON.stringify(payload) };
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function addNotice(text) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = text;
  $("messages").append(li);
  scrollDown();
}

function show({ offset, epoch, payload }) {
  // Drop what was already shown (a replay that overlaps); a new epoch starts over.
  if (epoch === room.last.epoch && offset <= room.last.since) return;
  room.last = { since: offset, epoch };
  const { nick, text } = chatLine(payload);
  const li = document.createElement("li");
  li.className = "msg";
  li.dataset.offset = offset;
  const who = document.createElement("span");
  who.className = nick ? "nick" : "nick anon";
  who.textContent = nick ?? "anonymous";
  const what = document.createElement("span");
  what.className = "text";
  what.textContent = text;
  const off = document.createElement("span");
  off.className = "offset";
  off.textContent = `#${offset}`;
  li.append(off, who, what);
  $("messages").append(li);
  scrollDown();
}

async function refreshPresence() {
  if (!room.topic) return;
  try {
    const resp = await fetch(`/api/presence/${encodeURIComponent(room.topic)}`);
    if (!resp.ok) return;
    const { members } = await resp.json();
    // One line per name; anonymous members (nc, tidings sub) by their client id.
    const names = new Map();
    for (const m of members) {
      const key = m.user ?? `anonymous ${m.client}`;
      names.set(key, { anon: m.user == null, count: (names.get(key)?.count ?? 0) + 1 });
    }
    const list = $("presence");
    list.replaceChildren(
      ...[...names.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, { anon, count }]) => {
          const li = document.createElement("li");
          li.className = anon ? "anon" : "member";
          li.dataset.name = name;
          li.textContent = count > 1 ? `${name} (${count})` : name;
          return li;
        }),
    );
  } catch {}
}

async function loadHistory() {
  const resp = await fetch(`/api/history/${encodeURIComponent(room.topic)}?limit=${HISTORY_LINES}`);
  if (!resp.ok) throw new Error(`history: HTTP ${resp.status}`);
  const page = await resp.json();
  for (const m of page.messages) {
    const payload = "data" in m ? m.data : "text" in m ? m.text : { binary: m.base64 };
    show({ offset: m.offset, epoch: m.epoch, payload });
  }
  // Live delivery starts after the last offset history had, even when it held none.
  room.last = { since: page.offset, epoch: page.epoch };
}

async function join(name, nick, transport) {
  leave();
  room.topic = `chat.${name}`;
  room.nick = nick;
  room.last = { since: 0, epoch: null };
  $("messages").replaceChildren();
  $("room-info").textContent = `topic ${room.topic}`;
  document.title = `${name} — tidings chat`;
  setStatus(false, "connecting…");
  await loadHistory();
  room.conn = TRANSPORTS[transport].open({
    topic: room.topic,
    nick,
    position: () => ({ since: room.last.since, epoch: room.last.epoch }),
    on: {
      message: show,
      presence: refreshPresence,
      gap: ({ earliest, epoch }) => {
        addNotice(`messages up to #${earliest - 1} are no longer held by the server`);
        room.last = { since: Math.max(0, earliest - 1), epoch };
      },
      status: (up, text) => {
        setStatus(up, text);
        if (up) refreshPresence();
      },
    },
  });
  room.presenceTimer = setInterval(refreshPresence, PRESENCE_REFRESH_MS);
  $("text").disabled = $("send").disabled = false;
  $("text").focus();
}

function leave() {
  room.conn?.close();
  room.conn = null;
  clearInterval(room.presenceTimer);
  $("presence").replaceChildren();
}

async function send(text) {
  try {
    await room.conn.publish({ nick: room.nick, text });
  } catch (e) {
    addNotice(`not sent (${e.message}): ${text}`);
  }
}

function init() {
  const picker = $("transport");
  for (const [id, t] of Object.entries(TRANSPORTS)) picker.add(new Option(t.label, id));
  const params = new URLSearchParams(location.search);
  $("room").value = params.get("room") ?? "lobby";
  $("nick").value = params.get("nick") ?? `guest-${Math.random().toString(36).slice(2, 6)}`;
  if (TRANSPORTS[params.get("transport")]) picker.value = params.get("transport");
  $("join").addEventListener("submit", (e) => {
    e.preventDefault();
    join($("room").value, $("nick").value, picker.value).catch((err) => setStatus(false, err.message));
  });
  $("compose").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text || !room.conn) return;
    $("text").value = "";
    send(text);
  });
  // Closing the tab leaves the room at once (a polling transport would otherwise stay
  // "here" until the server's heartbeat gives up on it).
  addEventListener("pagehide", leave);
  // For tests and demos: lose the connection the way a network failure would.
  window.tidingsChat = { drop: () => room.conn?.drop(), room };
  if (params.get("join")) $("join").requestSubmit();
}

init();
