//! Child processes: the `tidings` binary and the cargo examples on free ports.
//!
//! Every child is killed by PID when its [`Process`] drops (a failing test unwinds through
//! the drop too), so no test leaves a server behind; its output is kept and printed when the
//! test fails, because a child's stderr is otherwise lost.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a server may take to print its listening lines (a cold start under a loaded
/// machine takes seconds, not milliseconds).
const LISTEN_LIMIT: Duration = Duration::from_secs(15);

/// A running child process; killed (and waited for) on drop, its output shown on stderr if
/// the test is failing.
#[derive(Debug)]
pub struct Process {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Stdout, line by line, for [`Process::wait_listening`] and [`Process::next_line`].
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The pipe readers: joined (briefly) before the output is final.
    readers: Vec<JoinHandle<()>>,
    addrs: HashMap<String, String>,
    /// Files that live as long as the process (its config), removed on drop.
    temp_files: Vec<PathBuf>,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout and stderr captured. `what` names it in
    /// failure messages.
    pub fn spawn(what: impl Into<String>, mut cmd: Command) -> Process {
        cmd.stdin(Stdio::null());
        Process::spawn_inner(what.into(), cmd)
    }

    /// Like [`Process::spawn`], with stdin a pipe the test writes to ([`Process::stdin`]).
    pub fn spawn_with_stdin(what: impl Into<String>, mut cmd: Command) -> Process {
        cmd.stdin(Stdio::piped());
        Process::spawn_inner(what.into(), cmd)
    }

    fn spawn_inner(what: String, mut cmd: Command) -> Process {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}", cmd.get_program()));
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let (tx, lines) = mpsc::channel();
        let readers = vec![
            drain(
                child.stdout.take().expect("piped stdout"),
                Arc::clone(&stdout),
                Some(tx),
            ),
            drain(
                child.stderr.take().expect("piped stderr"),
                Arc::clone(&stderr),
                None,
            ),
        ];
        Process {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            stdout,
            stderr,
            readers,
            addrs: HashMap::new(),
            temp_files: Vec::new(),
        }
    }

    /// Waits (up to 15 s) until the process has printed a `NAME: KIND listening on ADDR`
    /// line for each of `kinds`; a program that prints `NAME: listening on ADDR` has the kind
    /// `NAME`. Panics with the output if the process exits or the time runs out first.
    pub fn wait_listening(&mut self, kinds: &[&str]) {
        let deadline = Instant::now() + LISTEN_LIMIT;
        while let Some(missing) = kinds.iter().find(|k| !self.addrs.contains_key(**k)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some((kind, addr)) = listening(&line) {
                        self.addrs.insert(kind, addr);
                    }
                }
                Err(_) => {
                    if let Some(status) = self.try_wait() {
                        panic!(
                            "{} exited with {status} before listening\n{}",
                            self.what,
                            self.output()
                        );
                    }
                    assert!(
                        !left.is_zero(),
                        "{} printed no `{missing} listening on` line in {LISTEN_LIMIT:?}\n{}",
                        self.what,
                        self.output()
                    );
                }
            }
        }
    }

    /// The address of the `kind` listener, as printed (`127.0.0.1:PORT`).
    pub fn addr(&self, kind: &str) -> &str {
        self.addrs
            .get(kind)
            .unwrap_or_else(|| panic!("{} has no {kind} listener", self.what))
    }

    /// [`Process::addr`] parsed.
    pub fn socket_addr(&self, kind: &str) -> SocketAddr {
        let addr = self.addr(kind);
        addr.parse()
            .unwrap_or_else(|e| panic!("{} printed a bad address {addr:?}: {e}", self.what))
    }

    /// The next stdout line not yet consumed (listening lines were), if one comes in `wait`.
    pub fn next_line(&mut self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// The child's stdin, when started by [`Process::spawn_with_stdin`] and not closed.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Closes the child's stdin (end of file, as Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The child's PID, e.g. to send it a signal.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for a child process")
    }

    /// Waits up to `limit` for it to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stdout and stderr under headers naming the process, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {0} stderr ---\n{}",
            self.what,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Removes `path` when the process is dropped (a config file it reads).
    pub fn remove_on_drop(&mut self, path: PathBuf) {
        self.temp_files.push(path);
    }

    /// Kills it now with SIGKILL (by its PID, as a crash would end it) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// After the child exited: waits (up to 2 s) for its pipes to reach end of file, so
    /// [`Process::stdout`] and [`Process::stderr`] are complete. Bounded because a grandchild
    /// (a browser) may hold a pipe open.
    pub fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // `Child::kill` is SIGKILL to this PID: never a broad kill by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for path in &self.temp_files {
            let _ = std::fs::remove_file(path);
        }
        if thread::panicking() {
            self.settle();
            eprintln!("{}", self.output());
        }
    }
}

