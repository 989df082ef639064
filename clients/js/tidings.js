// tidings.js: the JavaScript client of tidings' native protocol (WebSocket `/ws`), for
// browsers and Node. One ES module, no dependencies: the platform's WebSocket and fetch (Node
// before 22 has no global WebSocket: pass one, e.g. `ws`, as `options.WebSocket`).
//
// Connects with a token or a user/password, subscribes (with presence), publishes (with an
// ack giving the offset), reads history and presence, refreshes its token, and reconnects by
// itself with exponential backoff and jitter, resuming every topic after the last offset it
// delivered; what the server can no longer give back is reported as a `gap` event, never
// silently skipped, and nothing is delivered twice. When WebSocket cannot connect at all it
// falls back to Server-Sent Events (`/sse`) and `POST /api/publish`.
//
// The state machine (ARCHITECTURE.md, "The JavaScript client"):
//   idle -> connecting -> ready -> (lost) -> waiting (backoff) -> connecting -> ...
//   close() from any state -> closed.

const DEFAULTS = {
  backoffBase: 500,
  backoffMax: 15000,
  fallbackAfter: 2,
  requestTimeout: 10000,
};

/** Topics resumed per pattern at most (the server takes 1024 positions). */
const MAX_POSITIONS = 1024;

/** Most subscriptions named on the upgrade URL (the server takes 64) and the longest URL
 * built: past either, the rest are subscribed by frame. 3 KB stays well under the 8 KB
 * request line proxies commonly allow, with room for the upgrade's other headers. */
const MAX_URL_TOPICS = 64;
const MAX_URL_LENGTH = 3072;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isPattern(topic) {
  return topic.split('.').some((t) => t === '*' || t === '>' || t === '#');
}

