//! Tokens and hashed passwords end to end with the real `tidings` binary: `tidings
//! hash-password` makes a user's `password_hash`, `tidings token` a token, `serve` (with
//! TIDINGS_JWT_SECRET) warns about plain passwords only, and the real clients of every
//! protocol (tests/interop/node_jwt_clients.mjs: node `ws`, @stomp/stompjs over WebSocket
//! and TCP, socket.io-client, fetch for SSE and the HTTP API, a raw TCP line client) use
//! the tokens with exactly their rights, are refused each bad kind, are closed at expiry
//! with their protocol's error, and refresh. The node packages come from
//! `scripts/install-test-deps.sh`; without them this fails (it never skips).

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
