//! The demos end to end, with the real binary: the chat and ticker pages in headless Chromium
//! (tests/interop/demo_browser.mjs: pages on every transport, presence, history, resume after
//! a lost connection, gaps told plainly, a TCP line client), `tidings chat` as a real process over TCP and
//! WebSocket, and the ticker feed (`tidings demo ticker`, `tidings serve --demo-ticker`).
//!
//! The browser tests need scripts/install-test-deps.sh (node packages, Debian chromium); they
//! fail, never skip, when those are missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tidings_testkit::{interop, Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

/// How long one expected line may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long a browser script may run (each caps itself at 150 s).
const SCRIPT_LIMIT: Duration = Duration::from_secs(170);

/// `tidings serve` with HTTP and TCP on free ports; UDP and STOMP-over-TCP off.
fn serve() -> tidings_testkit::Serve {
    TIDINGS.serve().http().tcp()
}

/// Runs `node demo_browser.mjs MODE http://HTTP TCP` and asserts it passed.
fn browser_script(mode: &str, server: &Process) {
    let mut cmd = interop::node(&["playwright-core"]);
    interop::chromium();
    cmd.arg("demo_browser.mjs")
        .arg(mode)
        .arg(format!("http://{}", server.addr("http")))
        .arg(server.addr("tcp"));
    interop::run(cmd, &format!("demo_browser.mjs {mode}"), SCRIPT_LIMIT).assert_passed("ok: ");
}

#[test]
fn chat_pages_on_every_transport_exchange_messages_and_presence() {
    let server = serve().start();
    browser_script("chat", &server);
}

#[test]
fn chat_page_that_lost_its_connection_shows_what_it_missed() {
    let server = serve().start();
    browser_script("resume", &server);
}

#[test]
fn chat_page_is_told_when_missed_messages_are_gone() {
    // History of 3 messages per topic: a page away for 6 cannot get them all back.
    let server = serve().config("[hub.history]\nmax_messages = 3\n").start();
    browser_script("gap", &server);
}

#[test]
fn ticker_page_shows_the_in_process_feed() {
    let server = serve().arg("--demo-ticker").start();
    browser_script("ticker", &server);
}

// ---------------------------------------------------------------------------------------
// `tidings chat` as a real process
// ---------------------------------------------------------------------------------------

/// A running `tidings chat` (killed on drop): we read its stdout lines and type on its stdin.
struct Chat {
    process: Process,
    seen: Vec<String>,
}

impl Chat {
    fn start(room: &str, nick: &str, server: &str) -> Chat {
        let args = [
            "chat",
            room,
            "--nick",
            nick,
            "--server",
            server,
            "--history",
            "2",
        ];
        Chat {
            process: Process::spawn_with_stdin("tidings chat", TIDINGS.command(&args)),
            seen: Vec::new(),
        }
    }

    /// Waits for a line satisfying `pred`; returns it.
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.process.next_line(left) {
                Some(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                None => panic!(
                    "tidings chat never printed {what}; it printed {:?}\nstderr: {}",
                    self.seen,
                    self.process.stderr()
                ),
            }
        }
    }

    fn type_line(&mut self, text: &str) {
        let stdin = self.process.stdin().expect("stdin open");
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (Ctrl-D) and waits for the process to leave.
    fn leave(mut self) {
        self.process.close_stdin();
        let status = self.process.wait_timeout(WAIT);
        let status = status.expect("tidings chat did not exit on EOF");
        assert!(status.success());
    }
}

/// A line-protocol client, as `nc`.
struct Nc {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Nc {
    fn connect(addr: &str) -> Nc {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut nc = Nc {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        nc.expect("the greeting", |l| l.starts_with("+OK tidings"));
        nc
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(n) if n > 0 => {
                    let line = line.trim_end().to_owned();
                    if pred(&line) {
                        return line;
                    }
                }
                other => panic!("nc: no {what} ({other:?})"),
            }
        }
    }
}

