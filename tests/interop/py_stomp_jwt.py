#!/usr/bin/env python3
"""stomp.py (the real third-party STOMP client) with signed tokens, over TCP.

    py_stomp_jwt.py HOST:STOMP_PORT TOKEN BAD_TOKEN SECRET

TOKEN may publish to chat.* and subscribe within chat.>; BAD_TOKEN is wrongly signed; the
token that expires in 2 s is TOKEN's claims signed again with SECRET (HS256) just before it is
used, so a slow start of the scenarios before it cannot expire it early. Scenarios (each prints `ok: <name>`): a CONNECT with
`Authorization: Bearer` and one with `passcode` alone work with the token's rights (a message
round trip; a subscription outside them is an ERROR), a bad token is an ERROR naming its kind,
and an expiring token ends the connection with `ERROR message:token expired`.
"""

import base64
import hashlib
import hmac
import json
import queue
import sys
import time

try:
    import stomp
except ImportError as e:  # pragma: no cover - reported as a clear failure
    sys.stderr.write(f"error: {e}: run scripts/install-test-deps.sh\n")
    sys.exit(3)

WAIT = 6.0


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Inbox(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def get(self, q, what):
        try:
            return q.get(timeout=WAIT)
        except queue.Empty:
            raise Failure(f"no {what} within {WAIT} s")


def connect(addr, headers, wait=True):
    host, port = addr.rsplit(":", 1)
    conn = stomp.Connection12([(host, int(port))], auto_decode=True, reconnect_attempts_max=1)
    inbox = Inbox()
    conn.set_listener("inbox", inbox)
    conn.connect(headers=headers, wait=wait)
    return conn, inbox


def main():
    addr, token, bad, secret = sys.argv[1:5]
    for name, headers in [
        ("Authorization: Bearer", {"Authorization": f"Bearer {token}"}),
        ("passcode alone", {"passcode": token}),
    ]:
        conn, inbox = connect(addr, headers)
        conn.subscribe("/topic/chat.lobby", id="s1")
        time.sleep(0.2)
        conn.send("/topic/chat.lobby", "over stomp.py")
        m = inbox.get(inbox.messages, "the message")
        check(m.body == "over stomp.py", f"body {m.body!r}")
        conn.subscribe("/topic/news.x", id="s2")
        e = inbox.get(inbox.errors, "the ERROR for news.x")
        check("may not subscribe" in e.headers.get("message", ""), f"news.x: {e.headers}")
        conn.disconnect()
        print(f"ok: stomp.py {name}: the token's rights", flush=True)

    conn, inbox = connect(addr, {"Authorization": f"Bearer {bad}"}, wait=False)
    e = inbox.get(inbox.errors, "the ERROR for a bad token")
    check("bad signature" in e.body, f"bad token: {e.headers} {e.body!r}")
    print("ok: stomp.py: a wrongly signed token is an ERROR saying so", flush=True)

    short = reissue(token, secret, 2)
    conn, inbox = connect(addr, {"Authorization": f"Bearer {short}"})
    e = inbox.get(inbox.errors, "the expiry ERROR")
    check(e.headers.get("message") == "token expired", f"expiry: {e.headers}")
    print("ok: stomp.py: expiry ends the connection with ERROR token expired", flush=True)
    print("ok: all stomp.py token scenarios", flush=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reissue(token, secret, ttl_secs):
    """TOKEN's header and claims with `iat`/`exp` from now, signed with SECRET (HS256)."""
    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    now = int(time.time())
    claims["iat"] = now
    claims["exp"] = now + ttl_secs
    claims.pop("nbf", None)
    body = f"{header}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64url(sig)}"


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
