//! The `tidings` binary as a child process, for the UDP and tap tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running `tidings serve`; killed on drop (its output shown if the test failed).
pub(crate) struct Served {
    child: Child,
    /// `kind -> address` from its `tidings: <kind> listening on <addr>` lines.
    pub(crate) addrs: HashMap<String, String>,
    output: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `tidings serve ARGS` and waits for one listening line per kind in `kinds`.
    pub(crate) fn start(args: &[&str], kinds: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidings serve");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let log = output.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((kind, addr)) = line
                    .strip_prefix("tidings: ")
                    .and_then(|r| r.split_once(" listening on "))
                {
                    let _ = tx.send((kind.to_owned(), addr.to_owned()));
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        drain(child.stderr.take().expect("stderr"), output.clone());
        let mut served = Served {
            child,
            addrs: HashMap::new(),
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while kinds.iter().any(|k| !served.addrs.contains_key(*k)) {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok((kind, addr)) => {
                    served.addrs.insert(kind, addr);
                }
                Err(_) => {
                    if let Ok(Some(status)) = served.child.try_wait() {
                        panic!("tidings serve exited with {status}\n{}", served.output());
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no listening lines\n{}",
                        served.output()
                    );
                }
            }
        }
        served
    }

    pub(crate) fn addr(&self, kind: &str) -> &str {
        &self.addrs[kind]
    }

    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- tidings serve output ---\n{}", self.output());
        }
    }
}

/// Copies a pipe into `log` until it closes, so the child never blocks on it.
pub(crate) fn drain(mut pipe: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// Runs `tidings ARGS` to completion (at most 20 s); returns (success, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidings");
    let (out, err) = (
        Arc::new(Mutex::new(String::new())),
        Arc::new(Mutex::new(String::new())),
    );
    drain(child.stdout.take().unwrap(), out.clone());
    drain(child.stderr.take().unwrap(), err.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(10));
    };
    // Let the drain threads catch the last bytes.
    thread::sleep(Duration::from_millis(50));
    let out = out.lock().unwrap().clone();
    let err = err.lock().unwrap().clone();
    (status.success(), out, err)
}