/** Whether `pattern` (tokens, `*` one, `>`/`#` the rest) matches the concrete `topic`. */
export function matches(pattern, topic) {
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>' || p[i] === '#') return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

function base64ToBytes(b64) {
  if (typeof atob === 'function') {
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** A message object from the server's JSON (`data`, `text` or `base64`), payload decoded. */
function messageOf(frame, bytes) {
  let data;
  let kind;
  if (bytes !== undefined) {
    data = bytes;
    kind = 'binary';
  } else if ('base64' in frame) {
    data = base64ToBytes(frame.base64);
    kind = 'binary';
  } else if ('text' in frame) {
    data = frame.text;
    kind = 'text';
  } else {
    data = frame.data;
    kind = 'json';
  }
  return { topic: frame.topic, offset: frame.offset, epoch: frame.epoch, kind, data };
}

/** The fallbacks' gap (`earliest`: the oldest offset still held) as the `/ws` gap frame. */
function sseGap(g) {
  return { topic: g.topic, since: g.since, epoch: g.epoch ?? null, next: g.earliest ?? g.next ?? null, reason: g.reason };
}

/** An error the server answered with (`code` as in docs/native-protocol.md). */
export class TidingsError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'TidingsError';
    this.code = code;
    this.details = details;
  }
}

/** A subscription: `ready` resolves with the server's first `ok`. */
class Subscription {
  constructor(client, topic, onMessage, options) {
    this.client = client;
    this.topic = topic;
    this.pattern = isPattern(topic);
    this.onMessage = onMessage;
    this.options = options;
    /** Exact: { epoch, offset } of the last message delivered. Pattern: per topic. */
    this.position = null;
    this.positions = new Map();
    // Resuming where an earlier page or process stopped: `since` (and `epoch`) of an exact topic.
    if (!this.pattern && options.since !== undefined) {
      this.position = { epoch: options.epoch ?? null, offset: options.since };
    }
    this.active = true;
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(() => {});
  }

  /** Stops the subscription (on the server too when connected). */
  unsubscribe() {
    if (!this.active) return Promise.resolve();
    this.active = false;
    return this.client._unsubscribe(this);
  }

  _positionOf(topic) {
    return this.pattern ? this.positions.get(topic) : this.position;
  }

  _setPosition(topic, pos) {
    if (!this.pattern) {
      this.position = pos;
      return;
    }
    this.positions.delete(topic);
    this.positions.set(topic, pos);
    if (this.positions.size > MAX_POSITIONS) {
      this.positions.delete(this.positions.keys().next().value);
    }
  }

  /** Delivers `msg` unless it was delivered already (same epoch, offset not above). */
  _deliver(msg) {
    if (!this.active) return;
    const last = this._positionOf(msg.topic);
    if (last && last.epoch === msg.epoch && msg.offset <= last.offset) return;
    this._setPosition(msg.topic, { epoch: msg.epoch, offset: msg.offset });
    try {
      this.onMessage(msg, this);
    } catch (e) {
      this.client._emit('error', e);
    }
  }

  /** The subscribe request: fresh, or resuming from what was delivered. */
  _request() {
    const req = { op: 'subscribe', topic: this.topic };
    if (this.options.presence) req.presence = true;
    if (this.pattern) {
      if (this.positions.size > 0) {
        req.positions = [...this.positions].map(([topic, p]) => {
          const entry = { topic, since: p.offset };
          if (p.epoch) entry.epoch = p.epoch;
          return entry;
        });
      }
    } else if (this.position) {
      req.since = this.position.offset;
      if (this.position.epoch) req.epoch = this.position.epoch;
    }
    return req;
  }
}

/**
 * A client of one tidings server.
 *
 *   const client = new Tidings('ws://127.0.0.1:7070/ws', { token });
 *   client.subscribe('chat.lobby', (msg) => console.log(msg.data));
 *   const { offset } = await client.publish('chat.lobby', { text: 'hi' });
 *
 * Events (`client.on(name, fn)`): `connected` ({ client, transport }), `subscribed` ({ topic,
 * epoch, offset, replayed }: after every (re)subscribe), `disconnected` ({ code, reason }), `reconnecting` ({ attempt, delay }), `gap` ({ topic, since, epoch,
 * next, reason }), `presence` (join/leave), `fallback` ({ transport: 'sse' }), `error`.
 */
export class Tidings {
  /**
   * @param {string} url `ws://host:port/ws` (or http(s)://, turned into ws(s)://).
   * @param {object} [options] token | getToken | user+password, WebSocket, fetch,
   *   httpUrl, backoffBase, backoffMax, fallbackAfter (0: never), requestTimeout, connect
   *   (false: wait for connect()), urlSubscribe (false: never name topics on the upgrade URL).
   */
  constructor(url, options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.url = url.replace(/^http/, 'ws');
    this.httpUrl = (options.httpUrl || this.url.replace(/^ws/, 'http').replace(/\/ws$/, '')).replace(/\/$/, '');
    this.token = options.token || null;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.fetch = options.fetch || globalThis.fetch?.bind(globalThis);
    this.state = 'idle';
    this.transport = null;
    this.clientId = null;
    this.subs = new Set();
    this.listeners = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.failedOpens = 0;
    this.ws = null;
    this.sse = null;
    this.timer = null;
    /** The subscriptions named on the current connection's upgrade URL: [{ sub, req }], the
     * Nth answered by the server with id `url.N`. */
    this.urlPlan = [];
    this._readyWaiters = [];
    // A constructor cannot hand back this promise: whenReady() gives it to whoever waits.
    if (options.connect !== false) this.connect().catch(() => {});
  }

  /** Adds a listener; returns a function that removes it. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  _emit(event, value) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(value);
      } catch (e) {
        if (event !== 'error') this._emit('error', e);
      }
    }
  }

  /** Starts connecting (done by the constructor unless `connect: false`); resolves once ready. */
  connect() {
    if (this.state === 'idle' || this.state === 'closed') {
      this.state = 'connecting';
      this._open();
    }
    return this.whenReady();
  }

  /** Resolves when the client is connected and logged in. */
  whenReady() {
    if (this.state === 'ready') return Promise.resolve(this);
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** Drops the current connection as a network failure would: the client reconnects (after
   * its backoff) and resumes every topic. */
  reconnect() {
    if (this.ws) {
      try {
        this.ws.close(4000, 'reconnect');
      } catch {}
    } else if (this.sse) {
      this._stopSse();
      this._lost({ code: 4000, reason: 'reconnect' }, true);
    }
  }

    /** Closes for good: no reconnect; requests in flight are rejected. */
  close() {
    this.state = 'closed';
    clearTimeout(this.timer);
    this._failPending(new TidingsError('closed', 'the client was closed'));
    for (const w of this._readyWaiters.splice(0)) w.reject(new TidingsError('closed', 'the client was closed'));
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000, 'bye');
      } catch {}
    }
    this._stopSse();
  }

  // --- requests -------------------------------------------------------------------------

  /**
   * Subscribes to a topic or pattern. `onMessage(msg)` gets { topic, offset, epoch, kind,
   * data } (`data`: the JSON value, the string, or a Uint8Array). Options: presence (also
   * `onPresence(event)`), onGap(gap), since + epoch (an exact topic: start after that offset,
   * e.g. where a previous page stopped).
   */
  subscribe(topic, onMessage, options = {}) {
    const sub = new Subscription(this, topic, onMessage, options);
    this.subs.add(sub);
    if (this.state === 'ready' && this.transport === 'sse') this._restartSse();
    else if (this.state === 'ready') this._sendSubscribe(sub);
    return sub;
  }

  /** Publishes `payload` (an object or number: JSON; a string: text; a Uint8Array or
   * ArrayBuffer: binary). With `ack` (default true) resolves with { topic, offset, epoch }. */
  async publish(topic, payload, { ack = true } = {}) {
    await this.whenReady();
    if (this.transport === 'sse') return this._httpPublish(topic, payload);
    const req = { op: 'publish', topic };
    if (ack) req.ack = true;
    let bytes;
    if (payload instanceof Uint8Array || payload instanceof ArrayBuffer) {
      bytes = payload instanceof ArrayBuffer ? new Uint8Array(payload) : payload;
    } else if (typeof payload === 'string') {
      req.text = payload;
    } else {
      req.data = payload;
    }
    if (!ack) {
      this._send(req, bytes);
      return undefined;
    }
    const reply = await this._request(req, bytes);
    return { topic: reply.topic, offset: reply.offset, epoch: reply.epoch };
  }

  /** Stored messages of an exact topic after `since`: { topic, epoch, earliest, offset, messages }. */
  async history(topic, { since = 0, limit } = {}) {
    await this.whenReady();
    let reply;
    if (this.transport === 'sse') {
      const q = new URLSearchParams({ since: String(since) });
      if (limit !== undefined) q.set('limit', String(limit));
      reply = await this._httpGet(`/api/history/${encodeURIComponent(topic)}?${q}`);
    } else {
      const req = { op: 'history', topic, since };
      if (limit !== undefined) req.limit = limit;
      reply = await this._request(req);
    }
    return { topic: reply.topic, epoch: reply.epoch, earliest: reply.earliest, offset: reply.offset, messages: reply.messages.map((m) => messageOf(m)) };
  }

  /** Who is subscribed under the exact name `topic`: [{ client, user, info? }]. */
  async presence(topic) {
    await this.whenReady();
    if (this.transport === 'sse') return (await this._httpGet(`/api/presence/${encodeURIComponent(topic)}`)).members;
    return (await this._request({ op: 'presence', topic })).members;
  }

  /** Replaces the token: sent to the server now (`refresh`) and used for every reconnect.
   * Resolves with { user, expires }. */
  async refresh(token) {
    this.token = token;
    if (this.state !== 'ready' || this.transport !== 'ws') return { user: null, expires: null };
    const reply = await this._request({ op: 'refresh', token });
    return { user: reply.user, expires: reply.expires ?? null };
  }

  // --- connection -----------------------------------------------------------------------

  async _open() {
    if (this.state === 'closed') return;
    if (this.options.getToken && this.attempt > 0) {
      try {
        this.token = await this.options.getToken();
      } catch (e) {
        this._emit('error', e);
      }
    }
    if (this.fallbackActive) return this._openSse();
    if (!this.WebSocket) {
      if (this.options.fallbackAfter > 0) return this._switchToSse();
      throw new TidingsError('no_websocket', 'no WebSocket implementation: pass options.WebSocket');
    }
    const { url, plan } = this._upgradeUrl();
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (e) {
      return this._lost({ code: 1006, reason: String(e && e.message) }, false);
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.urlPlan = plan;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failedOpens = 0;
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this._onFrame(ev.data);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._lost({ code: ev.code, reason: ev.reason }, opened);
    };
  }

  /**
   * The upgrade URL: the token, then the subscriptions the server can make before it reads a
   * frame (`/ws?topic=a&since=3&epoch=e1&topic=b`, docs/native-protocol.md), so a reconnect
   * gets back what it missed after one round trip instead of two (the 101, hello, the oks and
   * the replay come in one write). Those are exact topics (with or without a position) and
   * patterns without `positions` (the URL has no place for them); since `presence=1` is one
   * flag for every URL topic, the URL takes the larger of the two groups, with presence or
   * without (without on a tie), and the other group goes by frame. None when a user/password
   * login must come first: the `auth` frame follows hello, and a URL subscription would be
   * made before it with anonymous rights (a token on the URL is checked first: fine).
   * Returns { url, plan }: plan[N] = { sub, req } is the subscription the reply `url.N` answers.
   */
  _upgradeUrl() {
    let url = this.url;
    const add = (param) => {
      url += (url.includes('?') ? '&' : '?') + param;
    };
    if (this.token) add('token=' + encodeURIComponent(this.token));
    const plan = [];
    const loginFirst = this.options.user !== undefined && !this.token;
    // A URL that names topics itself would shift the `url.N` numbering: leave it alone.
    if (this.options.urlSubscribe === false || loginFirst || /[?&]topic=/.test(this.url)) return { url, plan };
    const fits = [...this.subs]
      .filter((sub) => sub.active)
      .map((sub) => ({ sub, req: sub._request() }))
      .filter(({ req }) => req.positions === undefined);
    const withPresence = fits.filter(({ req }) => req.presence);
    const presence = withPresence.length * 2 > fits.length;
    const tail = presence ? '&presence=1' : '';
    for (const entry of presence ? withPresence : fits.filter(({ req }) => !req.presence)) {
      if (plan.length === MAX_URL_TOPICS) break;
      const { topic, since, epoch } = entry.req;
      let param = 'topic=' + encodeURIComponent(topic);
      if (since !== undefined) param += '&since=' + since;
      if (epoch) param += '&epoch=' + encodeURIComponent(epoch);
      if (url.length + 1 + param.length + tail.length > MAX_URL_LENGTH) continue; // by frame
      add(param);
      plan.push(entry);
    }
    if (plan.length > 0) url += tail;
    return { url, plan };
  }

  _lost(why, opened) {
    const wasReady = this.state === 'ready';
    this._failPending(new TidingsError('disconnected', `connection lost (${why.code})`));
    if (this.state === 'closed') return;
    if (wasReady) this._emit('disconnected', why);
    if (!opened) this.failedOpens += 1;
    this.state = 'waiting';
    if (!this.fallbackActive && this.options.fallbackAfter > 0 && this.failedOpens >= this.options.fallbackAfter) {
      return this._switchToSse();
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    const { backoffBase, backoffMax } = this.options;
    const exp = Math.min(backoffMax, backoffBase * 2 ** Math.min(this.attempt, 16));
    const delay = Math.round(exp * (0.5 + Math.random() / 2));
    this.attempt += 1;
    this._emit('reconnecting', { attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.state === 'closed') return;
      this.state = 'connecting';
      this._open();
    }, delay);
  }

  async _onFrame(data) {
    let frame;
    let bytes;
    try {
      if (typeof data === 'string') {
        frame = JSON.parse(data);
      } else {
        const all = new Uint8Array(data);
        const nl = all.indexOf(10);
        frame = JSON.parse(decoder.decode(all.subarray(0, nl)));
        bytes = all.slice(nl + 1);
      }
    } catch (e) {
      this._emit('error', new TidingsError('bad_frame', `unreadable frame from the server: ${e.message}`));
      return;
    }
    switch (frame.type) {
      case 'hello':
        this.clientId = frame.client;
        return this._afterHello();
      case 'message':
        return this._onMessage(messageOf(frame, bytes));
      case 'presence':
        return this._onPresence(frame);
      case 'gap':
        return this._onGap(frame);
      case 'ok':
      case 'pong':
      case 'error':
        return this._onReply(frame);
      default:
        return undefined;
    }
  }

  async _afterHello() {
    try {
      if (this.options.user !== undefined && !this.token) {
        await this._request({ op: 'auth', user: this.options.user, password: this.options.password ?? '' }, undefined, true);
      }
    } catch (e) {
      this._emit('error', e);
      if (e.code === 'unauthorized' || e.code === 'too_many_failures') {
        // Wrong credentials stay wrong: stop instead of retrying forever.
        for (const w of this._readyWaiters.splice(0)) w.reject(e);
        this.close();
        return;
      }
      try {
        this.ws?.close(4000, 'login failed');
      } catch {}
      return;
    }
    this._becomeReady('ws');
  }

  _becomeReady(transport) {
    this.state = 'ready';
    this.transport = transport;
    this.attempt = 0;
    this._emit('connected', { client: this.clientId, transport });
    if (transport === 'ws') this._subscribeAll();
    for (const w of this._readyWaiters.splice(0)) w.resolve(this);
  }

  /** After hello: waits for the replies to the URL's subscriptions (the server sends them
   * right after hello, so registering them here, in the same event, misses none), and
   * subscribes every other one by frame. */
  _subscribeAll() {
    const plan = this.urlPlan;
    this.urlPlan = [];
    plan.forEach(({ sub, req }, n) => {
      const reply = this._expect(`url.${n}`, 'subscribe');
      if (sub.active) return this._watchSubscribe(sub, req, reply, false, true);
      // Unsubscribed while connecting: the server made it anyway.
      reply.catch(() => {});
      if (![...this.subs].some((s) => s.active && s.topic === sub.topic)) {
        this._request({ op: 'unsubscribe', topic: sub.topic }).catch(() => {});
      }
      return undefined;
    });
    const onUrl = new Set(plan.map(({ sub }) => sub));
    for (const sub of this.subs) if (sub.active && !onUrl.has(sub)) this._sendSubscribe(sub);
  }

  _sendSubscribe(sub, retried = false) {
    const req = sub._request();
    this._watchSubscribe(sub, req, this._request(req), retried, false);
  }

  /** What a subscribe's reply (to a frame, or `url.N` to the upgrade URL) does. */
  _watchSubscribe(sub, req, reply, retried, onUrl) {
    const resuming = req.since !== undefined || req.positions !== undefined;
    reply.then(
      (ok) => {
        // A fresh exact subscription starts after the topic's last offset: a reconnect
        // resumes from there even if nothing arrived in between.
        if (!sub.pattern && !resuming && !sub.position && ok.offset !== undefined) {
          sub.position = { epoch: ok.epoch ?? null, offset: ok.offset ?? 0 };
        }
        sub._resolve(ok);
        this._emit('subscribed', { topic: sub.topic, epoch: ok.epoch ?? null, offset: ok.offset ?? null, replayed: ok.replayed ?? 0 });
      },
      (err) => {
        if (err.code === 'resume_unavailable' && !retried && sub.active) {
          const d = err.details;
          const gap = {
            topic: sub.topic,
            since: req.since,
            epoch: d.epoch ?? null,
            next: d.earliest || null,
            reason: err.message,
          };
          sub.position = d.earliest > 0 ? { epoch: d.epoch ?? null, offset: d.earliest - 1 } : null;
          this._reportGap(sub, gap);
          return this._sendSubscribe(sub, true);
        }
        if (err.code === 'disconnected') return; // resubscribed on reconnect
        // A server that does not read topics off the URL never answers `url.N`: by frame.
        if (err.code === 'timeout' && onUrl && sub.active && this.state === 'ready') return this._sendSubscribe(sub, retried);
        sub._reject(err);
        this._emit('error', err);
      },
    );
  }

  _reportGap(sub, gap) {
    this._emit('gap', gap);
    try {
      sub.options.onGap?.(gap);
    } catch (e) {
      this._emit('error', e);
    }
  }

  _onMessage(msg) {
    for (const sub of this.subs) {
      if (sub.topic === msg.topic || (sub.pattern && matches(sub.topic, msg.topic))) sub._deliver(msg);
    }
  }

  _onPresence(ev) {
    this._emit('presence', ev);
    for (const sub of this.subs) {
      if (sub.topic === ev.topic) sub.options.onPresence?.(ev);
    }
  }

  _onGap(gap) {
    for (const sub of this.subs) {
      if (sub.topic === gap.topic || (sub.pattern && matches(sub.topic, gap.topic))) {
        // Delivery goes on at `next` in `epoch` (unknown: whatever comes next).
        const offset = gap.next ? gap.next - 1 : 0;
        sub._setPosition(gap.topic, { epoch: gap.epoch ?? null, offset });
        this._reportGap(sub, gap);
      }
    }
  }

  _onReply(frame) {
    const waiter = this.pending.get(frame.id);
    if (!waiter) {
      if (frame.type === 'error') {
        const { code, message, ...details } = frame;
        this._emit('error', new TidingsError(code, message, details));
      }
      return;
    }
    this.pending.delete(frame.id);
    clearTimeout(waiter.timer);
    if (frame.type === 'error') {
      const { type, id, code, message, ...details } = frame;
      waiter.reject(new TidingsError(code, message, details));
    } else {
      waiter.resolve(frame);
    }
  }

  _send(req, bytes) {
    const ws = this.ws;
    if (!ws) throw new TidingsError('disconnected', 'not connected');
    const text = JSON.stringify(req);
    if (bytes === undefined) return ws.send(text);
    const head = encoder.encode(text + '\n');
    const frame = new Uint8Array(head.length + bytes.length);
    frame.set(head, 0);
    frame.set(bytes, head.length);
    return ws.send(frame);
  }

  _request(req, bytes, beforeReady = false) {
    if (!this.ws || (!beforeReady && this.state !== 'ready')) {
      return Promise.reject(new TidingsError('disconnected', 'not connected'));
    }
    const id = this.nextId++;
    const reply = this._expect(id, req.op);
    try {
      this._send({ ...req, id }, bytes);
    } catch (e) {
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      waiter.reject(e);
    }
    return reply;
  }

  /** The reply with this `id`, within the request timeout. */
  _expect(id, op) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TidingsError('timeout', `no reply to ${op} within ${this.options.requestTimeout} ms`));
      }, this.options.requestTimeout);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  _failPending(err) {
    for (const [, w] of this.pending) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.pending.clear();
  }

  _unsubscribe(sub) {
    this.subs.delete(sub);
    if (this.transport === 'sse') {
      this._restartSse();
      return Promise.resolve();
    }
    if (this.state !== 'ready') return Promise.resolve();
    return this._request({ op: 'unsubscribe', topic: sub.topic }).then(() => undefined, () => undefined);
  }

  // --- the SSE fallback -----------------------------------------------------------------

  _switchToSse() {
    if (!this.fetch) return this._scheduleReconnect();
    this.fallbackActive = true;
    this._emit('fallback', { transport: 'sse' });
    this.state = 'connecting';
    this._openSse();
  }

  _authHeaders() {
    const h = {};
    if (this.token) h.authorization = `Bearer ${this.token}`;
    else if (this.options.user !== undefined) {
      const raw = `${this.options.user}:${this.options.password ?? ''}`;
      h.authorization = `Basic ${typeof btoa === 'function' ? btoa(raw) : Buffer.from(raw).toString('base64')}`;
    }
    return h;
  }

  async _httpGet(path) {
    const res = await this.fetch(this.httpUrl + path, { headers: this._authHeaders() });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new TidingsError(body.error || `http_${res.status}`, body.message || res.statusText);
    return body;
  }

  async _httpPublish(topic, payload) {
    let body;
    let type;
    if (payload instanceof Uint8Array || payload instanceof ArrayBuffer) {
      body = payload;
      type = 'application/octet-stream';
    } else if (typeof payload === 'string') {
      body = payload;
      type = 'text/plain; charset=utf-8';
    } else {
      body = JSON.stringify(payload);
      type = 'application/json';
    }
    const res = await this.fetch(`${this.httpUrl}/api/publish/${encodeURIComponent(topic)}`, {
      method: 'POST',
      headers: { ...this._authHeaders(), 'content-type': type },
      body,
    });
    const reply = await res.json().catch(() => ({}));
    if (!res.ok) throw new TidingsError(reply.error || `http_${res.status}`, reply.message || res.statusText);
    return { topic: reply.topic, offset: reply.offset, epoch: reply.epoch };
  }

  _stopSse() {
    if (this.sse) {
      this.sse.abort();
      this.sse = null;
    }
  }

  _restartSse() {
    this._stopSse();
    if (this.state === 'closed') return;
    this._openSse();
  }

  /** One `/sse` response read with fetch (so headers can carry credentials), until it ends. */
  async _openSse() {
    const topics = [...this.subs].filter((s) => s.active).map((s) => s.topic);
    const abort = new AbortController();
    this.sse = abort;
    if (topics.length === 0) {
      // Nothing to read: publishing, history and presence work without a stream.
      if (this.state !== 'ready') this._becomeReady('sse');
      return;
    }
    const q = new URLSearchParams();
    for (const t of topics) q.append('topic', t);
    if (this.sseCursor) q.set('cursor', this.sseCursor);
    else {
      // First stream: resume exact topics from what the WebSocket delivered, if anything.
      const exact = [...this.subs].filter((s) => !s.pattern && s.position);
      if (exact.length === 1 && topics.length === 1) {
        q.set('since', String(exact[0].position.offset));
        if (exact[0].position.epoch) q.set('epoch', exact[0].position.epoch);
      }
    }
    let res;
    try {
      res = await this.fetch(`${this.httpUrl}/sse?${q}`, { headers: { ...this._authHeaders(), accept: 'text/event-stream' }, signal: abort.signal });
      if (!res.ok) throw new TidingsError(`http_${res.status}`, `GET /sse answered ${res.status}`);
    } catch (e) {
      if (this.sse !== abort) return;
      this.sse = null;
      return this._lost({ code: 1006, reason: String(e.message) }, false);
    }
    if (this.state !== 'ready') this._becomeReady('sse');
    for (const sub of this.subs) sub._resolve({ type: 'ok', topic: sub.topic });
    try {
      await this._readSse(res.body, abort);
    } catch (e) {
      if (abort.signal.aborted) return;
    }
    if (this.sse !== abort) return;
    this.sse = null;
    this._lost({ code: 1000, reason: 'the event stream ended' }, true);
  }

  async _readSse(body, abort) {
    const reader = body.getReader();
    let buf = '';
    let event = { name: 'message', data: [], id: null };
    const utf8 = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || abort.signal.aborted) return;
      buf += utf8.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (event.id !== null) this.sseCursor = event.id;
          if (event.data.length > 0) this._onSseEvent(event.name, event.data.join('\n'));
          event = { name: 'message', data: [], id: null };
        } else if (line.startsWith(':')) {
          // comment (keep-alive)
        } else {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event.name = value;
          else if (field === 'data') event.data.push(value);
          else if (field === 'id') event.id = value;
        }
      }
    }
  }

  _onSseEvent(name, data) {
    let obj;
    try {
      obj = JSON.parse(data);
    } catch {
      return;
    }
    if (name === 'message') this._onMessage(messageOf(obj));
    else if (name === 'gap') this._onGap(sseGap(obj.gap));
    else if (name === 'error') this._emit('error', new TidingsError(obj.code, obj.message));
  }
}

export default Tidings;
