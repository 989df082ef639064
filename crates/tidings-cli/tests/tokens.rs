//! Tokens and hashed passwords end to end with the real `tidings` binary: `tidings
//! hash-password` makes a user's `password_hash`, `tidings token` a token, `serve` (with
//! TIDINGS_JWT_SECRET) warns about plain passwords only, and the real clients of every
//! protocol use the tokens with exactly their rights, are refused each bad kind, are closed
//! at expiry with their protocol's error, and refresh: tests/interop/node_jwt_clients.mjs
//! (node `ws`, @stomp/stompjs over WebSocket and TCP, socket.io-client, fetch for SSE and
//! the HTTP API, a raw TCP line client), py_stomp_jwt.py (stomp.py), browser_sse_token.mjs
//! (EventSource in headless Chromium) and curl. A JWKS file is read again on SIGHUP. The
//! packages come from `scripts/install-test-deps.sh`; without them this fails (never skips).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tidings_testkit::{interop, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
const SECRET: &str = "cli-interop-secret-at-least-32-bytes";

/// `tidings hash-password` with `password` on standard input; the PHC string it prints.
fn hash_password(password: &str) -> String {
    let mut child = TIDINGS
        .command(&["hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tidings hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn hash_password_prints_an_argon2id_phc_string_with_a_fresh_salt() {
    let a = hash_password("correct horse");
    let b = hash_password("correct horse");
    assert!(a.starts_with("$argon2id$v=19$"), "{a}");
    assert_ne!(a, b, "each hash has its own salt");
    assert!(tidings_core::verify_argon2(&a, "correct horse"));
    assert!(!tidings_core::verify_argon2(&a, "wrong"));
}

#[test]
fn token_prints_a_signed_token_with_the_rights_asked_for() {
    let done = TIDINGS.run(&[
        "token",
        "--secret",
        SECRET,
        "--sub",
        "ann",
        "--publish",
        "chat.*",
        "--subscribe",
        "chat.>",
        "--ttl",
        "1h",
    ]);
    assert!(done.success(), "{}", done.report());
    let token = done.stdout.trim();
    let payload = token.split('.').nth(1).expect("three parts");
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "ann");
    assert_eq!(claims["tidings"]["publish"][0], "chat.*");
    assert_eq!(claims["tidings"]["subscribe"][0], "chat.>");
    let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 3600);
}

#[test]
fn real_clients_of_every_protocol_with_tokens_and_a_hashed_password() {
    let hash = hash_password("ann-s3cret");
    let config = format!(
        // Every bad token kind on every protocol comes from one address: more than the
        // login guard's 10 a minute.
        "[limits]\nlogin_failures_per_ip = 0\n\n[auth.jwt]\nleeway_secs = 0\n\n\
         [[hub.auth.users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\npublish = [\"chat.>\"]\nsubscribe = [\"chat.>\"]\n\n\
         [[hub.auth.users]]\nname = \"bob\"\npassword = \"plain\"\n"
    );
    let server = TIDINGS
        .serve()
        .http()
        .tcp()
        .stomp()
        .config(&config)
        .env("TIDINGS_JWT_SECRET", SECRET)
        .start();
    let token = TIDINGS.run(&[
        "token",
        "--secret",
        SECRET,
        "--sub",
        "ann",
        "--publish",
        "chat.*",
        "--subscribe",
        "chat.>",
        "--ttl",
        "1h",
    ]);
    assert!(token.success(), "{}", token.report());
    let mut cmd: Command = interop::node(&[
        "ws",
        "@stomp/stompjs",
        "@stomp/tcp-wrapper",
        "socket.io-client",
    ]);
    cmd.arg("node_jwt_clients.mjs").args([
        server.addr("http"),
        server.addr("tcp"),
        server.addr("stomp"),
        SECRET,
        token.stdout.trim(),
        "ann",
        "ann-s3cret",
    ]);
    interop::run(
        cmd,
        "tests/interop/node_jwt_clients.mjs",
        Duration::from_secs(90),
    )
    .assert_passed("ok: all ");
    let stderr = server.stderr();
    assert!(
        stderr.contains("user \"bob\" has a plain-text password"),
        "{stderr}"
    );
    assert!(!stderr.contains("user \"ann\" has a plain"), "{stderr}");
    // Tokens are credentials: none is ever written to the log.
    assert!(!server.output().contains("eyJ"), "{}", server.output());
}

/// An Ed25519 key pair from RFC 8032 section 7.1: (PKCS#8 DER private key, public key bytes).
fn ed_pair(seed_hex: &str, public_hex: &str) -> (Vec<u8>, Vec<u8>) {
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut der = hex("302e020100300506032b657004220420");
    der.extend(hex(seed_hex));
    (der, hex(public_hex))
}

