//! `tidings serve`'s TLS flags: the TLS listeners, the certificate files, a self-signed
//! certificate for trying things out, and reloading the certificate on SIGHUP.

use clap::Args;
use std::path::PathBuf;
use tidings_server::{Listen, Server, ServerConfig};

#[derive(Args, Debug)]
pub(crate) struct TlsArgs {
    /// HTTPS listener (everything --http carries, HTTP/2 or HTTP/1.1): HOST:PORT or `off`
    /// (the default; 127.0.0.1:7443 is the suggested address). Needs --tls-cert/--tls-key or
    /// --tls-self-signed.
    #[arg(long, env = "TIDINGS_HTTPS", value_parser = Listen::parse)]
    https: Option<Listen>,
    /// TCP line protocol over TLS: HOST:PORT or `off` (default; suggested 127.0.0.1:7444).
    #[arg(long, env = "TIDINGS_TCP_TLS", value_parser = Listen::parse)]
    tcp_tls: Option<Listen>,
    /// STOMP over TLS: HOST:PORT or `off` (default; suggested 127.0.0.1:61614).
    #[arg(long, env = "TIDINGS_STOMP_TLS", value_parser = Listen::parse)]
    stomp_tls: Option<Listen>,
    /// PEM certificate chain (leaf first) of the TLS listeners; read again on SIGHUP.
    #[arg(long, env = "TIDINGS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; read again on SIGHUP.
    #[arg(long, env = "TIDINGS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate they signed (mutual TLS).
    #[arg(long, env = "TIDINGS_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Make a certificate for localhost, 127.0.0.1 and ::1 at start (written to a temporary
    /// directory, whose path is printed), instead of --tls-cert/--tls-key. For trying out.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
}

/// Applies the flags (and their `TIDINGS_*` variables) over `config`; makes the
/// self-signed certificate when asked.
pub(crate) fn apply(args: &TlsArgs, config: &mut ServerConfig) -> Result<(), String> {
    if let Some(l) = args.https {
        config.https = l;
    }
    if let Some(l) = args.tcp_tls {
        config.tcp_tls = l;
    }
    if let Some(l) = args.stomp_tls {
        config.stomp_tls = l;
    }
    if let Some(p) = &args.tls_cert {
        config.tls.cert = Some(p.clone());
    }
    if let Some(p) = &args.tls_key {
        config.tls.key = Some(p.clone());
    }
    if let Some(p) = &args.tls_client_ca {
        config.tls.client_ca = Some(p.clone());
    }
    if args.tls_self_signed {
        let (cert, key) = self_signed()?;
        println!(
            "tidings: tls self-signed certificate written to {}",
            cert.display()
        );
        config.tls.cert = Some(cert);
        config.tls.key = Some(key);
    }
    Ok(())
}

/// A certificate for localhost, 127.0.0.1 and ::1, written as `cert.pem` and `key.pem`
/// (mode 0600) into a new directory under the temporary directory.
fn self_signed() -> Result<(PathBuf, PathBuf), String> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    let dir = std::env::temp_dir().join(format!("tidings-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let write = |path: &PathBuf, text: String| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&cert, made.cert.pem())?;
    write(&key, made.key_pair.serialize_pem())?;
    Ok((cert, key))
}

/// A SIGHUP receiver when TLS listeners are on or token keys come from files (SIGHUP then
/// reloads the certificate and the keys); otherwise `None`, and SIGHUP keeps its default
/// action.
pub(crate) fn sighup(config: &ServerConfig) -> Result<Option<tokio::signal::unix::Signal>, String> {
    if !config.tls_listeners() && !config.auth.jwt.has_key_files() {
        return Ok(None);
    }
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map(Some)
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))
}

/// Waits for the next SIGHUP (forever without a receiver).
pub(crate) async fn next_sighup(hup: &mut Option<tokio::signal::unix::Signal>) {
    match hup {
        Some(hup) => {
            hup.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Reloads the certificate and the token keys and says how it went (stdout when done,
/// stderr when not).
pub(crate) fn reload(server: &Server, tls: bool) {
    if tls {
        match server.reload_tls() {
            Ok(()) => println!("tidings: tls certificate reloaded"),
            Err(e) => {
                tracing::warn!(error = %e, "tls reload failed; keeping the old certificate");
                eprintln!("tidings: tls reload failed, keeping the old certificate: {e}");
            }
        }
    }
    match server.reload_token_keys() {
        Ok(None) => {}
        Ok(Some(n)) => println!("tidings: token keys reloaded ({n} keys)"),
        Err(e) => {
            tracing::warn!(error = %e, "token key reload failed; keeping the old keys");
            eprintln!("tidings: token key reload failed, keeping the old keys: {e}");
        }
    }
}
