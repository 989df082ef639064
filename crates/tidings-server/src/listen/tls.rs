//! TLS over accepted TCP connections (rustls, ring provider, TLS 1.2 and 1.3).
//!
//! A TLS listener is a TCP listener whose connections are first handed to an [`Acceptor`]:
//! it waits for a handshake slot, runs the handshake within the deadline, and gives the
//! protocol's `serve` the decrypted stream, which is a [`ByteStream`](super::ByteStream) like
//! any other. Protocols never know they run over TLS.
//!
//! ```text
//! accept (listen::accept_loop) ─> task: slot (semaphore) ─> handshake ─> serve(TlsStream, Peer)
//!                                  └──── both within handshake_timeout, else closed ────┘
//! ```
//!
//! The certificate lives in one [`CertStore`] shared by every TLS listener, read through a
//! lock on each handshake; [`Tls::reload`] reads the files again and swaps the certificate
//! for new handshakes only (open connections keep theirs, and a file that does not load
//! leaves the old certificate in place).

use crate::config::TlsConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;

use super::Peer;

/// ALPN protocols of the HTTPS listener, in our order of preference.
pub(crate) const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why TLS could not be set up or reloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file is missing, unreadable or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// The files load but rustls refuses them (e.g. the key does not match the certificate).
    #[error("tls: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The certificate and key every TLS listener presents, swapped in place by a reload.
#[derive(Debug)]
struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    /// Read on every handshake, written by a reload: an `RwLock` around an `Arc`, so a
    /// handshake holds the lock only to clone the `Arc`.
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error(cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(cert, e))?;
        if chain.is_empty() {
            return Err(file_error(cert, "no CERTIFICATE in this PEM file"));
        }
        let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
        let signing = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| file_error(key, e))?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| {
            TlsError::Config(format!("{} and {}: {e}", cert.display(), key.display()))
        })?;
        Ok(certified)
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// What every TLS listener shares: the certificate, the client verifier and the
/// handshake bounds. Make one [`Acceptor`] per listener (they differ in ALPN).
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    store: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// Handshakes in progress over all TLS listeners: a handshake costs CPU and a buffer, so
    /// a crowd of slow handshakers waits here instead of growing without bound.
    handshakes: Arc<Semaphore>,
    timeout: Duration,
}

impl Tls {
    /// Loads the certificate, key and (for mutual TLS) the client CA from `cfg`'s files.
    pub(crate) fn new(cfg: &TlsConfig) -> Result<Tls, TlsError> {
        let missing = |what: &str| TlsError::Config(format!("tls.{what} is not set"));
        let cert = cfg.cert.clone().ok_or_else(|| missing("cert"))?;
        let key = cfg.key.clone().ok_or_else(|| missing("key"))?;
        // ring, not aws-lc-rs: aws-lc-rs needs cmake and nasm to build. rustls 0.23.48
        // deprecates ring's provider for lacking post-quantum key exchange (X25519MLKEM768);
        // moving to aws-lc-rs is this one line and the features in Cargo.toml.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = CertStore::load(&cert, &key, &provider)?;
        let client_verifier = match &cfg.client_ca {
            None => None,
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for der in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                    let der = der.map_err(|e| file_error(path, e))?;
                    roots.add(der).map_err(|e| file_error(path, e))?;
                }
                if roots.is_empty() {
                    return Err(file_error(path, "no CA CERTIFICATE in this PEM file"));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
                Some(verifier)
            }
        };
        Ok(Tls {
            store: Arc::new(CertStore {
                cert,
                key,
                current: RwLock::new(Arc::new(current)),
            }),
            provider,
            client_verifier,
            handshakes: Arc::new(Semaphore::new(cfg.max_handshakes)),
            timeout: cfg.handshake_timeout(),
        })
    }

    /// An acceptor offering `alpn` (empty: no ALPN, as for the line protocol and STOMP).
    pub(crate) fn acceptor(&self, alpn: &[&[u8]]) -> Result<Acceptor, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.store.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Session tickets: a reconnecting client (a storm after a restart of a proxy) skips
        // the full handshake. The ticket key rotates every 6 hours (rustls's default).
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Acceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshakes: self.handshakes.clone(),
            timeout: self.timeout,
        })
    }

    /// Reads the certificate and key files again; new handshakes present the new
    /// certificate, open connections are untouched. On error the old certificate stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = CertStore::load(&self.store.cert, &self.store.key, &self.provider)?;
        *self
            .store
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }
}

/// One TLS listener's handshake: its rustls config (ALPN) and the shared bounds.
#[derive(Clone)]
pub(crate) struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
    handshakes: Arc<Semaphore>,
    timeout: Duration,
}

impl Acceptor {
    /// Waits for a handshake slot, runs the handshake, then `serve`s the TLS stream. A
    /// handshake that fails or does not finish in time closes the connection (logged at
    /// debug: scanners and clients that distrust the certificate do this all day).
    pub(crate) async fn then<S, F, Fut>(self, tcp: S, peer: Peer, serve: F)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        F: FnOnce(TlsStream<S>, Peer) -> Fut,
        Fut: Future<Output = ()>,
    {
        let handshake = async {
            let _slot = self.handshakes.acquire().await.ok()?;
            match self.inner.accept(tcp).await {
                Ok(stream) => Some(stream),
                Err(e) => {
                    tracing::debug!(error = %e, "tls handshake failed");
                    None
                }
            }
        };
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Some(stream)) => serve(stream, peer).await,
            Ok(None) => {}
            Err(_) => tracing::debug!(timeout = ?self.timeout, "tls handshake timed out"),
        }
    }
}
