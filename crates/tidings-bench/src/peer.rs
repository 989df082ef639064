//! Server processes under test (tidings and the peers of bench/peers/): started (pinned to a
//! CPU with `taskset` when asked), their address read from the line they print on start, their
//! RSS and CPU time read from /proc, killed on drop.

use crate::stats;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(crate) use crate::stats::median;

/// A server process, killed on drop.
pub(crate) struct Peer {
    child: Child,
    pub(crate) addr: String,
}

/// A started server and the addresses its banner lines gave.
pub(crate) struct Started {
    pub(crate) peer: Peer,
    /// One per banner asked for, in the order asked.
    pub(crate) addrs: Vec<String>,
}

impl Peer {
    /// A process started elsewhere (one that prints no banner, like redis-server), killed on
    /// drop like the others.
    pub(crate) fn adopt(child: Child, addr: String) -> Peer {
        Peer { child, addr }
    }

    pub(crate) fn start(cmd: &mut Command, banner: &str) -> Result<Peer, String> {
        Peer::start_all(cmd, &[banner]).map(|s| s.peer)
    }

    /// Starts `cmd` and waits until it printed a line starting with each of `banners` (in
    /// any order); what follows each banner is that listener's address.
    pub(crate) fn start_all(cmd: &mut Command, banners: &[&str]) -> Result<Started, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufReader::new(out).lines();
        let mut addrs: Vec<Option<String>> = vec![None; banners.len()];
        while addrs.iter().any(Option::is_none) {
            match lines.next() {
                Some(Ok(line)) => {
                    for (i, banner) in banners.iter().enumerate() {
                        if let Some(addr) = line.strip_prefix(banner) {
                            addrs[i] = Some(addr.trim().to_owned());
                        }
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{cmd:?} ended without printing {banners:?}"));
                }
            }
        }
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let addrs: Vec<String> = addrs.into_iter().flatten().collect();
        Ok(Started {
            peer: Peer {
                child,
                addr: addrs[0].clone(),
            },
            addrs,
        })
    }

    /// The process id (`taskset` execs the server, so this is the server itself).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in MiB.
    pub(crate) fn rss_mib(&self) -> f64 {
        stats::rss_kib(self.pid()) as f64 / 1024.0
    }

    /// CPU seconds (user + system) used so far.
    pub(crate) fn cpu_secs(&self) -> f64 {
        stats::cpu_secs(self.pid()).unwrap_or(0.0)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cmd` run under `taskset -c cpu` when a CPU is given.
pub(crate) fn pinned(cmd: Command, cpu: Option<usize>) -> Command {
    let Some(cpu) = cpu else { return cmd };
    let mut t = Command::new("taskset");
    t.arg("-c")
        .arg(cpu.to_string())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    t
}

/// Pins this process (every thread of it) to `cpu`, so the load generator and the server do
/// not compete for one core; children inherit it.
pub(crate) fn pin_self(cpu: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset could not pin the load generator to CPU {cpu}"
        ))
    }
}

/// The tidings binary: `explicit`, or `tidings` next to this program.
pub(crate) fn tidings_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    match explicit {
        Some(p) => Ok(p.to_owned()),
        None => Ok(std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("tidings")),
    }
}

/// Starts `tidings serve` with only the HTTP listener, on a free port.
pub(crate) fn start_tidings(binary: &Path, cpu: Option<usize>) -> Result<Peer, String> {
    let mut cmd = Command::new(binary);
    cmd.args([
        "serve",
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "off",
        "--udp",
        "off",
        "--stomp",
        "off",
    ]);
    Peer::start(&mut pinned(cmd, cpu), "tidings: http listening on ")
}

/// Starts tidings with only its HTTPS listener, on a self-signed certificate.
pub(crate) fn start_tidings_tls(binary: &Path, cpu: Option<usize>) -> Result<Peer, String> {
    let mut cmd = Command::new(binary);
    cmd.args([
        "serve", "--http", "off", "--tcp", "off", "--udp", "off", "--stomp", "off",
    ])
    .args(["--https", "127.0.0.1:0", "--tls-self-signed"]);
    Peer::start(&mut pinned(cmd, cpu), "tidings: https listening on ")
}

/// Starts a node script of bench/peers/ on a free port (it prints `banner` then the address).
pub(crate) fn start_node(script: &Path, banner: &str, cpu: Option<usize>) -> Result<Peer, String> {
    let mut cmd = Command::new("node");
    cmd.arg(script).arg("0");
    Peer::start(&mut pinned(cmd, cpu), banner)
}
