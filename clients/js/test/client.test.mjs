// The JS client against a real `tidings serve` (started by crates/tidings-cli/tests/js_client.rs,
// which passes TIDINGS_HTTP, TIDINGS_JWT_SECRET and TIDINGS_INTEROP, where the `ws` package is).
// Run: node --test clients/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Tidings } from '../tidings.js';

const HTTP = process.env.TIDINGS_HTTP;
const SECRET = process.env.TIDINGS_JWT_SECRET;
const require = createRequire(`${process.env.TIDINGS_INTEROP}/package.json`);
const WebSocket = require('ws');
// Node 22 has a global WebSocket; Node 20 gets the injected one (the documented way).
const opts = (more = {}) => ({ WebSocket, backoffBase: 50, backoffMax: 400, ...more });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, pred, ms = 10000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
async function httpPublish(topic, text) {
  const res = await fetch(`http://${HTTP}/api/publish/${topic}`, { method: 'POST', body: text });
  assert.equal(res.status, 200);
  return res.json();
}
function token(sub, ttlSecs, rights = { publish: ['>'], subscribe: ['>'] }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + ttlSecs, tidings: rights })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

// The failing network (drop, hold, a proxy that blocks WebSocket): tests/interop/tcp_proxy.mjs.
const { proxy: tcpProxy } = await import(pathToFileURL(`${process.env.TIDINGS_INTEROP}/tcp_proxy.mjs`).href);
const proxy = (options) => tcpProxy(HTTP, options);

test('subscribe, publish with ack, binary, history and presence', async () => {
  const a = new Tidings(`ws://${HTTP}/ws`, opts());
  const b = new Tidings(`ws://${HTTP}/ws`, opts());
  const got = [];
  const presence = [];
  const sub = a.subscribe('js.basic', (m) => got.push(m), { presence: true, onPresence: (e) => presence.push(e) });
  await sub.ready;
  await b.whenReady();
  b.subscribe('js.basic', () => {});
  const first = await b.publish('js.basic', { hello: 'world' });
  assert.equal(first.topic, 'js.basic');
  assert.equal(typeof first.epoch, 'string');
  const second = await b.publish('js.basic', 'plain text');
  assert.equal(second.offset, first.offset + 1);
  await b.publish('js.basic', new Uint8Array([0, 255, 10, 1]));
  await until('three messages', () => got.length === 3);
  assert.deepEqual(got[0].data, { hello: 'world' });
  assert.equal(got[0].kind, 'json');
  assert.equal(got[1].data, 'plain text');
  assert.equal(got[2].kind, 'binary');
  assert.ok(got[2].data instanceof Uint8Array);
  assert.deepEqual([...got[2].data], [0, 255, 10, 1]);
  assert.deepEqual(got.map((m) => m.offset), [first.offset, first.offset + 1, first.offset + 2]);
  const h = await a.history('js.basic', { since: 0 });
  assert.equal(h.messages.length, 3);
  assert.deepEqual([...h.messages[2].data], [0, 255, 10, 1], 'base64 in history decoded');
  const members = await a.presence('js.basic');
  assert.equal(members.length, 2);
  await until('a join event', () => presence.some((e) => e.event === 'join'));
  await assert.rejects(a.publish('bad..topic', 1), (e) => e.code === 'bad_request');
  a.close();
  b.close();
});

test('a dropped connection reconnects and resumes: nothing missed, nothing twice', async () => {
  const p = await proxy();
  const client = new Tidings(`ws://${p.addr}/ws`, opts({ fallbackAfter: 0 }));
  const exact = [];
  const pattern = [];
  let reconnected = 0;
  client.on('connected', () => reconnected++);
  await client.subscribe('js.resume.a', (m) => exact.push(m.offset)).ready;
  await client.subscribe('js.resume.*', (m) => pattern.push(`${m.topic}:${m.offset}`)).ready;
  const published = [];
  const feed = (async () => {
    for (let i = 0; i < 60; i++) {
      const r = await httpPublish(i % 2 ? 'js.resume.a' : 'js.resume.b', `m${i}`);
      published.push(`${r.topic}:${r.offset}`);
      await sleep(10);
      // Down for ten messages each time: they can only come back through resume.
      if (i === 15 || i === 40) {
        p.hold();
        p.drop();
      }
      if (i === 25 || i === 50) p.release();
    }
  })();
  await feed;
  const wantExact = published.filter((x) => x.startsWith('js.resume.a:')).map((x) => Number(x.split(':')[1]));
  await until('every message', () => exact.length >= wantExact.length && pattern.length >= published.length);
  await sleep(200);
  assert.ok(reconnected >= 3, `reconnected ${reconnected - 1} times`);
  assert.deepEqual(exact, wantExact, 'exact topic: every offset once, in order');
  assert.deepEqual(pattern.sort(), [...published].sort(), 'pattern: every message once');
  client.close();
  p.close();
});

