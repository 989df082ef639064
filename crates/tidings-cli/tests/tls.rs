//! TLS: the real `tidings` binary with its TLS listeners (`--https`, `--tcp-tls`,
//! `--stomp-tls`, all on 127.0.0.1 port 0) and a certificate authority made here with rcgen,
//! against real clients: curl (HTTP/2 and HTTP/1.1), `openssl s_client` (line protocol),
//! Python `websockets` and stomp.py, node `ws`, `@stomp/stompjs`, socket.io-client, node's
//! http2 (WebSocket over HTTP/2, RFC 8441) and Chromium (EventSource streams over HTTP/2).
//! Also: SIGHUP reloads the certificate for new connections while an old one keeps going,
//! a bad file keeps the old certificate, and mutual TLS refuses a client without a
//! certificate. Clients and servers are stopped by PID (the `Process` drop).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use tidings_testkit::{interop, run, Finished, Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

/// How long one client program may run (each caps itself lower).
const PROGRAM_LIMIT: Duration = Duration::from_secs(60);

/// A test certificate authority and the files it issued, in a directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
    /// The CA certificate, which clients trust.
    ca: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tidings-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tidings test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        Pki {
            dir,
            ca_cert,
            ca_key,
            ca,
        }
    }

    /// Issues a certificate named `cn` with `serial` and writes it and its key as
    /// `NAME.pem` and `NAME.key` (replacing what was there).
    fn issue(&self, name: &str, cn: &str, serial: u64, client: bool) -> (PathBuf, PathBuf) {
        let sans = if client {
            Vec::new()
        } else {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `tidings serve` with the plain HTTP, TCP and STOMP listeners and the three TLS
/// ones, presenting `server.pem` of `pki` (CN "tidings test server", serial 1).
struct Server {
    process: Process,
    pki: Pki,
    http: String,
    tcp: String,
    https: String,
    tcp_tls: String,
    stomp_tls: String,
}

impl Server {
    fn start(extra: &[&str], config: Option<&str>) -> Server {
        let pki = Pki::new();
        let (cert, key) = pki.issue("server", "tidings test server", 1, false);
        let mut serve = TIDINGS.serve().http().tcp().stomp();
        if let Some(toml) = config {
            serve = serve.config(toml);
        }
        for arg in ["--https", "127.0.0.1:0", "--tcp-tls", "127.0.0.1:0"] {
            serve = serve.arg(arg);
        }
        serve = serve
            .env("TIDINGS_STOMP_TLS", "127.0.0.1:0")
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key);
        for arg in extra {
            serve = serve.arg(arg.replace("{ca}", pki.ca.to_str().unwrap()));
        }
        let mut process = serve.start();
        process.wait_listening(&["https", "tcp-tls", "stomp-tls"]);
        Server {
            http: process.addr("http").to_owned(),
            tcp: process.addr("tcp").to_owned(),
            https: process.addr("https").to_owned(),
            tcp_tls: process.addr("tcp-tls").to_owned(),
            stomp_tls: process.addr("stomp-tls").to_owned(),
            process,
            pki,
        }
    }

    fn ca(&self) -> &str {
        self.pki.ca.to_str().unwrap()
    }

    /// Sends SIGHUP (by PID) and waits for the server to say how the reload went.
    fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.process.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn sh(what: &str, script: &str, args: &[&str]) -> Finished {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "sh"]).args(args);
    run(what, cmd, Duration::from_secs(20))
}

/// `curl -s` with the test CA, printing the body, then ` <http_version>`.
fn curl(server: &Server, args: &[&str]) -> Finished {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert", server.ca()])
        .args(["-w", " %{http_version}"])
        .args(args);
    run(
        format!("curl {}", args.join(" ")),
        cmd,
        Duration::from_secs(20),
    )
}

/// Sends `input` to the line protocol over TLS with `openssl s_client`, verifying the
/// server against the test CA; returns what the server said.
fn s_client_line(server: &Server, input: &str, extra: &str) -> Finished {
    sh(
        "openssl s_client",
        &format!(
            "printf \"$1\" | openssl s_client -connect \"$2\" -CAfile \"$3\" \
             -verify_return_error -quiet -ign_eof {extra}"
        ),
        &[input, &server.tcp_tls, server.ca()],
    )
}

