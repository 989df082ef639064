#!/usr/bin/env python3
"""Interop: the real Python `websockets` client against tidings' native JSON protocol.

    py_websockets_client.py ws://127.0.0.1:PORT/ws

Prints `ok: <scenario>` per passed scenario; exits 1 with `FAIL: ...` otherwise (20 s cap).
"""

import asyncio
import json

from tidings_ws import Client, check, ok, run, unique


async def main(url, _args):
    c = await Client.open(url, "py")
    hello = await c.hello()
    ok(f"hello ({hello.get('server')}, client {hello.get('client')})")

    # ping -> pong with the same id
    rid = await c.request({"op": "ping"})
    await c.wait(lambda f: f.get("type") == "pong" and f.get("id") == rid, f"pong {rid}")
    ok("ping/pong")

    # subscribe, publish JSON data with ack, receive our own message with its offset
    topic = unique("interop.py")
    sub = await c.subscribe(topic)
    check(sub.get("type") == "ok", f"subscribe failed: {sub}")
    check(sub.get("offset") == 0, f"subscribe to a fresh topic should say offset 0: {sub}")
    # A topic with no message yet may have no epoch; the first message carries it.
    epoch = sub.get("epoch")
    ok("subscribe")

    data = {"hello": "world", "n": [1, 2.5, None, True], "nested": {"ü": "ñ ✓"}}
    ack = await c.publish(topic, data=data)
    check(ack.get("offset") == 1, f"first publish to a fresh topic should get offset 1: {ack}")
    check(ack.get("topic") in (None, topic), f"publish ack names another topic: {ack}")
    check(isinstance(ack.get("epoch"), str) and ack.get("epoch"), f"publish ack has no epoch: {ack}")
    check(epoch in (None, ack.get("epoch")), f"publish ack epoch {ack.get('epoch')} != subscribe epoch {epoch}")
    epoch = ack.get("epoch")
    m = await c.message(topic, offset=1)
    check(m.get("data") == data, f"data changed in transit: sent {data}, got {m.obj}")
    check(m.get("epoch") == epoch, f"message epoch {m.get('epoch')} != publish ack epoch {epoch}")
    ok("publish JSON data with ack, own message received with offset 1")

    ack = await c.publish(topic, text="plain text ✓")
    check(ack.get("offset") == 2, f"second publish should get offset 2: {ack}")
    m = await c.message(topic, offset=2)
    check(m.get("text") == "plain text ✓" and not m.binary, f"text payload changed in transit: {m}")
    ok("publish text with ack, offset 2")

    # binary publish: JSON header + "\n" + raw bytes; delivered back as a binary frame
    payload = bytes(range(256)) + b"\n\x00\r\n\xff end"
    rid = c.new_id()
    header = {"op": "publish", "id": rid, "topic": topic, "ack": True}
    await c.send_raw(json.dumps(header).encode() + b"\n" + payload)
    ack = await c.expect_ok(rid, "binary publish")
    check(ack.get("offset") == 3, f"binary publish should get offset 3: {ack}")
    m = await c.message(topic, offset=3)
    check(m.binary, f"binary payload should arrive as a binary frame, got {m}")
    check(m.payload == payload, f"binary payload changed in transit: {len(payload)} bytes sent, got {len(m.payload)}")
    ok("binary publish round trip as a binary frame")

    # broken JSON -> error frame, connection stays usable
    await c.send_raw('{"op":"publish","topic":')
    err = await c.wait(lambda f: f.get("type") == "error", "an error for broken JSON")
    check(err.get("code") == "bad_request", f"broken JSON should give code bad_request: {err}")
    await c.send_raw('{"op":"no-such-op","id":77}')
    err = await c.wait(lambda f: f.get("type") == "error", "an error for an unknown op")
    check(err.get("code") == "bad_request", f"unknown op should give code bad_request: {err}")
    ack = await c.publish(topic, data="still alive")
    check(ack.get("offset") == 4, f"publish after errors should get offset 4: {ack}")
    await c.message(topic, offset=4)
    ok("broken JSON gives error bad_request and the connection stays")

    # history and unsubscribe
    rid = await c.request({"op": "history", "topic": topic, "since": 0, "limit": 100})
    r = await c.reply(rid, "history")
    check(r.get("type") == "ok", f"history failed: {r}")
    ok("history request answered")
    rid = await c.request({"op": "unsubscribe", "topic": topic})
    await c.expect_ok(rid, "unsubscribe")
    # drain whatever history frames came back, then check nothing arrives after unsubscribe
    await asyncio.sleep(0.2)
    c.frames.clear()
    await c.publish(topic, data="after unsubscribe")
    await c.quiet(lambda f: f.get("type") == "message" and f.get("topic") == topic, "message after unsubscribe")
    ok("unsubscribe stops delivery")

    await c.close()
    ok("close")


if __name__ == "__main__":
    run(main)