/// `(kind, addr)` from `NAME: KIND listening on ADDR`, or `(NAME, addr)` from
/// `NAME: listening on ADDR`.
fn listening(line: &str) -> Option<(String, String)> {
    let (name, rest) = line.split_once(": ")?;
    if name.contains(' ') {
        return None;
    }
    let (kind, addr) = rest.split_once("listening on ")?;
    let kind = match kind.trim() {
        "" => name,
        kind => kind,
    };
    Some((kind.to_owned(), addr.trim().to_owned()))
}

/// Copies a pipe into `log` until it closes, so the child never blocks on a full pipe; with
/// `lines`, also sends each line there. Lossy, so a stray non-UTF-8 byte stops nothing.
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut buf = Vec::new();
        while matches!(pipe.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&buf);
            log.lock().unwrap().push_str(&text);
            if let Some(tx) = &lines {
                let _ = tx.send(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            buf.clear();
        }
    })
}

/// A child that ran to its end (or was killed at its time limit); see [`run()`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// What ran, for messages.
    pub what: String,
    /// `None` when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// The time limit it ran under.
    pub limit: Duration,
}

impl Finished {
    /// It exited on its own, with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Stdout and stderr under headers, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- its stdout ---\n{}--- its stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    /// Echoes its stdout (seen with `--nocapture`), then asserts it exited 0 in time and
    /// printed `marker` (the interop programs print `ok: ...` per passed scenario).
    pub fn assert_passed(&self, marker: &str) {
        print!("{}", self.stdout);
        let what = &self.what;
        match self.status {
            Some(s) if s.success() => {}
            Some(s) => panic!("{what} failed ({s})\n{}", self.report()),
            None => panic!(
                "{what} did not finish in {:?}\n{}",
                self.limit,
                self.report()
            ),
        }
        assert!(
            self.stdout.contains(marker),
            "{what} printed no `{marker}` line\n{}",
            self.report()
        );
    }
}

/// Runs `cmd` (stdin closed) to its end, killing it after `limit` so a hung program fails
/// the test instead of hanging it.
pub fn run(what: impl Into<String>, cmd: Command, limit: Duration) -> Finished {
    let mut p = Process::spawn(what, cmd);
    let status = p.wait_timeout(limit);
    if status.is_none() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    p.settle();
    Finished {
        what: p.what.clone(),
        status,
        stdout: p.stdout(),
        stderr: p.stderr(),
        limit,
    }
}

/// How long [`Tidings::run`] lets a command run: the CLI's one-shot commands (`pub`, `demo
/// ticker --seconds N`) take a second or two.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// The `tidings` binary under test. Its path is `env!("CARGO_BIN_EXE_tidings")`, which cargo
/// sets only when compiling the tests of tidings-cli, so the test passes it in:
///
/// ```no_run
/// use tidings_testkit::Tidings;
/// // In a test of tidings-cli: `Tidings(env!("CARGO_BIN_EXE_tidings"))`.
/// const TIDINGS: Tidings = Tidings("target/debug/tidings");
///
/// let server = TIDINGS.serve().http().tcp().start();
/// let published = TIDINGS.run(&["pub", "--server", server.addr("tcp"), "t", "hi"]);
/// assert!(published.success(), "{}", published.stderr);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Tidings(pub &'static str);

