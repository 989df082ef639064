//! The benchmark's own `redis-server` (from PATH): on a free port, in a temporary directory,
//! no persistence, pinned like the servers; emptied (`FLUSHALL`) between measurements and
//! stopped by its PID when dropped.

use crate::peer::{pinned, Peer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct RedisServer {
    pub(crate) process: Peer,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub(crate) fn start(cpu: Option<usize>) -> Result<RedisServer, String> {
        // redis-server cannot take port 0: take a free port from the kernel, release it, pass it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir =
            std::env::temp_dir().join(format!("tidings-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir);
        let child = pinned(cmd, cpu)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        let server = RedisServer {
            process: Peer::adopt(child, format!("127.0.0.1:{port}")),
            port,
            dir,
        };
        let until = Instant::now() + START_TIMEOUT;
        while server.command("PING") != Ok("+PONG".into()) {
            if Instant::now() > until {
                return Err("redis-server did not answer PING in 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Empties every database, so each measurement starts from the same Redis.
    pub(crate) fn flush(&self) -> Result<(), String> {
        match self.command("FLUSHALL")?.as_str() {
            "+OK" => Ok(()),
            other => Err(format!("FLUSHALL answered {other:?}")),
        }
    }

    /// Sends one inline command and returns the first line of the reply.
    fn command(&self, command: &str) -> Result<String, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{command}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") && reply.len() < 512 {
            s.read_exact(&mut byte).map_err(|e| e.to_string())?;
            reply.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // `process` is killed by PID when its field drops, after this; the folder holds no
        // data (no persistence), so removing it now is safe.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