/// The subject and serial of the certificate a new connection to `addr` is shown.
fn peer_certificate(server: &Server, addr: &str) -> String {
    let out = sh(
        "openssl s_client | openssl x509",
        "openssl s_client -connect \"$1\" -CAfile \"$2\" </dev/null 2>/dev/null \
         | openssl x509 -noout -subject -serial",
        &[addr, server.ca()],
    );
    assert!(out.success(), "{}", out.report());
    out.stdout
}

#[test]
fn curl_negotiates_http2_and_http1_over_https_and_plain_http_is_unchanged() {
    let server = Server::start(&[], None);
    let url = format!("https://{}/healthz", server.https);
    let h2 = curl(&server, &["--http2", &url]);
    assert!(h2.success(), "{}", h2.report());
    assert_eq!(h2.stdout, r#"{"status":"ok"} 2"#);
    let h1 = curl(&server, &["--http1.1", &url]);
    assert_eq!(h1.stdout, r#"{"status":"ok"} 1.1"#, "{}", h1.report());
    // localhost is in the certificate too.
    let port = server.https.rsplit_once(':').unwrap().1;
    let by_name = curl(
        &server,
        &[
            "--http2",
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &format!("https://localhost:{port}/healthz"),
        ],
    );
    assert_eq!(
        by_name.stdout,
        r#"{"status":"ok"} 2"#,
        "{}",
        by_name.report()
    );
    let plain = curl(&server, &[&format!("http://{}/healthz", server.http)]);
    assert_eq!(plain.stdout, r#"{"status":"ok"} 1.1"#, "{}", plain.report());
}

#[test]
fn sse_streams_over_http2_with_curl() {
    let server = Server::start(&[], None);
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sSN",
        "--http2",
        "--max-time",
        "15",
        "--cacert",
        server.ca(),
    ])
    .arg(format!("https://{}/sse?topic=tls.sse", server.https));
    let mut sse = Process::spawn("curl --http2 /sse", cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = false;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let Some(line) = sse.next_line(Duration::from_millis(200)) else {
            continue;
        };
        got.push(line.clone());
        if line == "event: subscribed" && !published {
            let pub_ = curl(
                &server,
                &[
                    "--http2",
                    "-H",
                    "content-type: text/plain",
                    "-d",
                    "hello over h2",
                    &format!("https://{}/api/publish/tls.sse", server.https),
                ],
            );
            assert!(pub_.stdout.ends_with(" 2"), "{}", pub_.report());
            published = true;
        }
        if line.contains(r#""text":"hello over h2""#) {
            return;
        }
    }
    panic!("no message on the SSE stream over HTTP/2: {got:?}");
}

#[test]
fn line_protocol_over_tls_with_openssl_s_client() {
    let server = Server::start(&[], None);
    let out = s_client_line(&server, "SUB tls.line\\nPUB tls.line hi\\nQUIT\\n", "");
    assert!(out.success(), "{}", out.report());
    for want in [
        "+OK tidings line protocol 1",
        "+OK SUB tls.line",
        "MSG tls.line 1 hi",
        "+OK BYE",
    ] {
        assert!(out.stdout.contains(want), "no {want:?}\n{}", out.report());
    }
    // TLS 1.2 is offered too.
    let out = s_client_line(&server, "PING t12\\nQUIT\\n", "-tls1_2");
    assert!(out.stdout.contains("PONG t12"), "{}", out.report());
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_and_old_ones_keep_going() {
    let mut server = Server::start(&[], None);
    let before = peer_certificate(&server, &server.tcp_tls);
    assert!(before.contains("tidings test server"), "{before}");
    assert!(before.contains("serial=01"), "{before}");

    // An old connection, open across the reload.
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &server.tcp_tls,
        "-CAfile",
        server.ca(),
    ])
    .args(["-verify_return_error", "-quiet", "-ign_eof"]);
    let mut old = Process::spawn_with_stdin("openssl s_client (old connection)", cmd);
    let ask = |old: &mut Process, token: &str| {
        use std::io::Write;
        let stdin = old.stdin().expect("stdin");
        writeln!(stdin, "PING {token}").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(line) = old.next_line(Duration::from_millis(200)) {
                if line == format!("PONG {token}") {
                    return;
                }
            }
        }
        panic!("no PONG {token} on the old connection\n{}", old.output());
    };
    ask(&mut old, "before");

    server
        .pki
        .issue("server", "tidings renewed server", 2, false);
    server.sighup();
    let line = server.process.next_line(Duration::from_secs(10));
    assert_eq!(
        line.as_deref(),
        Some("tidings: tls certificate reloaded"),
        "{}",
        server.process.output()
    );
    for addr in [&server.tcp_tls, &server.https, &server.stomp_tls] {
        let after = peer_certificate(&server, addr);
        assert!(after.contains("tidings renewed server"), "{addr}: {after}");
        assert!(after.contains("serial=02"), "{addr}: {after}");
    }
    ask(&mut old, "after");

    // A broken file: the reload fails, says why, and the renewed certificate stays.
    std::fs::write(server.pki.dir.join("server.pem"), "not a certificate\n").unwrap();
    server.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.process.stderr().contains("tls reload failed") {
        assert!(Instant::now() < deadline, "{}", server.process.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.process.stderr().contains("server.pem"),
        "{}",
        server.process.output()
    );
    let still = peer_certificate(&server, &server.tcp_tls);
    assert!(still.contains("tidings renewed server"), "{still}");
    ask(&mut old, "still");
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    // The client CA comes from the config file here (TOML), the rest from flags.
    let pki_dir = Pki::new();
    let toml = format!("[tls]\nclient_ca = {:?}\n", pki_dir.ca.to_str().unwrap());
    // The server's own Pki is another CA: trust the client CA's certificates only.
    let server = Server::start(&[], Some(&toml));
    let (client_cert, client_key) = pki_dir.issue("client", "tidings test client", 7, true);
    let (client_cert, client_key) = (client_cert.to_str().unwrap(), client_key.to_str().unwrap());

    let url = format!("https://{}/healthz", server.https);
    let refused = curl(&server, &["--http2", &url]);
    assert!(!refused.success(), "{}", refused.report());
    let accepted = curl(
        &server,
        &["--http2", "--cert", client_cert, "--key", client_key, &url],
    );
    assert_eq!(
        accepted.stdout,
        r#"{"status":"ok"} 2"#,
        "{}",
        accepted.report()
    );

    let refused = s_client_line(&server, "PING x\\nQUIT\\n", "");
    assert!(
        !refused.stdout.contains("+OK tidings"),
        "{}",
        refused.report()
    );
    let accepted = s_client_line(
        &server,
        "PING x\\nQUIT\\n",
        &format!("-cert {client_cert} -key {client_key}"),
    );
    assert!(accepted.stdout.contains("PONG x"), "{}", accepted.report());

    // A certificate from another CA (the server's own) is refused too.
    let (other_cert, other_key) = server.pki.issue("other", "not a client", 9, true);
    let wrong = curl(
        &server,
        &[
            "--cert",
            other_cert.to_str().unwrap(),
            "--key",
            other_key.to_str().unwrap(),
            &url,
        ],
    );
    assert!(!wrong.success(), "{}", wrong.report());
}

