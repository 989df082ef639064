//! Logs a person can follow: with `TIDINGS_LOG=debug` a connection's span names its listener,
//! peer, protocol, session and user, and its last event says why it ended.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tidings_testkit::Tidings;

const ALICE: &str = "[[hub.auth.users]]\nname = \"alice\"\npassword = \"pw\"\n\
                     publish = [\">\"]\nsubscribe = [\">\"]\n";

#[test]
fn a_connection_span_shows_who_and_why_it_ended() {
    let server = Tidings(env!("CARGO_BIN_EXE_tidings"))
        .serve()
        .tcp()
        .config(ALICE)
        .env("TIDINGS_LOG", "tidings_server=debug")
        .start();
    let mut client = TcpStream::connect(server.socket_addr("tcp")).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = client.local_addr().unwrap();
    client.write_all(b"AUTH alice pw\r\nQUIT\r\n").unwrap();
    let mut replies = String::new();
    let _ = client.read_to_string(&mut replies); // the server closes after BYE
    assert!(replies.contains("+OK BYE"), "{replies}");

    // The end is logged as the connection's task finishes, just after the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended = loop {
        let logs = server.stderr();
        if let Some(line) = logs.lines().find(|l| l.contains("connection ended")) {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no 'connection ended' in 5 s:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for part in [
        "listener=\"tcp\"".to_owned(),
        format!("peer={local}"),
        "protocol=\"line\"".to_owned(),
        "session=".to_owned(),
        "user=\"alice\"".to_owned(),
        "reason=the client said goodbye".to_owned(),
    ] {
        assert!(ended.contains(&part), "{part:?} missing in {ended:?}");
    }
    assert!(
        !ended.contains('\u{1b}'),
        "no terminal colours when stderr is not a terminal: {ended:?}"
    );
}
