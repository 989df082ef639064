//! `tidings pub --udp` and `tidings sub --udp` against the real binary.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{drain, run, Served};

#[test]
fn pub_and_sub_over_udp() {
    let server = Served::start(
        &[
            "--http",
            "off",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--stomp",
            "off",
        ],
        &["tcp", "udp"],
    );
    let udp = format!("udp://{}", server.addr("udp"));

    let (ok, out, err) = run(&["pub", "--server", &udp, "chat.lobby", "hello"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "chat.lobby 1");
    let (ok, _, err) = run(&["pub", "--udp", "--server", "tcp://127.0.0.1:1", "t", "x"]);
    assert!(!ok && err.contains("--udp needs a udp:// server"), "{err}");

    // A subscriber that exits after two messages; publish until it has them (datagrams sent
    // before its subscription is active are simply not for it).
    let mut sub = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["sub", "--udp", "--server", &udp, "-n", "2", "chat.*"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (
        Arc::new(Mutex::new(String::new())),
        Arc::new(Mutex::new(String::new())),
    );
    drain(sub.stdout.take().unwrap(), out.clone());
    drain(sub.stderr.take().unwrap(), err.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sub got: {}",
            out.lock().unwrap()
        );
        n += 1;
        let (ok, _, e) = run(&[
            "pub",
            "--udp",
            "--server",
            &udp,
            "chat.lobby",
            &format!("hi {n}"),
        ]);
        assert!(ok, "{e}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(status.success(), "{}", err.lock().unwrap());
    let out = out.lock().unwrap().clone();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in lines {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        assert_eq!(parts[0], "chat.lobby", "{line}");
        assert!(parts[1].parse::<u64>().unwrap() >= 2, "{line}");
        assert!(parts[2].starts_with("hi "), "{line}");
    }
}
