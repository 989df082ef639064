// The admin dashboard (/admin): signs in through the admin API, then follows the live stream
// (GET /api/admin/live, Server-Sent Events: one snapshot of node, cluster, topics,
// connections, queues and recent problems a second) and acts through the JSON API (publish,
// disconnect, purge). Only when the stream cannot open (a proxy that does not stream, the
// server's bound on streams) does it read the JSON API once a second instead. Everything
// shown is set with textContent: data is never HTML.
const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const HISTORY = 120; // chart points (two minutes)

let timer = null; // polling (the fallback)
let source = null; // the live stream (EventSource)
let selectedTopic = null;
let selectedConnection = null;
let last = null; // when the chart got its last point
const lastOffsets = new Map(); // topic -> [offset, time, rate], for each topic's rate
const series = { published: [], delivered: [] };

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/admin${path}`, opts);
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    signedOut();
    throw new Error('signed out');
  }
  if (!res.ok) throw Object.assign(new Error(data.message || res.statusText), { status: res.status, code: data.error });
  return data;
}

function status(text, up) {
  $('status').textContent = text;
  $('status').className = `status ${up ? 'up' : 'down'}`;
}

function stopUpdates() {
  clearInterval(timer);
  timer = null;
  source?.close();
  source = null;
}

function signedOut() {
  stopUpdates();
  $('dash').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('who').textContent = '';
  status('signed out', false);
}

function signedIn(user) {
  $('login').hidden = true;
  $('dash').hidden = false;
  $('logout').hidden = false;
  $('who').textContent = `signed in as ${user}`;
  follow();
}

/** Follows the live stream; falls back to polling when it cannot open. */
function follow() {
  stopUpdates();
  status('connecting…', false);
  const es = new EventSource('/api/admin/live');
  source = es;
  es.addEventListener('open', () => status('live', true));
  es.addEventListener('snapshot', (ev) => show(JSON.parse(ev.data)));
  es.addEventListener('signed_out', signedOut);
  es.addEventListener('error', async () => {
    if (source !== es) return;
    // While CONNECTING the browser retries by itself (the server restarted, the network
    // blinked); CLOSED means it will not: the stream was refused.
    if (es.readyState !== EventSource.CLOSED) return status('reconnecting…', false);
    es.close();
    source = null;
    const me = await fetch('/api/admin/me', { credentials: 'same-origin' }).catch(() => null);
    if (me?.status === 401) return signedOut();
    poll();
  });
}

/** The fallback: the JSON API once a second. */
function poll() {
  stopUpdates();
  refresh();
  timer = setInterval(refresh, POLL_MS);
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  const res = await fetch('/api/admin/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }),
  });
  const data = await res.json().catch(() => ({}));
  $('login-password').value = '';
  if (res.ok) return signedIn(data.user);
  $('login-error').textContent =
    res.status === 429 ? 'Too many failed sign-ins from this address: wait a minute.' : 'Wrong user or password.';
});

$('logout').addEventListener('click', async () => {
  await api('POST', '/logout', {}).catch(() => {});
  signedOut();
});

$('publish').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const topic = $('publish-topic').value.trim();
  const text = $('publish-message').value;
  let body = { topic, text };
  try {
    const data = JSON.parse(text);
    if (typeof data === 'object' && data !== null) body = { topic, data };
  } catch {}
  try {
    const r = await api('POST', '/publish', body);
    $('publish-result').textContent = `published to ${r.topic} at offset ${r.offset}: ${r.receivers} receiver(s)`;
  } catch (e) {
    $('publish-result').textContent = `refused: ${e.message}`;
  }
});

let searchTimer = null;
for (const id of ['topic-search', 'connection-search']) {
  $(id).addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refresh, 200);
  });
}

// --- rendering ----------------------------------------------------------------------------

function row(cells, cls) {
  const tr = document.createElement('tr');
  if (cls) tr.className = cls;
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.append(c);
    else {
      td.textContent = c ?? '';
      if (typeof c === 'number') td.className = 'num';
    }
    tr.append(td);
  }
  return tr;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren(...rows);
}

function button(label, onClick, cls = 'small danger') {
  const b = document.createElement('button');
  b.className = cls;
  b.textContent = label;
  b.addEventListener('click', (ev) => {
    ev.stopPropagation();
    onClick(b);
  });
  return b;
}

const bytes = (n) => (n == null ? '–' : n > 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n > 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const duration = (s) => (s >= 86400 ? `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h` : s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`);
const time = (ms) => new Date(ms).toLocaleTimeString();

