"""Shared helpers of the Python interop programs: a thin client of tidings' native JSON
protocol (/ws) on top of the real `websockets` library (asyncio API, websockets >= 13).

Frames the server sends are read by one task into a list; tests wait for the frame they
expect with a predicate, so the order of unrelated frames (an "ok" before or after a
"message") never matters. Every wait has a timeout: nothing here can hang.
"""

import asyncio
import json
import os
import sys

try:
    from websockets.asyncio.client import connect
except ImportError:  # pragma: no cover - reported as a clear failure
    sys.stderr.write(
        "error: the Python package `websockets` (>= 13) is missing: run scripts/install-test-deps.sh\n"
    )
    sys.exit(3)

# The whole program must finish within this (the Rust harness also kills it later).
OVERALL_TIMEOUT = 20.0
# One expected frame must arrive within this.
WAIT = 5.0


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def ok(scenario):
    print(f"ok: {scenario}", flush=True)


def unique(prefix):
    return f"{prefix}.{os.getpid()}x{os.urandom(3).hex()}"


class Frame:
    """One frame from the server: `obj` is the decoded JSON (text frame) or the JSON header
    (binary frame); `payload` is the raw bytes after the header's newline (binary only)."""

    def __init__(self, raw):
        self.raw = raw
        self.binary = isinstance(raw, (bytes, bytearray))
        self.payload = None
        if self.binary:
            nl = raw.find(b"\n")
            if nl < 0:
                raise Failure(f"binary frame without a JSON header line: {raw[:80]!r}")
            header, self.payload = raw[:nl], bytes(raw[nl + 1 :])
            try:
                self.obj = json.loads(header)
            except ValueError as e:
                raise Failure(f"binary frame header is not JSON ({e}): {header[:200]!r}")
        else:
            try:
                self.obj = json.loads(raw)
            except ValueError as e:
                raise Failure(f"server sent a text frame that is not JSON ({e}): {raw[:200]!r}")
        if not isinstance(self.obj, dict):
            raise Failure(f"server frame is not a JSON object: {raw[:200]!r}")

    def get(self, key, default=None):
        return self.obj.get(key, default)

    def __repr__(self):
        if self.binary:
            return f"binary({self.obj}, {len(self.payload)} bytes)"
        return f"text({self.raw[:300]})"


class Client:
    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.frames = []  # received, not yet consumed
        self.seen = []  # everything received, for diagnostics
        self.closed = None  # exception once the connection ended
        self._event = asyncio.Event()
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url, name="client", **kwargs):
        try:
            ws = await asyncio.wait_for(connect(url, open_timeout=WAIT, **kwargs), WAIT)
        except Exception as e:
            raise Failure(f"{name}: cannot connect to {url}: {e!r}")
        return cls(ws, name)

    async def _read(self):
        try:
            async for raw in self.ws:
                f = Frame(raw)
                self.frames.append(f)
                self.seen.append(f)
                self._event.set()
        except Exception as e:  # connection closed (or a bad frame): recorded, checked by waiters
            self.closed = e
        else:
            self.closed = ConnectionError("connection closed")
        self._event.set()

    def new_id(self):
        self._next_id += 1
        return self._next_id

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def send_raw(self, data):
        await self.ws.send(data)

    async def request(self, obj):
        """Sends `obj` with a fresh id; returns the id."""
        obj = dict(obj)
        obj.setdefault("id", self.new_id())
        await self.send(obj)
        return obj["id"]

    async def wait(self, pred, what, timeout=WAIT):
        """Removes and returns the first received frame matching `pred`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, f in enumerate(self.frames):
                if pred(f):
                    return self.frames.pop(i)
            if isinstance(self.closed, Failure):
                raise self.closed
            if self.closed is not None:
                raise Failure(f"{self.name}: connection ended ({self.closed!r}) while waiting for {what}; "
                              f"received: {self.seen[-10:]}")
            left = deadline - loop.time()
            if left <= 0:
                raise Failure(f"{self.name}: timed out after {timeout}s waiting for {what}; "
                              f"unconsumed frames: {self.frames[-10:]}")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def reply(self, rid, what):
        """Waits for the ok/error reply to request `rid`."""
        return await self.wait(lambda f: f.get("id") == rid and f.get("type") in ("ok", "error"),
                               f"the reply to {what} (id {rid})")

    async def expect_ok(self, rid, what):
        f = await self.reply(rid, what)
        check(f.get("type") == "ok", f"{self.name}: {what} failed: {f}")
        return f

    async def message(self, topic, what=None, offset=None):
        def pred(f):
            return (f.get("type") == "message" and f.get("topic") == topic
                    and (offset is None or f.get("offset") == offset))
        return await self.wait(pred, what or f"a message on {topic}" + (f" with offset {offset}" if offset else ""))

    async def quiet(self, pred, what, secs=0.3):
        """Asserts that no frame matching `pred` arrives within `secs`."""
        await asyncio.sleep(secs)
        extra = [f for f in self.frames if pred(f)]
        check(not extra, f"{self.name}: unexpected {what}: {extra}")

    async def hello(self):
        f = await self.wait(lambda f: True, "the hello frame")
        check(f.get("type") == "hello", f"{self.name}: first frame is not hello: {f}")
        check(isinstance(f.get("client"), str) and f.get("client"), f"hello has no client id: {f}")
        check(str(f.get("server", "")).startswith("tidings/"), f"hello has no server 'tidings/<version>': {f}")
        return f

    async def subscribe(self, topic, **extra):
        rid = await self.request({"op": "subscribe", "topic": topic, **extra})
        return await self.reply(rid, f"subscribe {topic} {extra or ''}")

    async def publish(self, topic, ack=True, **body):
        rid = await self.request({"op": "publish", "topic": topic, "ack": ack, **body})
        if ack:
            return await self.expect_ok(rid, f"publish to {topic}")
        return None

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), WAIT)
        finally:
            self._reader.cancel()


def run(main):
    """Runs `main(url, args)` with the overall timeout; exits 0 / 1 with a clear message."""
    if len(sys.argv) < 2:
        sys.stderr.write(f"usage: {sys.argv[0]} ws://HOST:PORT/ws [options]\n")
        sys.exit(2)

    async def capped():
        return await asyncio.wait_for(main(sys.argv[1], sys.argv[2:]), OVERALL_TIMEOUT)

    try:
        asyncio.run(capped())
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except asyncio.TimeoutError:
        print(f"FAIL: overall timeout of {OVERALL_TIMEOUT}s exceeded", file=sys.stderr, flush=True)
        sys.exit(1)
