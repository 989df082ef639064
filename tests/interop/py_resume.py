#!/usr/bin/env python3
"""Interop: resuming a subscription after a disconnect (Python `websockets` client).

    py_resume.py ws://127.0.0.1:PORT/ws [--window N]

N is the server's per-topic history size (`[hub.history] max_messages`, default here 5: the
Rust harness starts the server with that config). Scenarios:
  1. subscribe, receive 3 messages, disconnect; 4 more are published meanwhile (by a second
     connection); reconnect with since=3 + epoch: exactly offsets 4..7 arrive, then live ones.
  2. resuming from an offset older than the history window -> error resume_unavailable;
     resuming from exactly the oldest kept offset still works.
  3. resuming with a wrong epoch -> error resume_unavailable.
  4. resuming with the topic on the upgrade URL (/ws?topic=..&since=..&epoch=..): hello, the
     subscription's ok (id "url.0") and the missed messages come with no frame sent; two
     topics each resumed from its own since on one URL; a bad
     since= is a 400 before any upgrade; a refused subscription is an error frame with id
     "url.0" and the connection stays.
Prints `ok: <scenario>` lines; exits 1 with `FAIL: ...` otherwise (20 s cap).
"""

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tidings_ws import WAIT, Client, check, ok, run, unique


async def collect(c, topic, want, what):
    got = []
    m = None
    for off in want:
        m = await c.message(topic, what=f"{what}: offset {off} (got so far {got})")
        got.append(m.get("offset"))
        check(m.get("offset") == off, f"{what}: expected offset {off}, got {m.obj} (so far {got})")
        check(m.get("data") == {"i": off}, f"{what}: payload of offset {off} should be {{'i': {off}}}: {m.obj}")
    return m