/// History on join, messages both ways with a line client, presence of the line client, and
/// a second `tidings chat` over the other transport.
fn terminal_chat(server: &Process, url_of: impl Fn(&Process) -> String) {
    let room = "term";
    let topic = "chat.term";
    let mut nc = Nc::connect(server.addr("tcp"));
    for text in ["one", "two", "three"] {
        nc.send(&format!("PUB {topic} {text}"));
        nc.expect("+OK PUB", |l| l.starts_with("+OK PUB"));
    }

    let mut ann = Chat::start(room, "ann", &url_of(server));
    ann.expect("the join banner", |l| {
        l.starts_with("-- #term") && l.contains("2 earlier messages")
    });
    ann.expect("history line two", |l| l == "(anonymous): two");
    ann.expect("history line three", |l| l == "(anonymous): three");
    assert!(
        !ann.seen.iter().any(|l| l.ends_with(": one")),
        "--history 2 showed more: {:?}",
        ann.seen
    );

    nc.send(&format!("SUB {topic}"));
    ann.expect("nc's join", |l| {
        l.starts_with("* anonymous c") && l.ends_with(" joined")
    });
    ann.type_line("hello from the terminal");
    nc.expect("ann's message", |l| {
        l.starts_with(&format!("MSG {topic} 4 "))
            && l.ends_with(r#"{"nick":"ann","text":"hello from the terminal"}"#)
    });
    ann.expect("its own message", |l| l == "ann: hello from the terminal");
    nc.send(&format!(
        r#"PUB {topic} {{"nick":"bob","text":"json from nc"}}"#
    ));
    ann.expect("nc's JSON message", |l| l == "bob: json from nc");

    let mut cy = Chat::start(room, "cy", &url_of(server));
    cy.expect("the join banner", |l| l.starts_with("-- #term"));
    ann.expect("cy's join", |l| l == "* cy joined");
    cy.type_line("hi ann");
    ann.expect("cy's message", |l| l == "cy: hi ann");
    cy.leave();
    ann.expect("cy's leave", |l| l == "* cy left");
    nc.send("QUIT");
    ann.expect("nc's leave", |l| {
        l.starts_with("* anonymous c") && l.ends_with(" left")
    });
    ann.leave();
}

#[test]
fn terminal_chat_over_tcp() {
    let server = serve().start();
    terminal_chat(&server, |s| s.addr("tcp").to_owned());
}

#[test]
fn terminal_chat_over_websocket() {
    let server = serve().start();
    terminal_chat(&server, |s| format!("ws://{}/ws", s.addr("http")));
}

/// `tidings demo ticker` publishes JSON prices on prices.<SYMBOL>, no faster than asked.
#[test]
fn demo_ticker_command_publishes_prices() {
    let server = serve().start();
    let mut nc = Nc::connect(server.addr("tcp"));
    nc.send("SUB prices.>");
    nc.expect("+OK SUB", |l| l.starts_with("+OK SUB prices.>"));
    let url = format!("ws://{}/ws", server.addr("http"));
    let ticker = TIDINGS.run(&[
        "demo",
        "ticker",
        "--server",
        &url,
        "--rate",
        "100",
        "--seconds",
        "2",
    ]);
    assert!(
        ticker.success(),
        "tidings demo ticker failed: {}",
        ticker.stderr
    );
    nc.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut text = String::new();
    let _ = nc.reader.read_to_string(&mut text);
    let prices: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("MSG prices."))
        .collect();
    // Not a timing test: it published, and never faster than asked (100/s for 2 s).
    assert!(
        (10..=210).contains(&prices.len()),
        "{} price messages in 2 s at 100/s",
        prices.len()
    );
    for line in &prices {
        let mut parts = line.splitn(4, ' ');
        let (_, topic, _, payload) = (
            parts.next(),
            parts.next().unwrap(),
            parts.next(),
            parts.next().unwrap(),
        );
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(format!("prices.{}", v["symbol"].as_str().unwrap()), topic);
        assert!(v["price"].as_f64().unwrap() > 0.0, "{line}");
    }
}
