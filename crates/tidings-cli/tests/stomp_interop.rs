//! STOMP interoperability: the real `tidings` binary (every listener on 127.0.0.1 port 0)
//! against the real third-party STOMP clients in `tests/interop/`: stomp.py over TCP and over
//! WebSocket, `@stomp/stompjs` over WebSocket (node `ws`) and over TCP (`@stomp/tcp-wrapper`).
//!
//! Each program runs every scenario the broker promises (pub/sub with wildcards, queues in
//! each ack mode with redelivery and NACK, transactions, receipts, heart-beats, binary bodies,
//! and cross-protocol traffic with the TCP line protocol and native WebSocket clients) and
//! prints `ok: ...` per scenario. The packages are installed by
//! `scripts/install-test-deps.sh`; when they are missing these tests fail (they never skip).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long one client program may run (each caps itself at 40 s).
const PROGRAM_LIMIT: Duration = Duration::from_secs(60);

/// Short heart-beats so the programs can show a silent peer being dropped in a second.
const CONFIG: &str = "[stomp_broker]\nheart_beat_send_ms = 200\nheart_beat_receive_ms = 200\n";

/// A running `tidings serve`; killed (and its output shown if the test failed) on drop.
struct Server {
    child: Child,
    http: String,
    tcp: String,
    stomp: String,
    log: Arc<Mutex<String>>,
    config: PathBuf,
}

impl Server {
    fn start() -> Server {
        let config = std::env::temp_dir().join(format!(
            "tidings-stomp-interop-{}-{:?}.toml",
            std::process::id(),
            thread::current().id()
        ));
        std::fs::write(&config, CONFIG).expect("write temp config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
            .args(["--udp", "off", "--stomp", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the tidings binary");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<(String, String)>();
        let out = child.stdout.take().expect("piped stdout");
        let l = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((kind, addr)) = line
                    .strip_prefix("tidings: ")
                    .and_then(|r| r.split_once(" listening on "))
                {
                    let _ = tx.send((kind.to_owned(), addr.trim().to_owned()));
                }
                l.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let err = child.stderr.take().expect("piped stderr");
        let l = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut server = Server {
            child,
            http: String::new(),
            tcp: String::new(),
            stomp: String::new(),
            log,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.http.is_empty() || server.tcp.is_empty() || server.stomp.is_empty() {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok((kind, addr)) => match kind.as_str() {
                    "http" => server.http = addr,
                    "tcp" => server.tcp = addr,
                    "stomp" => server.stomp = addr,
                    _ => {}
                },
                Err(_) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        panic!("tidings serve exited with {status}\n{}", server.output());
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no listening lines in 15 s\n{}",
                        server.output()
                    );
                }
            }
        }
        server
    }

    fn output(&self) -> String {
        format!("--- server output ---\n{}", self.log.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        if thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (installs tests/interop/node_modules and tests/interop/.venv)";

/// The venv's python with stomp.py (or python3 with .pydeps); fails loudly without it.
fn python() -> Command {
    let dir = interop_dir();
    let venv = dir.join(".venv/bin/python");
    let make = || {
        if venv.exists() {
            return Command::new(&venv);
        }
        let mut cmd = Command::new("python3");
        let pydeps = dir.join(".pydeps");
        if pydeps.exists() {
            cmd.env("PYTHONPATH", pydeps);
        }
        cmd
    };
    match make().args(["-c", "import stomp, websockets"]).output() {
        Ok(out) if out.status.success() => make(),
        Ok(out) => panic!(
            "the Python packages `stomp.py` and `websockets` are not importable: {INSTALL_HINT}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run python3 ({e}): {INSTALL_HINT}"),
    }
}

/// `node` with @stomp/stompjs, @stomp/tcp-wrapper and ws in tests/interop/node_modules.
fn node() -> Command {
    for package in ["@stomp/stompjs", "@stomp/tcp-wrapper", "ws"] {
        let manifest = interop_dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.exists(),
            "node package `{package}` is missing: {INSTALL_HINT}"
        );
    }
    Command::new("node")
}

/// Runs a client program to completion within PROGRAM_LIMIT and asserts it succeeded and
/// printed its final `ok: all ...` line; its output is echoed (visible with `--nocapture`).
fn run_program(mut cmd: Command, what: &str, server: &Server) {
    cmd.current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let collect = |r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = BufReader::new(r).read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + PROGRAM_LIMIT;
    let status = loop {
        match child.try_wait().expect("wait for the client program") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    print!("{out}");
    let report = format!(
        "--- its stdout ---\n{out}--- its stderr ---\n{err}{}",
        server.output()
    );
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("{what} failed ({s})\n{report}"),
        None => panic!("{what} did not finish in {PROGRAM_LIMIT:?}\n{report}"),
    }
    assert!(
        out.contains("ok: all "),
        "{what} did not finish its scenarios\n{report}"
    );
}

fn python_program(transport: &str) {
    let server = Server::start();
    let target = match transport {
        "tcp" => server.stomp.clone(),
        _ => server.http.clone(),
    };
    let mut cmd = python();
    cmd.arg("py_stomp_client.py")
        .args([transport, &target, "--line", &server.tcp, "--ws"])
        .arg(format!("ws://{}/ws", server.http));
    run_program(cmd, &format!("py_stomp_client.py {transport}"), &server);
}

fn node_program(transport: &str) {
    let server = Server::start();
    let target = match transport {
        "tcp" => server.stomp.clone(),
        _ => format!("ws://{}/stomp", server.http),
    };
    let mut cmd = node();
    cmd.arg("node_stomp_client.mjs")
        .args([transport, &target, "--line", &server.tcp, "--native"])
        .arg(format!("ws://{}/ws", server.http));
    run_program(cmd, &format!("node_stomp_client.mjs {transport}"), &server);
}

#[test]
fn stomp_py_over_tcp() {
    python_program("tcp");
}

#[test]
fn stomp_py_over_websocket() {
    python_program("ws");
}

#[test]
fn stompjs_over_websocket() {
    node_program("ws");
}

#[test]
fn stompjs_over_tcp_wrapper() {
    node_program("tcp");
}