/// One line-protocol exchange: the reply to `AUTH TOKEN <token>`.
fn auth_token_reply(tcp: &str, token: &str) -> String {
    use std::io::{BufRead, BufReader};
    let s = std::net::TcpStream::connect(tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    (&s).write_all(format!("AUTH TOKEN {token}\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    reply.trim_end().to_owned()
}

#[test]
fn a_jwks_file_is_read_again_on_sighup_so_keys_rotate() {
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let (a_private, a_public) = ed_pair(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    );
    let (b_private, b_public) = ed_pair(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    );
    let jwk = |kid: &str, public: &[u8]| {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public);
        format!(r#"{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"{kid}","x":"{x}"}}"#)
    };
    let path = std::env::temp_dir().join(format!("tidings-jwks-cli-{}.json", std::process::id()));
    std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, jwk("a", &a_public))).unwrap();
    let mut server = TIDINGS
        .serve()
        .tcp()
        .config(&format!(
            "[auth.jwt]\njwks_file = \"{}\"\n\n[[hub.auth.users]]\nname = \"x\"\npassword_hash = \"{}\"\n",
            path.display(),
            hash_password("x")
        ))
        .start();
    server.remove_on_drop(path.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |kid: &str, private: &[u8]| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        let claims = serde_json::json!({"sub": "ann", "exp": now + 600});
        encode(&h, &claims, &EncodingKey::from_ed_der(private)).unwrap()
    };
    let tcp = server.addr("tcp").to_owned();
    assert!(auth_token_reply(&tcp, &sign("a", &a_private)).starts_with("+OK AUTH ann"));
    let r = auth_token_reply(&tcp, &sign("b", &b_private));
    assert!(r.contains("unknown key"), "{r}");
    std::fs::write(
        &path,
        format!(
            r#"{{"keys":[{},{}]}}"#,
            jwk("a", &a_public),
            jwk("b", &b_public)
        ),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let said = server.next_line(Duration::from_secs(5));
    assert_eq!(
        said.as_deref(),
        Some("tidings: token keys reloaded (2 keys)")
    );
    assert!(auth_token_reply(&tcp, &sign("b", &b_private)).starts_with("+OK AUTH ann"));
    // A kid names its key: b's signature under a's kid is refused.
    let r = auth_token_reply(&tcp, &sign("a", &b_private));
    assert!(r.contains("bad signature"), "{r}");
}

/// `tidings token` for `sub` with chat rights, signed with `secret`, valid for `ttl`.
fn cli_token(secret: &str, sub: &str, ttl: &str) -> String {
    let done = TIDINGS.run(&[
        "token",
        "--secret",
        secret,
        "--sub",
        sub,
        "--publish",
        "chat.*",
        "--subscribe",
        "chat.>",
        "--ttl",
        ttl,
    ]);
    assert!(done.success(), "{}", done.report());
    done.stdout.trim().to_owned()
}

#[test]
fn stomp_py_and_curl_with_tokens() {
    let server = TIDINGS
        .serve()
        .http()
        .stomp()
        .config("[auth.jwt]\nleeway_secs = 0\n\n[[hub.auth.users]]\nname = \"bob\"\npassword = \"plain\"\n")
        .env("TIDINGS_JWT_SECRET", SECRET)
        .start();
    let token = cli_token(SECRET, "ann", "1h");
    let bad = cli_token("a-different-secret-of-32-bytes-long!", "ann", "1h");
    let mut cmd = interop::python("stomp");
    // The script signs its 2 s token itself, just before using it.
    cmd.arg("py_stomp_jwt.py")
        .args([server.addr("stomp"), token.as_str(), bad.as_str(), SECRET]);
    interop::run(
        cmd,
        "tests/interop/py_stomp_jwt.py",
        Duration::from_secs(60),
    )
    .assert_passed("ok: all ");

    // curl, as the docs show it.
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = |path: &str| format!("http://{}{path}", server.addr("http"));
    let auth = format!("Authorization: Bearer {token}");
    assert_eq!(
        curl(&["-H", &auth, "-d", "hi", &url("/api/publish/chat.lobby")])[..1],
        *"2"
    );
    assert_eq!(
        curl(&["-H", &auth, "-d", "hi", &url("/api/publish/news.x")]),
        "403"
    );
    let bad_auth = format!("Authorization: Bearer {bad}");
    assert_eq!(
        curl(&["-H", &bad_auth, "-d", "hi", &url("/api/publish/chat.lobby")]),
        "401"
    );
    assert_eq!(
        curl(&[&url(&format!(
            "/poll?topic=chat.lobby&timeout=0&token={token}"
        ))]),
        "200"
    );
}

#[test]
fn chromium_event_source_with_a_token_on_the_url() {
    let server = TIDINGS
        .serve()
        .http()
        .config("[auth.jwt]\nleeway_secs = 0\n\n[[hub.auth.users]]\nname = \"bob\"\npassword = \"plain\"\n")
        .env("TIDINGS_JWT_SECRET", SECRET)
        .start();
    let mut cmd = interop::node(&["playwright-core"]);
    cmd.arg("browser_sse_token.mjs").args([
        &format!("http://{}", server.addr("http")),
        &cli_token(SECRET, "ann", "1h"),
        // The script signs its 2 s token itself, just before using it.
        &SECRET.to_owned(),
    ]);
    interop::run(
        cmd,
        "tests/interop/browser_sse_token.mjs",
        Duration::from_secs(90),
    )
    .assert_passed("ok: all ");
}
