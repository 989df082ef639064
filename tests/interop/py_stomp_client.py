#!/usr/bin/env python3
"""stomp.py (the real third-party STOMP client) against tidings, over TCP or WebSocket.

    py_stomp_client.py tcp HOST:STOMP_PORT --line HOST:PORT --ws URL
    py_stomp_client.py ws  HOST:HTTP_PORT  --line HOST:PORT --ws URL

Scenarios (each prints `ok: <name>`): versions 1.0/1.1/1.2 (TCP), pub/sub with wildcards and
user headers, receipts, a binary body with NUL bytes, queues in each ack mode, redelivery
after a consumer dies, NACK, transactions (commit and abort), heart-beats keeping a
connection alive and a silent peer being dropped, and cross-protocol traffic with a TCP
line-protocol client and a WebSocket native-protocol client (`websockets`).

The server must run with `[stomp_broker] heart_beat_send_ms = 200, heart_beat_receive_ms = 200`.
Every wait has a timeout: nothing here can hang.
"""

import argparse
import json
import os
import queue
import socket
import sys
import threading
import time

try:
    import stomp
    from stomp.adapter.ws import WSStompConnection
    from websockets.sync.client import connect as ws_connect
except ImportError as e:  # pragma: no cover - reported as a clear failure
    sys.stderr.write(f"error: {e}: run scripts/install-test-deps.sh\n")
    sys.exit(3)

WAIT = 5.0


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def ok(name):
    print(f"ok: {name}", flush=True)


def unique(prefix):
    return f"{prefix}.{os.getpid()}x{os.urandom(3).hex()}"


class Inbox(stomp.ConnectionListener):
    """Collects what the server sends, for tests to wait on."""

    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.disconnected = threading.Event()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.set()

    def message(self, what):
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            raise Failure(f"no message within {WAIT} s: {what}")

    def quiet(self, what, secs=0.3):
        time.sleep(secs)
        check(self.messages.empty(), f"unexpected message ({what}): {self.messages.queue[0] if not self.messages.empty() else ''}")

    def receipt(self, rid):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                got = self.receipts.get(timeout=0.1)
            except queue.Empty:
                continue
            if got == rid:
                return
        raise Failure(f"no RECEIPT {rid} within {WAIT} s")

    def error(self, what):
        try:
            return self.errors.get(timeout=WAIT)
        except queue.Empty:
            raise Failure(f"no ERROR within {WAIT} s: {what}")


class Stomp:
    """Opens stomp.py connections over the chosen transport."""

    def __init__(self, transport, addr, tls_ca=None):
        self.transport = transport
        # A CA file: STOMP over TLS (the stomp-tls listener), verified against it.
        self.tls_ca = tls_ca
        host, port = addr.rsplit(":", 1)
        self.host_port = [(host, int(port))]
        self.open_conns = []

    def open(self, version="1.2", heartbeats=(0, 0), binary=False):
        if self.transport == "ws":
            check(version == "1.2", "stomp.py speaks 1.2 over WebSocket")
            conn = WSStompConnection(
                self.host_port,
                ws_path="/stomp",
                header={"Sec-WebSocket-Protocol": "v12.stomp"},
                heartbeats=heartbeats,
                auto_decode=False,
                binary_mode=binary,
                reconnect_attempts_max=1,
            )
        elif version == "1.0":
            conn = stomp.Connection10(self.host_port, auto_decode=False, reconnect_attempts_max=1)
        else:
            cls = stomp.Connection11 if version == "1.1" else stomp.Connection12
            conn = cls(self.host_port, heartbeats=heartbeats, auto_decode=False, reconnect_attempts_max=1)
        if self.tls_ca and self.transport == "tcp":
            conn.set_ssl(for_hosts=self.host_port, ca_certs=self.tls_ca)
        inbox = Inbox()
        conn.set_listener("inbox", inbox)
        conn.connect(wait=True)
        self.open_conns.append(conn)
        return conn, inbox

    def close_all(self):
        for c in self.open_conns:
            try:
                if c.is_connected():
                    c.disconnect()
            except Exception:
                pass


def receipt_send(conn, inbox, dest, body, **headers):
    rid = unique("r")
    conn.send(dest, body, headers=dict(headers, receipt=rid))
    inbox.receipt(rid)


def subscribe(conn, inbox, dest, sid, ack="auto", **headers):
    rid = unique("s")
    conn.subscribe(dest, id=sid, ack=ack, headers=dict(headers, receipt=rid))
    inbox.receipt(rid)


