//! The servers under test: tidings (its release binary, STOMP listener only) and RabbitMQ
//! (started and stopped by `bench/peers/rabbitmq.sh`). Both stop when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A server to measure.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
}

pub(crate) struct Tidings {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Tidings {
    pub(crate) fn start(bin: &Path) -> Result<Tidings, String> {
        let mut child = Command::new(bin)
            .args(["serve", "--http", "off", "--tcp", "off", "--udp", "off"])
            .args(["--stomp", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}); build it with `cargo build --release -p tidings-cli`",
                    bin.display()
                )
            })?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("tidings: stomp listening on ") {
                        break a.trim().parse().map_err(|e| format!("{line}: {e}"))?;
                    }
                }
                _ => {
                    let _ = child.kill();
                    return Err("tidings exited before listening".into());
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Tidings { child, addr })
    }
}

impl Drop for Tidings {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct RabbitMq {
    script: PathBuf,
    pub(crate) addr: SocketAddr,
}

impl RabbitMq {
    pub(crate) fn start() -> Result<RabbitMq, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/rabbitmq.sh");
        eprintln!("starting RabbitMQ ({} start) ...", script.display());
        let out = Command::new(&script)
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        eprint!("{text}");
        let addr = text
            .lines()
            .find_map(|l| l.strip_prefix("rabbitmq: stomp listening on "))
            .and_then(|a| a.trim().parse().ok());
        match addr {
            Some(addr) if out.status.success() => Ok(RabbitMq { script, addr }),
            _ => {
                let _ = Command::new(&script).arg("stop").status();
                Err("bench/peers/rabbitmq.sh start failed".into())
            }
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .stdout(Stdio::null())
            .status();
    }
}