/** The topics (with since/epoch) and presence flag of the last upgrade request `p` passed on. */
function lastUpgrade(p) {
  const line = p.requests.filter((r) => r.startsWith('GET /ws')).at(-1);
  const query = new URL(line.split(' ')[1], 'http://x').searchParams;
  const topics = [];
  for (const [key, value] of query) {
    if (key === 'topic') topics.push({ topic: value });
    else if (key === 'since') topics.at(-1).since = Number(value);
    else if (key === 'epoch') topics.at(-1).epoch = value;
  }
  return { topics, presence: query.get('presence'), token: query.get('token') };
}

test('a reconnect resubscribes on the upgrade URL: what it missed comes back, each group with its presence flag', { timeout: 30000 }, async () => {
  const p = await proxy();
  const client = new Tidings(`ws://${p.addr}/ws`, opts({ fallbackAfter: 0 }));
  const got = { a: [], b: [], c: [] };
  const presence = [];
  const subscribed = [];
  client.on('presence', (e) => presence.push(e));
  client.on('subscribed', (s) => subscribed.push(s.topic));
  await client.subscribe('js.url.a', (m) => got.a.push(m.offset)).ready;
  await client.subscribe('js.url.b', (m) => got.b.push(m.offset), { presence: true }).ready;
  const before = { a: await httpPublish('js.url.a', 'a0'), b: await httpPublish('js.url.b', 'b0') };
  await until('the first two', () => got.a.length === 1 && got.b.length === 1);

  // Away while three messages go to each topic: only a resume can bring them back.
  const outage = async (topics) => {
    const missed = {};
    p.hold();
    client.reconnect();
    await until('the drop', () => client.state !== 'ready');
    for (const t of topics) {
      missed[t] = [];
      for (let i = 0; i < 3; i++) missed[t].push((await httpPublish(`js.url.${t}`, `${t} away ${i}`)).offset);
    }
    subscribed.length = 0;
    p.release();
    await until('resubscribed', () => subscribed.length === topics.length);
    return missed;
  };
  const first = await outage(['a', 'b']);
  await until('what a and b missed', () => got.a.length === 4 && got.b.length === 4);
  assert.deepEqual(got.a, [before.a.offset, ...first.a], 'a: every offset once, in order');
  assert.deepEqual(got.b, [before.b.offset, ...first.b], 'b: every offset once, in order');
  // One with presence, one without: the one without went on the URL, resuming after a0;
  // b (presence) by frame.
  assert.deepEqual(lastUpgrade(p), {
    topics: [{ topic: 'js.url.a', since: before.a.offset, epoch: before.a.epoch }],
    presence: null,
    token: null,
  });
  // b still asked for presence events, a did not (a's join would have come first).
  const joins = (who) => presence.filter((e) => e.client === who.clientId && e.event === 'join').map((e) => e.topic);
  const other = await new Tidings(`ws://${HTTP}/ws`, opts()).whenReady();
  other.subscribe('js.url.a', () => {});
  other.subscribe('js.url.b', () => {});
  await until('b\'s join event', () => joins(other).length > 0);
  assert.deepEqual(joins(other), ['js.url.b']);

  // Two with presence now: they go on the URL with presence=1, a by frame.
  await client.subscribe('js.url.c', (m) => got.c.push(m.offset), { presence: true }).ready;
  const c0 = await httpPublish('js.url.c', 'c0');
  await until('c0', () => got.c.length === 1);
  const second = await outage(['a', 'b', 'c']);
  await until('what all three missed', () => got.a.length === 7 && got.b.length === 7 && got.c.length === 4);
  assert.deepEqual(got.a.slice(4), second.a, 'a, resumed by frame');
  assert.deepEqual(got.b.slice(4), second.b);
  assert.deepEqual(got.c, [c0.offset, ...second.c]);
  const upgrade = lastUpgrade(p);
  assert.equal(upgrade.presence, '1');
  assert.deepEqual(upgrade.topics, [
    { topic: 'js.url.b', since: first.b[2], epoch: before.b.epoch },
    { topic: 'js.url.c', since: c0.offset, epoch: c0.epoch },
  ]);
  const third = await new Tidings(`ws://${HTTP}/ws`, opts()).whenReady();
  third.subscribe('js.url.a', () => {});
  third.subscribe('js.url.c', () => {});
  await until('c\'s join event', () => joins(third).length > 0);
  assert.deepEqual(joins(third), ['js.url.c'], 'presence for b and c, none for a');
  other.close();
  third.close();
  client.close();
  p.close();
});