def kill(conn):
    """A consumer that dies: the socket goes away without DISCONNECT."""
    sock = conn.transport.socket
    if not isinstance(sock, socket.socket):
        sock = sock.sock  # websocket-client's WebSocket wraps the TCP socket
    # shutdown, not close: stomp.py's reader thread is blocked in recv on this socket, and
    # only shutdown makes the kernel send the FIN while it is.
    sock.shutdown(socket.SHUT_RDWR)


def versions(s):
    for version in ["1.0", "1.1", "1.2"]:
        conn, inbox = s.open(version)
        topic = unique("py.ver")
        conn.subscribe(f"/topic/{topic}", id="v", headers={"receipt": "sub10"})
        inbox.receipt("sub10")
        conn.send(f"/topic/{topic}", b"v" + version.encode(), headers={"x-colon": "a:b"})
        m = inbox.message(f"STOMP {version} pub/sub")
        check(m.body == b"v" + version.encode(), f"{version}: body {m.body!r}")
        check(m.headers.get("x-colon") == "a:b", f"{version}: header {m.headers}")
        conn.disconnect()
    ok("stomp.py speaks STOMP 1.0, 1.1 and 1.2 (header escaping per version)")


def pubsub(s):
    a, ia = s.open()
    b, ib = s.open()
    base = unique("py")
    subscribe(a, ia, f"/topic/{base}.*", "star")
    subscribe(b, ib, f"/topic/{base}.#", "hash")
    p, ip = s.open()
    receipt_send(p, ip, f"/topic/{base}.one", b"first", **{"x-custom": "hello world", "x-n": "1"})
    receipt_send(p, ip, f"/topic/{base}.one.two", b"second")
    m = ia.message("* subscriber")
    check(m.body == b"first" and m.headers.get("x-custom") == "hello world", f"star got {m.headers} {m.body!r}")
    check(m.headers.get("destination") == f"/topic/{base}.one", f"destination {m.headers}")
    ia.quiet("`*` matches one token only")
    got = [ib.message("# subscriber").body for _ in range(2)]
    check(got == [b"first", b"second"], f"hash got {got}")
    ok("pub/sub with wildcards (*, #), user headers travel, receipts after effect")
    for c in (a, b, p):
        c.disconnect()


def binary(s):
    sub, isub = s.open()
    pub, ipub = s.open(binary=True)
    topic = unique("py.bin")
    subscribe(sub, isub, f"/topic/{topic}", "b")
    body = b"\x00\x01bin\x00ary\xff\xfe\r\n\x00"
    receipt_send(pub, ipub, f"/topic/{topic}", body, **{"content-type": "application/octet-stream"})
    m = isub.message("binary body")
    check(m.body == body, f"binary body {m.body!r}")
    check(m.headers.get("content-length") == str(len(body)), f"content-length {m.headers}")
    ok("a binary body with NUL bytes arrives intact (content-length)")
    sub.disconnect()
    pub.disconnect()