function renderNode(n, now) {
  $('node-id').textContent = n.id ?? '';
  $('node-version').textContent = n.version;
  $('node-uptime').textContent = duration(n.uptime_secs);
  $('node-rss').textContent = bytes(n.rss_bytes);
  $('node-cpu').textContent = n.cpu_secs == null ? '–' : `${n.cpu_secs.toFixed(1)} s`;
  const conns = Object.entries(n.connections);
  $('node-connections').textContent = conns.length ? conns.map(([p, c]) => `${p} ${c}`).join(', ') : 'none';
  // The server measures the rates each second (published_per_sec, delivered_per_sec); a read
  // right after an action does not add a point of its own to the chart.
  if (!last || now - last.at >= 900) {
    for (const k of ['published', 'delivered']) {
      const rate = n[`${k}_per_sec`] ?? 0;
      series[k].push(rate);
      if (series[k].length > HISTORY) series[k].shift();
      $(`rate-${k}`).textContent = rate.toFixed(1);
    }
    last = { at: now };
  }
  const max = Math.max(1, ...series.published, ...series.delivered);
  for (const k of ['published', 'delivered']) {
    const pts = series[k].map((v, i) => `${i},${(60 - (v / max) * 56).toFixed(1)}`).join(' ');
    $(`chart-${k}`).setAttribute('points', pts);
  }
}

function renderNodes(c) {
  $('nodes-kind').textContent = c.cluster ? `(cluster of ${c.nodes.length})` : '(one node, in-memory engine)';
  $('nodes-error').textContent = c.error ? `cannot read the cluster: ${c.error}` : '';
  fill(
    'nodes',
    c.nodes.map((n) => {
      const conns = Object.entries(n.connections ?? {}).map(([p, k]) => `${p} ${k}`).join(', ') || 'none';
      const rate = (r) => (r == null ? '–' : Number(r.toFixed(1)));
      const tr = row([n.id === c.this ? `${n.id} (this)` : n.id, n.host ?? '–', n.version, duration(n.uptime_secs), bytes(n.rss_bytes), conns, rate(n.published_per_sec), rate(n.delivered_per_sec)], n.id === c.this ? 'selected' : '');
      tr.dataset.node = n.id;
      return tr;
    }),
  );
}

function renderTopics(t, now) {
  fill(
    'topics',
    t.topics.map((x) => {
      // Measured over at least 0.9 s: a read right after an action keeps the last rate.
      const before = lastOffsets.get(x.topic);
      let rate = before ? before[2] : 0;
      if (!before || now - before[1] >= 900) {
        if (before) rate = Math.max(0, (x.offset - before[0]) / ((now - before[1]) / 1000));
        lastOffsets.set(x.topic, [x.offset, now, rate]);
      }
      const tr = row([x.topic, x.subscribers, x.offset, x.epoch ?? '–', `${x.history_messages} (${bytes(x.history_bytes)})`, Number(rate.toFixed(1))], x.topic === selectedTopic ? 'selected' : '');
      tr.dataset.topic = x.topic;
      tr.addEventListener('click', () => {
        selectedTopic = x.topic;
        refresh();
      });
      return tr;
    }),
  );
}

function payloadText(m) {
  if ('text' in m) return m.text;
  if ('base64' in m) return `(binary, base64) ${m.base64}`;
  return JSON.stringify(m.data);
}

function renderDetail(d) {
  $('topic-detail').hidden = false;
  $('detail-name').textContent = d.topic;
  fill('detail-members', d.members.map((m) => row([m.client, m.user ?? '(anonymous)'])));
  fill('detail-history', [...d.messages].reverse().map((m) => row([m.offset, payloadText(m)])));
}

function renderConnections(c) {
  $('connections-total').textContent = `(${c.total})`;
  fill(
    'connections',
    c.connections.map((x) => {
      const fillPct = Math.round((100 * x.outbox_messages) / Math.max(1, x.outbox_max_messages));
      const kick = button('Disconnect', async (b) => {
        b.disabled = true;
        await api('POST', `/connections/${x.id}/disconnect`, {}).catch((e) => alert(e.message));
        refresh();
      });
      const tr = row([x.id, x.protocol, x.user ?? '(anonymous)', x.peer ?? '–', duration(x.age_secs), x.subscriptions, `${x.outbox_messages} (${fillPct}%)`, kick], x.id === selectedConnection ? 'selected' : '');
      tr.dataset.connection = x.id;
      tr.addEventListener('click', () => {
        selectedConnection = x.id;
        refresh();
      });
      tr.dataset.protocol = x.protocol;
      return tr;
    }),
  );
}

