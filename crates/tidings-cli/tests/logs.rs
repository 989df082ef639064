//! Logs a person can follow: with `TIDINGS_LOG=debug` a connection's span names its listener,
//! peer, protocol, session and user, and its last event says why it ended.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_connection_span_shows_who_and_why_it_ended() {
    let config = std::env::temp_dir().join(format!("tidings-logs-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[[hub.auth.users]]\nname = \"alice\"\npassword = \"pw\"\n\
         publish = [\">\"]\nsubscribe = [\">\"]\n",
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--http", "off", "--udp", "off", "--stomp", "off"])
        .args(["--tcp", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("TIDINGS_LOG", "tidings_server=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidings serve");
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("tidings: tcp listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let mut client = TcpStream::connect(&addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = client.local_addr().unwrap();
    client.write_all(b"AUTH alice pw\r\nQUIT\r\n").unwrap();
    let mut replies = String::new();
    let _ = client.read_to_string(&mut replies); // the server closes after BYE
    assert!(replies.contains("+OK BYE"), "{replies}");
    // The end of the connection is logged before its task finishes; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    let _ = server.kill();
    let mut logs = String::new();
    server.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let _ = server.wait();
    let _ = std::fs::remove_file(&config);

    let ended = logs
        .lines()
        .find(|l| l.contains("connection ended"))
        .unwrap_or_else(|| panic!("no 'connection ended' event in:\n{logs}"));
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