def queues(s):
    q = unique("py.q")
    dest = f"/queue/{q}"
    p, ip = s.open()
    # Kept while nobody consumes, then round-robin between two auto consumers.
    for i in range(4):
        receipt_send(p, ip, dest, f"m{i}".encode())
    a, ia = s.open()
    b, ib = s.open()
    subscribe(a, ia, dest, "a")
    first = [ia.message("queued while nobody consumed").body for _ in range(4)]
    check(first == [b"m0", b"m1", b"m2", b"m3"], f"kept messages {first}")
    subscribe(b, ib, dest, "b")
    for i in range(4, 8):
        receipt_send(p, ip, dest, f"m{i}".encode())
    got_a = [ia.message("round-robin a").body for _ in range(2)]
    got_b = [ib.message("round-robin b").body for _ in range(2)]
    check(sorted(got_a + got_b) == [b"m4", b"m5", b"m6", b"m7"], f"round robin {got_a} {got_b}")
    ia.quiet("each message exactly once")
    ok("queue: kept while no consumer, then round-robin, each message to exactly one (ack auto)")
    a.disconnect()
    b.disconnect()

    # client (cumulative) ack: ACK of the last one acknowledges all.
    dest = f"/queue/{unique('py.qc')}"
    c, ic = s.open()
    subscribe(c, ic, dest, "c", ack="client")
    for i in range(3):
        receipt_send(p, ip, dest, f"c{i}".encode())
    ms = [ic.message("client ack") for _ in range(3)]
    rid = unique("ack")
    c.ack(ms[-1].headers["ack"], receipt=rid)
    ic.receipt(rid)
    kill(c)
    d, idd = s.open()
    subscribe(d, idd, dest, "d", ack="client")
    idd.quiet("a cumulative ACK covered every earlier message", 0.5)
    ok("queue: ack client is cumulative")
    d.disconnect()

    # client-individual: unacked messages go to another consumer when one dies, redelivered.
    dest = f"/queue/{unique('py.qi')}"
    e, ie = s.open()
    f, iff = s.open()
    subscribe(e, ie, dest, "e", ack="client-individual", **{"prefetch-count": "10"})
    for i in range(3):
        receipt_send(p, ip, dest, f"i{i}".encode())
    ms = [ie.message("client-individual") for _ in range(3)]
    rid = unique("ack")
    e.ack(ms[1].headers["ack"], receipt=rid)
    ie.receipt(rid)
    subscribe(f, iff, dest, "f", ack="client-individual")
    kill(e)
    again = [iff.message("redelivery after a consumer died") for _ in range(2)]
    check([m.body for m in again] == [b"i0", b"i2"], f"redelivered {[m.body for m in again]}")
    check(all(m.headers.get("redelivered") == "true" for m in again), f"redelivered flag {[m.headers for m in again]}")
    ok("queue: ack client-individual; a dead consumer's unacked messages go to another, marked redelivered")

    # NACK: the message goes to the other consumer.
    for m in again:
        f.ack(m.headers["ack"])
    g, ig = s.open()
    subscribe(g, ig, dest, "g", ack="client-individual")
    receipt_send(p, ip, dest, b"nack-me")
    # Round-robin may pick either; whoever gets it NACKs it and the other must get it.
    deadline = time.monotonic() + WAIT
    first = None
    while first is None and time.monotonic() < deadline:
        for conn, inbox, other in ((f, iff, ig), (g, ig, iff)):
            try:
                m = inbox.messages.get(timeout=0.05)
            except queue.Empty:
                continue
            first = (conn, m, other)
            break
    check(first is not None, "nobody got the message to NACK")
    conn, m, other = first
    conn.nack(m.headers["ack"])
    m2 = other.message("NACKed message to the other consumer")
    check(m2.body == b"nack-me" and m2.headers.get("redelivered") == "true", f"after NACK {m2.headers} {m2.body!r}")
    ok("queue: NACK gives the message to another consumer, marked redelivered")
    for c in (f, g, p):
        c.disconnect()


def transactions(s):
    topic = unique("py.tx")
    sub, isub = s.open()
    subscribe(sub, isub, f"/topic/{topic}", "t")
    qdest = f"/queue/{unique('py.txq')}"
    p, ip = s.open()
    receipt_send(p, ip, qdest, b"to-ack-in-tx")
    c, ic = s.open()
    subscribe(c, ic, qdest, "q", ack="client-individual")
    m = ic.message("message to ack in a transaction")

    tx = p.begin()
    p.send(f"/topic/{topic}", b"one", headers={"transaction": tx})
    p.send(f"/topic/{topic}", b"two", headers={"transaction": tx})
    ctx = c.begin()
    c.ack(m.headers["ack"], transaction=ctx)
    isub.quiet("nothing before COMMIT")
    rid = unique("commit")
    p.commit(tx, headers={"receipt": rid})
    ip.receipt(rid)
    got = [isub.message("committed").body for _ in range(2)]
    check(got == [b"one", b"two"], f"committed {got}")
    c.commit(ctx)

    tx = p.begin()
    p.send(f"/topic/{topic}", b"never", headers={"transaction": tx})
    rid = unique("abort")
    p.abort(tx, headers={"receipt": rid})
    ip.receipt(rid)
    receipt_send(p, ip, f"/topic/{topic}", b"after")
    check(isub.message("after abort").body == b"after", "an aborted SEND was delivered")
    # The ACK was committed: a new consumer gets nothing when c leaves.
    kill(c)
    d, idd = s.open()
    subscribe(d, idd, qdest, "d", ack="client-individual")
    idd.quiet("the committed ACK holds", 0.5)
    ok("transactions: SENDs and ACKs apply at COMMIT, nothing on ABORT")
    for x in (sub, p, d):
        x.disconnect()