async def main(url, args):
    window = 5
    if "--window" in args:
        window = int(args[args.index("--window") + 1])
    check(window >= 4, "--window must be at least 4")

    pub = await Client.open(url, "publisher")
    await pub.hello()

    # --- 1. resume after a disconnect --------------------------------------------------
    topic = unique("interop.resume")
    sub = await Client.open(url, "subscriber")
    await sub.hello()
    r = await sub.subscribe(topic)
    check(r.get("type") == "ok", f"subscribe failed: {r}")
    for i in range(1, 4):
        await pub.publish(topic, data={"i": i})
    last = await collect(sub, topic, [1, 2, 3], "live before disconnect")
    # What a real client keeps to resume: the epoch and offset of the last message it saw.
    epoch = last.get("epoch")
    check(isinstance(epoch, str) and epoch, f"message has no epoch: {last}")
    check(r.get("epoch") in (None, epoch), f"subscribe ok epoch {r.get('epoch')} != message epoch {epoch}")
    await sub.close()
    ok("received offsets 1..3, disconnected")

    missed = list(range(4, 4 + min(4, window - 1)))  # stays inside the history window
    for off in missed:
        a = await pub.publish(topic, data={"i": off})
        check(a.get("offset") == off, f"publish while away should get offset {off}: {a}")

    sub = await Client.open(url, "resumer")
    await sub.hello()
    r = await sub.subscribe(topic, since=3, epoch=epoch)
    check(r.get("type") == "ok", f"resume with since=3 epoch={epoch} failed: {r}")
    check(r.get("epoch") == epoch, f"epoch changed across the resume: {r}")
    if "replayed" in r.obj:
        check(r.get("replayed") == len(missed), f"subscribe ok says replayed={r.get('replayed')}, expected {len(missed)}: {r}")
    await collect(sub, topic, missed, "replay after resume")
    await sub.quiet(lambda f: f.get("type") == "message" and f.get("topic") == topic,
                    f"extra messages after the replay of {missed}")
    nxt = missed[-1] + 1
    a = await pub.publish(topic, data={"i": nxt})
    check(a.get("offset") == nxt, f"live publish after resume should get offset {nxt}: {a}")
    m = await sub.message(topic, offset=nxt)
    check(m.get("data") == {"i": nxt}, f"live message payload wrong: {m}")
    await sub.quiet(lambda f: f.get("type") == "message" and f.get("topic") == topic, "duplicate live message")
    ok(f"resume since=3 replayed exactly offsets {missed} then live offset {nxt}")

    # replay carries the original payloads
    sub2 = await Client.open(url, "resumer2")
    await sub2.hello()
    r = await sub2.subscribe(topic, since=nxt - 2, epoch=epoch)
    check(r.get("type") == "ok", f"second resume failed: {r}")
    for off in (nxt - 1, nxt):
        m = await sub2.message(topic, offset=off)
        check(m.get("data") == {"i": off}, f"replayed payload of offset {off} wrong: {m}")
    await sub2.close()
    ok("replayed messages carry their original payloads")

    # resuming when nothing was missed: no replay, live continues
    sub3 = await Client.open(url, "uptodate")
    await sub3.hello()
    r = await sub3.subscribe(topic, since=nxt, epoch=epoch)
    check(r.get("type") == "ok", f"resume at the newest offset failed: {r}")
    await sub3.quiet(lambda f: f.get("type") == "message", "replay when nothing was missed")
    await sub3.close()
    ok("resume at the newest offset replays nothing")
    await sub.close()

    # --- 2. resume from before the history window ----------------------------------------
    topic2 = unique("interop.window")
    total = window + 5
    for i in range(1, total + 1):
        await pub.publish(topic2, data={"i": i})
    earliest = total - window + 1  # the oldest offset still kept
    c = await Client.open(url, "too-old")
    await c.hello()
    r = await c.subscribe(topic2, since=1)
    check(r.get("type") == "error" and r.get("code") == "resume_unavailable",
          f"resume since=1 with history {earliest}..{total} should fail with resume_unavailable, got {r}")
    if "earliest" in r.obj:
        check(r.get("earliest") == earliest, f"error says earliest={r.get('earliest')}, expected {earliest}: {r}")
    await c.quiet(lambda f: f.get("type") == "message", "messages after a refused resume")
    ok(f"resume older than the window (since=1, kept {earliest}..{total}) -> resume_unavailable")

    # the connection stays usable and the boundary works: since=earliest-1 needs only kept ones
    r = await c.subscribe(topic2, since=earliest - 1)
    check(r.get("type") == "ok", f"resume since={earliest - 1} (first missed = oldest kept) should work: {r}")
    await collect(c, topic2, list(range(earliest, total + 1)), "replay at the window boundary")
    await c.quiet(lambda f: f.get("type") == "message", "extra messages at the window boundary")
    await c.close()
    ok(f"resume since={earliest - 1} replays exactly {earliest}..{total}")

    # --- 3. wrong epoch -------------------------------------------------------------------
    c = await Client.open(url, "wrong-epoch")
    await c.hello()
    bogus = "0" if epoch != "0" else "1"
    r = await c.subscribe(topic, since=2, epoch=bogus)
    check(r.get("type") == "error" and r.get("code") == "resume_unavailable",
          f"resume with a wrong epoch ({bogus!r}, real {epoch!r}) should fail with resume_unavailable, got {r}")
    await c.close()
    ok("resume with a wrong epoch -> resume_unavailable")

    # --- 4. resume with the topic on the upgrade URL --------------------------------------
    topic4 = unique("interop.url")
    for i in range(1, 6):
        await pub.publish(topic4, data={"i": i})
    first = await Client.open(url + f"?topic={topic4}", "url-live")
    await first.hello()
    r = await first.reply("url.0", "the URL subscription")
    check(r.get("type") == "ok" and r.get("topic") == topic4 and r.get("offset") == 5,
          f"the URL's subscription should answer ok at offset 5: {r}")
    epoch4 = r.get("epoch")
    await first.close()
    c = await Client.open(url + f"?topic={topic4}&since=2&epoch={epoch4}", "url-resume")
    await c.hello()
    r = await c.reply("url.0", "the URL resume")
    check(r.get("type") == "ok" and r.get("replayed") == 3, f"URL resume since=2 should replay 3: {r}")
    await collect(c, topic4, [3, 4, 5], "replay of the URL resume")
    a = await pub.publish(topic4, data={"i": 6})
    check(a.get("offset") == 6, f"live publish after the URL resume: {a}")
    await collect(c, topic4, [6], "live after the URL resume")
    await c.quiet(lambda f: f.get("type") == "message", "duplicates after the URL resume")
    await c.close()
    ok("resume on the upgrade URL replayed 3..5 with no frame sent, then live 6")

    other = unique("interop.url2")
    for i in range(1, 4):
        a = await pub.publish(other, data={"i": i})
    epoch_other = a.get("epoch")  # each topic has its own epoch
    both = await Client.open(url + f"?topic={topic4}&since=5&epoch={epoch4}&topic={other}&since=1&epoch={epoch_other}",
                             "url-two")
    await both.hello()
    r0 = await both.reply("url.0", "the first URL topic")
    r1 = await both.reply("url.1", "the second URL topic")
    check(r0.get("topic") == topic4 and r0.get("replayed") == 1, f"first URL topic should replay offset 6: {r0}")
    check(r1.get("topic") == other and r1.get("replayed") == 2, f"second URL topic should replay 2..3: {r1}")
    await collect(both, topic4, [6], "replay of the first URL topic")
    await collect(both, other, [2, 3], "replay of the second URL topic")
    await both.close()
    ok("one URL resumed two topics, each from its own since")

    try:
        bad = await connect(url + f"?topic={topic4}&since=x", open_timeout=WAIT)
        await bad.close()
        check(False, "since=x on the URL should be refused before the upgrade")
    except InvalidStatus as e:
        check(e.response.status_code == 400, f"since=x should be a 400: {e.response.status_code}")
        check(b"not an offset" in e.response.body, f"the 400 should say why: {e.response.body!r}")
    c = await Client.open(url + f"?topic={topic4}&since=1&epoch=wrong", "url-refused")
    await c.hello()
    r = await c.reply("url.0", "the refused URL resume")
    check(r.get("type") == "error" and r.get("code") == "resume_unavailable",
          f"a wrong epoch on the URL should be resume_unavailable: {r}")
    r = await c.subscribe(topic4)
    check(r.get("type") == "ok", f"the connection should stay usable after a refused URL subscription: {r}")
    await c.close()
    ok("a bad since= on the URL is a 400; a refused URL subscription is an error frame, the connection stays")

    await pub.close()


if __name__ == "__main__":
    run(main)
