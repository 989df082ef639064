//! A `redis-server` of the test's own (Debian's, installed by
//! `scripts/install-test-deps.sh`) on a free port in a temporary directory, stopped by PID
//! and its directory removed when dropped. Shared by every test of the Redis engine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Process;

const WAIT: Duration = Duration::from_secs(5);

/// A redis-server of our own; killed (by PID, through `Process`) and its directory removed
/// on drop.
pub struct Redis {
    process: Option<Process>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// None (and a note on stderr) when redis-server is not installed.
    pub fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "SKIPPED: redis-server is not installed (scripts/install-test-deps.sh installs it)"
            );
            return None;
        }
        // Redis cannot take port 0: take a free port from the kernel, release it, pass it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("tidings-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut redis = Redis {
            process: None,
            port,
            dir,
        };
        redis.run();
        Some(redis)
    }

    /// Starts redis-server on `self.port` (again, after `stop`) and waits until it answers.
    pub fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        self.process = Some(Process::spawn("redis-server", cmd));
        let until = Instant::now() + WAIT;
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() {
                    assert_eq!(&buf, b"+PONG\r\n");
                    return;
                }
            }
            assert!(Instant::now() < until, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        self.process = None; // killed and waited for by PID
    }

    /// A command to this redis-server, as redis-cli would send it: the reply's first line
    /// (`+PONG`, `:1`, `$-1`, `*3`), or for a bulk string the string itself.
    pub fn command(&self, words: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(WAIT)).expect("a read timeout");
        let mut cmd = format!("*{}\r\n", words.len());
        for w in words {
            cmd.push_str(&format!("${}\r\n{w}\r\n", w.len()));
        }
        s.write_all(cmd.as_bytes()).expect("send to redis");
        let mut reader = BufReader::new(s);
        let mut reply = String::new();
        reader.read_line(&mut reply).expect("redis's reply");
        if reply.starts_with('$') && !reply.starts_with("$-1") {
            reply.clear();
            reader.read_line(&mut reply).expect("redis's bulk string");
        }
        reply.trim_end().to_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