function renderConnection(c) {
  $('connection-detail').hidden = false;
  $('conn-name').textContent = c.id;
  $('conn-who').textContent = `${c.protocol ?? ''}, ${c.user ?? '(anonymous)'}`;
  fill(
    'conn-subscriptions',
    c.subscriptions.map((topic) => {
      const tr = row([
        topic,
        button('Unsubscribe', async (b) => {
          b.disabled = true;
          await api('POST', `/connections/${c.id}/unsubscribe`, { topic }).catch((e) => alert(e.message));
          refresh();
        }),
      ]);
      tr.dataset.subscription = topic;
      return tr;
    }),
  );
}

function renderQueues(q) {
  fill(
    'queues',
    q.queues.map((x) =>
      row([
        x.queue,
        x.depth,
        x.consumers,
        x.unacked,
        button('Purge', async () => {
          if (!confirm(`Drop the ${x.depth} waiting messages of ${x.queue}?`)) return;
          await api('POST', `/queues/${encodeURIComponent(x.queue)}/purge`, {}).catch((e) => alert(e.message));
          refresh();
        }),
      ]),
    ),
  );
}

function renderEvents(e) {
  $('auth-failures-total').textContent = e.login_failures_total;
  $('slow-total').textContent = e.slow_consumers_closed_total;
  fill('auth-failures', [...e.auth_failures].reverse().map((f) => row([time(f.at_ms), f.user, f.peer ?? '–', f.reason])));
  fill('slow-consumers', [...e.slow_consumer_closes].reverse().map((s) => row([time(s.at_ms), s.connection, s.protocol, s.peer ?? '–', s.topic])));
}

/** A snapshot like the live stream's, read from the JSON API (polling, or right after an action). */
async function fetchSnapshot() {
  const [node, nodes, topics, connections, queues, events] = await Promise.all([
    api('GET', '/node'),
    api('GET', '/nodes'),
    api('GET', '/topics?limit=200'),
    api('GET', '/connections?limit=200'),
    api('GET', '/queues'),
    api('GET', '/events'),
  ]);
  return { node, nodes, topics, connections, queues, events };
}

async function refresh() {
  try {
    await show(await fetchSnapshot());
  } catch (e) {
    if (e.message !== 'signed out') status(`error: ${e.message}`, false);
  }
}

let busy = false;
/** Shows a snapshot; a search or a selected row is asked of the JSON API on top. */
async function show(s) {
  if (busy) return;
  busy = true;
  try {
    const tq = $('topic-search').value;
    const cq = $('connection-search').value;
    const [topics, conns] = await Promise.all([
      tq ? api('GET', `/topics?q=${encodeURIComponent(tq)}&limit=200`) : s.topics,
      cq ? api('GET', `/connections?q=${encodeURIComponent(cq)}&limit=200`) : s.connections,
    ]);
    const now = Date.now(); // the page's clock for every rate, whichever path the data took
    renderNode(s.node, now);
    renderNodes(s.nodes);
    renderTopics(topics, now);
    renderConnections(conns);
    renderQueues(s.queues);
    renderEvents(s.events);
    if (selectedTopic) renderDetail(await api('GET', `/topics/${encodeURIComponent(selectedTopic)}`));
    if (selectedConnection) {
      try {
        renderConnection(await api('GET', `/connections/${selectedConnection}`));
      } catch (e) {
        if (e.status !== 404) throw e;
        selectedConnection = null; // it went away
        $('connection-detail').hidden = true;
      }
    }
    status(timer ? 'live (polling)' : 'live', true);
  } catch (e) {
    if (e.message !== 'signed out') status(`error: ${e.message}`, false);
  } finally {
    busy = false;
  }
}

// Already signed in (the cookie is HttpOnly: ask the server).
fetch('/api/admin/me', { credentials: 'same-origin' }).then(async (res) => {
  if (res.ok) signedIn((await res.json()).user);
  else signedOut();
});