#[test]
fn self_signed_certificate_for_trying_out() {
    let mut process = TIDINGS
        .serve()
        .arg("--tls-self-signed")
        .env("TIDINGS_HTTPS", "127.0.0.1:0")
        .start();
    process.wait_listening(&["https"]);
    let stdout = process.stdout();
    let cert = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tidings: tls self-signed certificate written to "))
        .unwrap_or_else(|| panic!("no certificate path printed\n{}", process.output()))
        .to_owned();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--http2",
        "-w",
        " %{http_version}",
        "--cacert",
        &cert,
    ])
    .arg(format!("https://{}/healthz", process.addr("https")));
    let out = run("curl", cmd, Duration::from_secs(20));
    assert_eq!(out.stdout, r#"{"status":"ok"} 2"#, "{}", out.report());
    let _ = std::fs::remove_dir_all(PathBuf::from(cert).parent().unwrap());
}

#[test]
fn a_tls_listener_without_a_certificate_is_a_clear_error() {
    let out = TIDINGS.run(&[
        "serve",
        "--http",
        "off",
        "--tcp",
        "off",
        "--udp",
        "off",
        "--stomp",
        "off",
        "--https",
        "127.0.0.1:0",
    ]);
    assert!(!out.success());
    assert!(out.stderr.contains("tls.cert"), "{}", out.report());
}

