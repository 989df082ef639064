//! `tidings pub --udp` and `tidings sub --udp` against the real binary.

use std::time::{Duration, Instant};

use tidings_testkit::{Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

#[test]
fn pub_and_sub_over_udp() {
    let server = TIDINGS.serve().tcp().udp().start();
    let udp = format!("udp://{}", server.addr("udp"));

    let published = TIDINGS.run(&["pub", "--server", &udp, "chat.lobby", "hello"]);
    assert!(published.success(), "{}", published.stderr);
    assert_eq!(published.stdout.trim(), "chat.lobby 1");
    let refused = TIDINGS.run(&["pub", "--udp", "--server", "tcp://127.0.0.1:1", "t", "x"]);
    let err = &refused.stderr;
    assert!(
        !refused.success() && err.contains("--udp needs a udp:// server"),
        "{err}"
    );

    // A subscriber that exits after two messages; publish until it has them (datagrams sent
    // before its subscription is active are simply not for it).
    let mut sub = Process::spawn(
        "tidings sub",
        TIDINGS.command(&["sub", "--udp", "--server", &udp, "-n", "2", "chat.*"]),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    let status = loop {
        if let Some(status) = sub.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "sub got: {}", sub.stdout());
        n += 1;
        let published = TIDINGS.run(&[
            "pub",
            "--udp",
            "--server",
            &udp,
            "chat.lobby",
            &format!("hi {n}"),
        ]);
        assert!(published.success(), "{}", published.stderr);
        std::thread::sleep(Duration::from_millis(100));
    };
    sub.settle();
    assert!(status.success(), "{}", sub.stderr());
    let out = sub.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in lines {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        assert_eq!(parts[0], "chat.lobby", "{line}");
        assert!(parts[1].parse::<u64>().unwrap() >= 2, "{line}");
        assert!(parts[2].starts_with("hi "), "{line}");
    }
}