test('on the URL: a token\'s rights apply (a refused topic rejects its subscription); no topics before a password login', { timeout: 30000 }, async () => {
  const p = await proxy();
  const rights = { publish: ['>'], subscribe: ['js.url.allowed.>'] };
  const client = new Tidings(`ws://${p.addr}/ws`, opts({ token: token('dan', 60, rights), connect: false, fallbackAfter: 0 }));
  const allowed = client.subscribe('js.url.allowed.x', () => {});
  const denied = client.subscribe('js.url.denied', () => {});
  const errors = [];
  client.on('error', (e) => errors.push(e.code));
  await client.connect();
  assert.equal((await allowed.ready).topic, 'js.url.allowed.x');
  await assert.rejects(denied.ready, (e) => e.code === 'forbidden');
  assert.deepEqual(errors, ['forbidden']);
  const upgrade = lastUpgrade(p);
  assert.deepEqual(upgrade.topics.map((t) => t.topic), ['js.url.allowed.x', 'js.url.denied']);
  assert.ok(upgrade.token, 'the token went on the same URL');
  assert.equal(client.state, 'ready', 'a refused URL topic does not end the connection');
  client.close();

  // carol's password is sent after hello: her topics wait for it and go by frame.
  const carol = new Tidings(`ws://${p.addr}/ws`, opts({ user: 'carol', password: 'carol-pw', connect: false }));
  const sub = carol.subscribe('js.url.login', () => {});
  await carol.connect();
  await sub.ready;
  assert.deepEqual(lastUpgrade(p).topics, []);
  assert.equal((await carol.presence('js.url.login'))[0].user, 'carol');
  carol.close();
  p.close();
});

test('the URL stays bounded: at most 64 topics and 3 KB, the rest subscribed by frame', { timeout: 30000 }, async () => {
  const p = await proxy();
  const long = 'x'.repeat(100);
  for (const [name, count] of [['short', 70], [long, 40]]) {
    const client = new Tidings(`ws://${p.addr}/ws`, opts({ connect: false, fallbackAfter: 0 }));
    const got = new Set();
    const topic = (i) => `js.url.many.${name}.${i}`;
    const subs = [];
    for (let i = 0; i < count; i++) subs.push(client.subscribe(topic(i), () => got.add(i)));
    await client.connect();
    await Promise.all(subs.map((s) => s.ready));
    const { topics } = lastUpgrade(p);
    const url = `ws://${p.addr}${p.requests.at(-1).split(' ')[1]}`;
    if (name === 'short') assert.equal(topics.length, 64);
    else {
      // As many as fit: one more topic= would pass 3 KB.
      assert.ok(url.length <= 3072 && url.length + `&topic=${topic(count - 1)}`.length > 3072, `${url.length} bytes`);
      assert.ok(topics.length > 10 && topics.length < count, `${topics.length} on the URL`);
    }
    assert.deepEqual(topics.map((t) => t.topic), [...Array(topics.length).keys()].map(topic));
    // The first (on the URL) and the last (by frame) both deliver.
    await httpPublish(topic(0), 'first');
    await httpPublish(topic(count - 1), 'last');
    await until('both', () => got.has(0) && got.has(count - 1));
    client.close();
  }
  p.close();
});

test('a server that never answers url.N (older, or a proxy drops the query) gets the subscribe by frame', { timeout: 30000 }, async () => {
  // A real TCP hop that renames the URL's topic= keys, so the server ignores them.
  const [host, port] = HTTP.split(':');
  const hop = net.createServer((c) => {
    c.once('data', (first) => {
      const text = first.toString('latin1');
      const end = text.indexOf('\r\n');
      const line = text.slice(0, end).replace(/([?&])(topic|since|epoch|presence)=/g, '$1ignored-$2=');
      const up = net.connect(Number(port), host, () => up.write(Buffer.from(line + text.slice(end), 'latin1')));
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy()).on('close', () => up.destroy());
      up.on('error', () => c.destroy()).on('close', () => c.destroy());
    });
  });
  await new Promise((r) => hop.listen(0, '127.0.0.1', r));
  const client = new Tidings(`ws://127.0.0.1:${hop.address().port}/ws`, opts({ connect: false, requestTimeout: 300 }));
  const got = [];
  const errors = [];
  client.on('error', (e) => errors.push(e));
  const sub = client.subscribe('js.url.unanswered', (m) => got.push(m.data));
  await client.connect();
  await sub.ready;
  await httpPublish('js.url.unanswered', 'by frame');
  await until('the message', () => got.length === 1);
  assert.deepEqual(errors, []);
  client.close();
  hop.close();
});