// ---------------------------------------------------------------------------------------
// Third-party clients over TLS (tests/interop/): the same programs as over plain sockets
// ---------------------------------------------------------------------------------------

fn program(mut cmd: Command, server: &Server, what: &str, marker: &str) {
    // Python's ssl and node both trust these CA files besides the system's.
    cmd.env("SSL_CERT_FILE", server.ca())
        .env("NODE_EXTRA_CA_CERTS", server.ca());
    interop::run(cmd, what, PROGRAM_LIMIT).assert_passed(marker);
}

#[test]
fn python_websockets_over_wss() {
    let server = Server::start(&[], None);
    let mut cmd = interop::python("websockets");
    cmd.arg("py_websockets_client.py")
        .arg(format!("wss://{}/ws", server.https));
    program(cmd, &server, "py_websockets_client.py over wss", "ok: ");
}

#[test]
fn stomp_py_over_tls() {
    let server = Server::start(
        &[],
        Some("[stomp_broker]\nheart_beat_send_ms = 200\nheart_beat_receive_ms = 200\n"),
    );
    let mut cmd = interop::python("stomp, websockets");
    cmd.arg("py_stomp_client.py")
        .args(["tcp", &server.stomp_tls, "--line", &server.tcp, "--ws"])
        .arg(format!("wss://{}/ws", server.https))
        .args(["--tls", server.ca()]);
    program(
        cmd,
        &server,
        "py_stomp_client.py over TLS",
        "ok: all stomp.py scenarios over tcp (TLS)",
    );
}

#[test]
fn node_ws_over_wss() {
    let server = Server::start(&[], None);
    let mut cmd = interop::node(&["ws"]);
    cmd.arg("node_ws_client.mjs")
        .arg(format!("wss://{}/ws", server.https));
    program(cmd, &server, "node_ws_client.mjs over wss", "ok: ");
}

#[test]
fn stompjs_over_wss() {
    let server = Server::start(
        &[],
        Some("[stomp_broker]\nheart_beat_send_ms = 200\nheart_beat_receive_ms = 200\n"),
    );
    let mut cmd = interop::node(&["@stomp/stompjs", "ws"]);
    cmd.arg("node_stomp_client.mjs")
        .args(["ws", &format!("wss://{}/stomp", server.https)])
        .args(["--line", &server.tcp, "--native"])
        .arg(format!("wss://{}/ws", server.https));
    program(cmd, &server, "node_stomp_client.mjs over wss", "ok: all ");
}

#[test]
fn socketio_node_client_over_https() {
    let server = Server::start(&[], None);
    let mut cmd = interop::node(&["socket.io-client", "ws"]);
    cmd.arg("sio_node_client.mjs")
        .arg(format!("https://{}", server.https))
        .arg(&server.tcp);
    program(cmd, &server, "sio_node_client.mjs over https", "ok: ");
}

#[test]
fn websocket_over_http2_extended_connect() {
    let server = Server::start(&[], None);
    let mut cmd = interop::node(&[]);
    cmd.arg("tls_h2_websocket.mjs")
        .arg(format!("https://{}", server.https));
    program(cmd, &server, "tls_h2_websocket.mjs", "ok: all RFC 8441");
}

#[test]
fn chromium_eventsource_streams_share_one_http2_connection() {
    interop::chromium();
    let server = Server::start(&[], None);
    let mut cmd = interop::node(&["playwright-core"]);
    cmd.arg("tls_browser.mjs")
        .arg(format!("https://{}", server.https));
    program(cmd, &server, "tls_browser.mjs", "ok: all chromium TLS");
}
