//! `tidings tap` as root against a live server: TCP handshakes and closes, a line-protocol
//! exchange, a WebSocket exchange (handshake, masked client frames, server frames), a STOMP
//! exchange and UDP datagrams, all decoded. Skipped, saying why, where raw sockets are not
//! allowed.
//!
//! STOMP is served by a tiny stand-in here (the broker is built on another branch): the tap
//! decodes STOMP from the bytes of whatever listens on its `--stomp` port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use tidings_testkit::{Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

/// Starts the tap (killed when dropped); `None` (the test is skipped) when raw sockets are
/// not allowed here.
fn start_tap(ports: &[(&str, u16)]) -> Option<Process> {
    let mut cmd = TIDINGS.command(&["tap", "--duration", "30"]);
    for (flag, port) in ports {
        cmd.arg(format!("--{flag}")).arg(port.to_string());
    }
    let mut tap = Process::spawn("tidings tap", cmd);
    // Its first stderr line says whether it captures (or it exits saying why not).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !tap.stderr().contains('\n') && tap.try_wait().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let first = tap.stderr().lines().next().unwrap_or_default().to_owned();
    if first.contains("capturing on") {
        return Some(tap);
    }
    thread::sleep(Duration::from_millis(100));
    let all = tap.stderr();
    if all.contains("CAP_NET_RAW") {
        eprintln!(
            "SKIPPED tap_shows_decoded_traffic: raw packet sockets are not allowed here:\n{all}"
        );
        return None;
    }
    panic!("tidings tap did not start:\n{all}");
}

/// A stand-in STOMP server: answers CONNECT with CONNECTED and a SEND with a RECEIPT.
fn fake_stomp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut frames = 0;
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.iter().position(|&b| b == 0) {
                let frame: Vec<u8> = buf.drain(..=end).collect();
                frames += 1;
                let reply: &[u8] = if frame.trim_ascii_start().starts_with(b"CONNECT") {
                    b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"
                } else {
                    b"RECEIPT\nreceipt-id:r1\n\n\0"
                };
                let _ = s.write_all(reply);
            }
            if frames >= 3 {
                break;
            }
        }
    });
    port
}

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn tap_shows_decoded_traffic() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED tap_shows_decoded_traffic: AF_PACKET is Linux only");
        return;
    }
    let server = TIDINGS.serve().http().tcp().udp().start();
    let (http, tcp, udp) = (server.addr("http"), server.addr("tcp"), server.addr("udp"));
    let stomp = fake_stomp();
    let Some(tap) = start_tap(&[
        ("http", port(http)),
        ("tcp", port(tcp)),
        ("udp", port(udp)),
        ("stomp", stomp),
    ]) else {
        return;
    };

    // Line protocol, as `nc` would.
    let mut line = TcpStream::connect(tcp).unwrap();
    line.write_all(b"SUB chat.lobby\r\nPUB chat.lobby hello-line\r\nQUIT\r\n")
        .unwrap();
    let mut sink = Vec::new();
    line.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = line.read_to_end(&mut sink);
    drop(line); // our FIN: the tap shows the close from both sides

    // WebSocket: handshake, a masked text frame, the server's answers, a close.
    let (mut ws, _) = tungstenite::connect(format!("ws://{http}/ws")).unwrap();
    let _hello = ws.read().unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"op":"publish","id":1,"topic":"chat.lobby","text":"hello-ws","ack":true}"#,
    ))
    .unwrap();
    let _ok = ws.read().unwrap();
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    drop(ws);

    // STOMP.
    let mut st = TcpStream::connect(("127.0.0.1", stomp)).unwrap();
    st.write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .unwrap();
    st.write_all(
        b"SEND\ndestination:/topic/chat.lobby\ncontent-length:11\nreceipt:r1\n\nhello-stomp\0",
    )
    .unwrap();
    st.write_all(b"DISCONNECT\n\n\0").unwrap();
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = st.read_to_end(&mut sink);
    drop(st);

    // UDP.
    let published = TIDINGS.run(&[
        "pub",
        "--server",
        &format!("udp://{udp}"),
        "chat.lobby",
        "hello-udp",
    ]);
    assert!(published.success(), "{}", published.stderr);

    let expected = [
        "> 127.0.0.1:PORT_TCP SYN",
        "< 127.0.0.1:PORT_TCP SYN-ACK",
        "ACK (connection established)",
        "line > SUB chat.lobby",
        "line > PUB chat.lobby \"hello-line\"",
        "line < MSG chat.lobby 1 \"hello-line\"",
        "line > QUIT",
        "http > GET /ws HTTP/1.1 [upgrade: websocket",
        "http < HTTP/1.1 101 Switching Protocols",
        "ws > text fin masked len=",
        "hello-ws",
        "ws < text fin len=",
        "ws > close fin masked",
        "stomp > CONNECT accept-version:1.2 host:/",
        "stomp < CONNECTED version:1.2",
        "stomp > SEND destination:/topic/chat.lobby content-length:11 receipt:r1 body \"hello-stomp\"",
        "stomp < RECEIPT receipt-id:r1",
        "udp 127.0.0.1:",
        "PUBLISH id=1 chat.lobby text \"hello-udp\"",
        "PUBLISHED id=1 offset=3",
        "> 127.0.0.1:PORT_TCP FIN",
        "< 127.0.0.1:PORT_TCP FIN",
        "closed",
    ]
    .map(|e| e.replace("PORT_TCP", &port(tcp).to_string()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = tap.stdout();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !out.contains(e.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tap's output lacks {missing:?}\n{out}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!tap.stdout().contains("could not decode"));
}