impl Tidings {
    /// `tidings ARGS`, to start as the test likes.
    pub fn command(self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.0);
        cmd.args(args);
        cmd
    }

    /// Runs `tidings ARGS` to its end (at most 20 s).
    pub fn run(self, args: &[&str]) -> Finished {
        run(
            format!("tidings {}", args.join(" ")),
            self.command(args),
            RUN_LIMIT,
        )
    }

    /// `tidings hash-password` with `password` on standard input: the PHC string it prints.
    pub fn hash_password(self, password: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(&["hash-password"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tidings hash-password");
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}").expect("write the password");
        }
        let out = child.wait_with_output().expect("tidings hash-password");
        assert!(
            out.status.success(),
            "tidings hash-password: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `tidings serve` with every listener off unless asked; see [`Serve`].
    pub fn serve(self) -> Serve {
        Serve {
            exe: self.0.into(),
            listeners: [
                ("http", false),
                ("tcp", false),
                ("udp", false),
                ("stomp", false),
            ],
            config: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// How to start `tidings serve`; see [`Tidings::serve`].
#[derive(Debug, Clone)]
#[must_use = "nothing starts until `start`"]
pub struct Serve {
    exe: PathBuf,
    /// `--KIND 127.0.0.1:0` when on, `--KIND off` otherwise (the binary's defaults are fixed
    /// ports, which would clash between tests).
    listeners: [(&'static str, bool); 4],
    config: Option<String>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Serve {
    fn on(mut self, kind: &str) -> Self {
        for (k, on) in &mut self.listeners {
            if *k == kind {
                *on = true;
            }
        }
        self
    }

    /// Turns the HTTP listener on.
    pub fn http(self) -> Self {
        self.on("http")
    }

    /// Turns the TCP line-protocol listener on.
    pub fn tcp(self) -> Self {
        self.on("tcp")
    }

    /// Turns the UDP listener on.
    pub fn udp(self) -> Self {
        self.on("udp")
    }

    /// Turns the STOMP-over-TCP listener on.
    pub fn stomp(self) -> Self {
        self.on("stomp")
    }

    /// A TOML config file with `toml`, written to a temporary file removed on drop.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// One more command-line argument after the listeners (e.g. `--demo-ticker`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for the server (e.g. `TIDINGS_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts it and waits for the listening line of every listener turned on.
    pub fn start(self) -> Process {
        let mut cmd = Command::new(&self.exe);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("serve");
        for (kind, on) in self.listeners {
            cmd.arg(format!("--{kind}"))
                .arg(if on { "127.0.0.1:0" } else { "off" });
        }
        let config = self.config.map(|toml| {
            // Unique per process and per call: tests in one binary run in parallel.
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "tidings-test-{}-{}.toml",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, toml).expect("write a temporary config");
            path
        });
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        cmd.args(&self.args);
        let mut process = Process::spawn("tidings serve", cmd);
        if let Some(path) = config {
            process.remove_on_drop(path);
        }
        let kinds: Vec<&str> = self
            .listeners
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
        process.wait_listening(&kinds);
        process
    }
}

/// The path of cargo example `name` of `package`, built first if it is not there (`cargo
/// test` builds examples, a filtered run may not have).
pub fn example(package: &str, name: &str) -> PathBuf {
    // The test binary is target/<profile>/deps/NAME-HASH; examples are in
    // target/<profile>/examples.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let bin = profile.join("examples").join(name);
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--example", name])
            .status()
            .unwrap_or_else(|e| panic!("cargo build --example {name}: {e}"));
        assert!(status.success(), "building example {name} failed");
    }
    bin
}

/// Starts cargo example `name` of `package` with `args` and waits for its
/// `NAME: listening on ADDR` line (the address is then [`Process::addr`]`(name)`).
pub fn start_example(package: &str, name: &str, args: &[&str]) -> Process {
    let mut cmd = Command::new(example(package, name));
    cmd.args(args);
    let mut process = Process::spawn(name, cmd);
    process.wait_listening(&[name]);
    process
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_process_is_killed_on_drop_and_its_listening_lines_are_read() {
        let script = "echo 'tool: http listening on 127.0.0.1:7'; echo oops >&2; exec sleep 30";
        let mut p = Process::spawn("sh", sh(script));
        p.wait_listening(&["http"]);
        assert_eq!(p.socket_addr("http"), "127.0.0.1:7".parse().unwrap());
        let proc_dir = PathBuf::from(format!("/proc/{}", p.id()));
        assert!(p.try_wait().is_none());
        drop(p);
        // Killed and reaped: the PID is gone (Linux shows it in /proc).
        assert!(!cfg!(target_os = "linux") || !proc_dir.exists());
    }

    #[test]
    fn run_kills_at_the_limit_and_keeps_the_output() {
        let done = run("sh", sh("echo out; echo err >&2"), Duration::from_secs(10));
        assert!(done.success());
        assert_eq!(
            (done.stdout.as_str(), done.stderr.as_str()),
            ("out\n", "err\n")
        );
        let hung = run(
            "sh",
            sh("echo started; exec sleep 30"),
            Duration::from_millis(300),
        );
        assert!(hung.status.is_none() && !hung.success());
        assert_eq!(hung.stdout, "started\n");
    }

    #[test]
    fn listening_lines() {
        let pair = |k: &str, a: &str| Some((k.to_owned(), a.to_owned()));
        assert_eq!(
            listening("tidings: http listening on 127.0.0.1:1"),
            pair("http", "127.0.0.1:1")
        );
        assert_eq!(
            listening("sockjs_conformance: listening on 127.0.0.1:2"),
            pair("sockjs_conformance", "127.0.0.1:2")
        );
        assert_eq!(listening("a log line: the server is listening on x"), None);
        assert_eq!(listening("tidings: ready"), None);
    }
}