def heart_beats(s):
    conn, inbox = s.open(heartbeats=(200, 200))
    time.sleep(1.5)  # idle for 7 intervals: both sides' beats keep it open
    check(conn.is_connected() and not inbox.disconnected.is_set(), "dropped although beating")
    receipt_send(conn, inbox, f"/topic/{unique('py.hb')}", b"alive")
    ok("heart-beats keep an idle connection open")
    conn.disconnect()

    silent, isilent = s.open(heartbeats=(200, 0))
    # Stop every write below stomp.py: the server hears nothing more.
    silent.transport.send = lambda frame: None
    # Over TLS stomp.py's socket is non-blocking and its io thread writes what transmit()
    # queued: stop that queue too.
    if not getattr(silent.transport, "blocking", True):
        silent.transport.send_queue.put = lambda frame: None
    e = isilent.error("a silent peer")
    check("heart-beat" in e.headers.get("message", ""), f"ERROR {e.headers}")
    if getattr(silent.transport, "blocking", True):
        check(isilent.disconnected.wait(WAIT), "the silent peer was not disconnected")
        ok("a silent peer is dropped (ERROR, then close)")
    else:
        # stomp.py 9.0's non-blocking (TLS) reader takes EOF for "no data yet" and never
        # reports the close; the server's close over TLS is checked with openssl instead.
        ok("a silent peer is dropped (ERROR; stomp.py over TLS does not notice the close)")


class Line:
    """The TCP line protocol, as `nc` would speak it."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT)
        self.file = self.sock.makefile("rb")
        check(self.readline().startswith("+OK"), "line greeting")

    def readline(self):
        return self.file.readline().decode().rstrip("\r\n")

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        while True:
            reply = self.readline()
            if reply.startswith(("+OK", "-ERR")):
                check(reply.startswith("+OK"), f"{line}: {reply}")
                return reply

    def msg(self, topic):
        while True:
            line = self.readline()
            check(line != "", "line client: EOF")
            if line.startswith(f"MSG {topic} "):
                return line.split(" ", 3)[3]


class Native:
    """The native JSON protocol over WebSocket (/ws), with the `websockets` sync client."""

    def __init__(self, url):
        self.ws = ws_connect(url, open_timeout=WAIT)
        self.n = 0

    def request(self, obj):
        self.n += 1
        obj["id"] = self.n
        self.ws.send(json.dumps(obj))
        while True:
            f = json.loads(self.ws.recv(timeout=WAIT))
            if f.get("id") == self.n:
                check(f.get("type") == "ok", f"{obj}: {f}")
                return f

    def message(self, topic):
        while True:
            f = json.loads(self.ws.recv(timeout=WAIT))
            if f.get("type") == "message" and f.get("topic") == topic:
                return f


def cross_protocol(s, line_addr, ws_url):
    topic = unique("py.cross")
    st, ist = s.open()
    subscribe(st, ist, f"/topic/{topic}", "x")
    line = Line(line_addr)
    native = Native(ws_url)
    line.cmd(f"PUB {topic} hello from the line protocol")
    m = ist.message("from a line client")
    check(m.body == b"hello from the line protocol", f"from line {m.body!r}")
    native.request({"op": "publish", "topic": topic, "text": "hello from ws", "ack": True})
    m = ist.message("from a native WebSocket client")
    check(m.body == b"hello from ws", f"from ws {m.body!r}")
    native.request({"op": "publish", "topic": topic, "data": {"n": 1}, "ack": True})
    m = ist.message("JSON from a native WebSocket client")
    check(json.loads(m.body) == {"n": 1} and m.headers.get("content-type") == "application/json", f"json {m.headers} {m.body!r}")
    ok("STOMP subscriber receives what TCP-line and WebSocket-native clients publish")

    back = unique("py.back")
    line.cmd(f"SUB {back}")
    native.request({"op": "subscribe", "topic": back})
    receipt_send(st, ist, f"/topic/{back}", b"from stomp")
    check(line.msg(back) == "from stomp", "line client did not get the STOMP message")
    f = native.message(back)
    check(f.get("text") == "from stomp", f"native got {f}")
    ok("TCP-line and WebSocket-native subscribers receive what a STOMP client sends")
    st.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport", choices=["tcp", "ws"])
    ap.add_argument("addr")
    ap.add_argument("--line", required=True)
    ap.add_argument("--ws", required=True)
    ap.add_argument("--tls", metavar="CA_FILE", help="tcp over TLS, trusting this CA")
    args = ap.parse_args()
    s = Stomp(args.transport, args.addr, args.tls)
    timer = threading.Timer(40, lambda: (print("error: overall timeout", flush=True), os._exit(2)))
    timer.daemon = True
    timer.start()
    try:
        if args.transport == "tcp":
            versions(s)
        pubsub(s)
        binary(s)
        queues(s)
        transactions(s)
        heart_beats(s)
        cross_protocol(s, args.line, args.ws)
    except Failure as e:
        print(f"FAILED: {e}", flush=True)
        os._exit(1)
    finally:
        s.close_all()
    over = f"{args.transport} (TLS)" if args.tls else args.transport
    print(f"ok: all stomp.py scenarios over {over}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
