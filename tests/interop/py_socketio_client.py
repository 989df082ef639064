#!/usr/bin/env python3
"""Interop: python-socketio (the Python Socket.IO client) against tidings' /socket.io/,
meeting a TCP line-protocol client on the same topic.

    python py_socketio_client.py http://127.0.0.1:PORT 127.0.0.1:TCPPORT

Both transports (long-polling only, and the default polling upgraded to WebSocket): acks with
offsets, text / JSON / binary both ways. Prints `ok: <scenario>` lines; exits 1 with
`FAIL: ...` otherwise; never runs longer than 20 s.
"""

import os
import queue
import socket
import sys
import threading
import time

try:
    import socketio
except ImportError:
    print("FAIL: python-socketio missing: run scripts/install-test-deps.sh", file=sys.stderr)
    sys.exit(3)

WAIT = 5.0
threading.Timer(20.0, lambda: (print("FAIL: overall timeout", file=sys.stderr), os._exit(1))).start()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    os._exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Line:
    """A TCP line-protocol client: lines and BMSG frames into a queue."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT)
        self.items = queue.Queue()
        self.buf = b""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.buf += data
            while b"\r\n" in self.buf:
                line, rest = self.buf.split(b"\r\n", 1)
                text = line.decode()
                if text.startswith("BMSG "):
                    n = int(text.split()[3])
                    if len(rest) < n + 2:
                        break
                    self.items.put((text, rest[:n]))
                    self.buf = rest[n + 2:]
                else:
                    self.items.put((text, None))
                    self.buf = rest

    def send(self, raw):
        self.sock.sendall(raw)

    def expect(self, pred, what):
        deadline = time.time() + WAIT
        while True:
            try:
                item = self.items.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                fail(f"tcp: no {what}")
            if pred(item):
                return item


def run(base, tcp, transports, label):
    topic = f"py.{label}.{os.getpid()}"
    got = queue.Queue()
    sio = socketio.Client(reconnection=False)

    @sio.on("message")
    def on_message(msg, offset=None):
        got.put((msg, offset))

    sio.connect(base, transports=transports, wait_timeout=WAIT)
    line = Line(tcp)
    line.expect(lambda i: i[0].startswith("+OK tidings"), "greeting")
    line.send(f"SUB {topic}\r\n".encode())
    line.expect(lambda i: i[0].startswith(f"+OK SUB {topic}"), "+OK SUB")

    sub = sio.call("subscribe", topic, timeout=WAIT)
    check(sub.get("ok") is True and sub.get("topic") == topic, f"subscribe ack {sub}")
    pub = sio.call("publish", (topic, "hello from python"), timeout=WAIT)
    check(pub.get("ok") and pub.get("offset") == 1, f"publish ack {pub}")
    pub = sio.call("publish", (topic, {"n": 2}), timeout=WAIT)
    check(pub.get("offset") == 2, f"json publish ack {pub}")
    pub = sio.call("publish", (topic, b"\x00\xffbin"), timeout=WAIT)
    check(pub.get("offset") == 3, f"binary publish ack {pub}")
    line.expect(lambda i: i[0] == f"MSG {topic} 1 hello from python", "MSG 1")
    line.expect(lambda i: i[0] == f'MSG {topic} 2 {{"n":2}}', "MSG 2")
    _, data = line.expect(lambda i: i[0].startswith(f"BMSG {topic} 3 "), "BMSG 3")
    check(data == b"\x00\xffbin", f"tcp binary {data!r}")

    msgs = [got.get(timeout=WAIT) for _ in range(3)]
    check(msgs[0][0]["data"] == "hello from python" and msgs[0][1] == f"1:{topic}", f"text {msgs[0]}")
    check(msgs[1][0]["data"] == {"n": 2}, f"json {msgs[1]}")
    check(msgs[2][0]["data"] == b"\x00\xffbin", f"binary {msgs[2]}")
    print(f"ok: {label}: python-socketio publishes text, JSON, binary (acked offsets); tcp receives them")

    line.send(f"PUB {topic} from tcp\r\n".encode())
    line.send(f"BPUB {topic} 2\r\n".encode() + b"\x01\xfe\r\n")
    msg, _ = got.get(timeout=WAIT)
    check(msg["data"] == "from tcp" and msg["offset"] == 4, f"from tcp {msg}")
    msg, _ = got.get(timeout=WAIT)
    check(msg["data"] == b"\x01\xfe" and msg["offset"] == 5, f"binary from tcp {msg}")
    print(f"ok: {label}: python-socketio receives tcp text and binary")

    if transports is None:
        for _ in range(50):
            if sio.transport() == "websocket":
                break
            time.sleep(0.05)
    expected = transports[0] if transports else "websocket"
    check(sio.transport() == expected, f"transport {sio.transport()} (expected {expected})")
    print(f"ok: {label}: transport {sio.transport()}")
    sio.disconnect()
    line.sock.close()


def main():
    base, tcp = sys.argv[1], sys.argv[2]
    run(base, tcp, ["polling"], "polling")
    run(base, tcp, None, "upgrade")
    os._exit(0)


if __name__ == "__main__":
    main()