test('messages gone from history are reported as a gap, then delivery goes on', async () => {
  // js.small.> keeps 3 messages (the test's config).
  const p = await proxy();
  const client = new Tidings(`ws://${p.addr}/ws`, opts({ fallbackAfter: 0 }));
  const got = [];
  const gaps = [];
  client.on('gap', (g) => gaps.push(g));
  await client.subscribe('js.small.x', (m) => got.push(m.offset)).ready;
  const one = await httpPublish('js.small.x', 'one');
  await until('the first', () => got.length === 1);
  p.hold();
  p.drop();
  // While it is away, six more: history keeps the last three.
  for (let i = 0; i < 6; i++) await httpPublish('js.small.x', `away ${i}`);
  await sleep(200); // a few refused reconnects
  p.release();
  await until('a gap', () => gaps.length === 1);
  await until('what history still held', () => got.length === 4);
  assert.equal(gaps[0].topic, 'js.small.x');
  assert.equal(gaps[0].since, one.offset);
  assert.equal(gaps[0].next, one.offset + 4);
  assert.deepEqual(got, [one.offset, one.offset + 4, one.offset + 5, one.offset + 6]);
  // The resume went on the URL: its `resume_unavailable` (id url.0) became the gap.
  assert.deepEqual(lastUpgrade(p).topics, [{ topic: 'js.small.x', since: one.offset, epoch: one.epoch }]);
  const live = await httpPublish('js.small.x', 'live');
  await until('live again', () => got.length === 5);
  assert.equal(got[4], live.offset);
  client.close();
  p.close();
});

test('a token is refreshed before it expires and used again on reconnect', async () => {
  const p = await proxy();
  let asked = 0;
  const client = new Tidings(`ws://${p.addr}/ws`, opts({ token: token('ann', 2), getToken: () => { asked++; return token('ann', 60); } }));
  const got = [];
  await client.subscribe('js.token', (m) => got.push(m.data)).ready;
  const refreshed = await client.refresh(token('ann', 60));
  assert.equal(refreshed.user, 'ann');
  assert.ok(refreshed.expires > Date.now() / 1000 + 30);
  await sleep(3000); // past the first token's expiry: still connected
  let disconnected = 0;
  client.on('disconnected', () => disconnected++);
  await httpPublish('js.token', 'after expiry');
  await until('the message', () => got.length === 1);
  assert.equal(disconnected, 0);
  p.drop();
  await until('a reconnect with a fresh token', () => asked === 1 && client.state === 'ready');
  assert.equal((await client.presence('js.token'))[0].user, 'ann');
  // A token whose rights do not cover the topic is refused by the server.
  await assert.rejects(
    client.refresh(token('bob', 60)),
    (e) => e.code === 'forbidden' || e.code === 'unauthorized' || e.code === 'bad_request',
  );
  client.close();
  p.close();
});

test('user and password log in; a wrong password is refused', async () => {
  const ok = new Tidings(`ws://${HTTP}/ws`, opts({ user: 'carol', password: 'carol-pw' }));
  await ok.whenReady();
  await ok.subscribe('js.login', () => {}).ready;
  assert.equal((await ok.presence('js.login'))[0].user, 'carol');
  ok.close();
  const bad = new Tidings(`ws://${HTTP}/ws`, opts({ user: 'carol', password: 'nope', backoffBase: 5000 }));
  const errors = [];
  bad.on('error', (e) => errors.push(e));
  await until('the refusal', () => errors.length > 0);
  assert.equal(errors[0].code, 'unauthorized');
  bad.close();
});

test('when WebSocket is blocked, it falls back to SSE and POST', async () => {
  const p = await proxy({ blockWebSocket: true });
  const client = new Tidings(`ws://${p.addr}/ws`, opts());
  let fellBack = null;
  client.on('fallback', (f) => (fellBack = f));
  const got = [];
  const gaps = [];
  client.on('gap', (g) => gaps.push(g));
  client.subscribe('js.sse', (m) => got.push(m.data));
  await client.whenReady();
  assert.deepEqual(fellBack, { transport: 'sse' });
  assert.equal(client.transport, 'sse');
  await sleep(200);
  const r = await client.publish('js.sse', { via: 'post' });
  assert.equal(r.topic, 'js.sse');
  await httpPublish('js.sse', 'from curl');
  await until('both messages', () => got.length === 2);
  assert.deepEqual(got, [{ via: 'post' }, 'from curl']);
  // The stream is cut: it comes back with its cursor, nothing missed or repeated.
  p.drop();
  await httpPublish('js.sse', 'while away');
  await until('the one it missed', () => got.length === 3);
  await sleep(300);
  assert.deepEqual(got.slice(2), ['while away']);
  assert.equal((await client.history('js.sse')).messages.length, 3);
  assert.equal(gaps.length, 0);
  client.close();
  p.close();
});
