//! TLS settings (`[tls]`): the certificate every TLS listener (`https`, `tcp_tls`,
//! `stomp_tls`) presents, optional client-certificate verification, and the handshake bounds.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// TLS settings (`[tls]`). The listeners themselves are the top-level `https`, `tcp_tls` and
/// `stomp_tls` keys, off by default. See docs/security.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first. Required when a TLS listener is on.
    /// Read again (with `key`) on SIGHUP. Default: none.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Default: none.
    pub key: Option<PathBuf>,
    /// PEM file of CA certificates: when set, clients must present a certificate signed by
    /// one of them (mutual TLS), or the handshake fails. Default: none (no client certificates).
    pub client_ca: Option<PathBuf>,
    /// TLS handshakes in progress at once, over all TLS listeners; more wait (within the
    /// handshake timeout). Default 256: a handshake costs a few hundred microseconds of CPU,
    /// and clients that connect slowly must not pin more than this.
    pub max_handshakes: usize,
    /// Milliseconds a connection has to finish its handshake (waiting for a slot included)
    /// before it is closed. Default 10000.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            client_ca: None,
            max_handshakes: 256,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl TlsConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// Checks the fields; `(field, reason)` for the first wrong one. `needed`: a TLS listener
    /// is on, so the certificate and key must be given.
    pub(crate) fn validate(&self, needed: bool) -> Result<(), (&'static str, &'static str)> {
        if self.max_handshakes == 0 {
            return Err(("max_handshakes", "must be at least 1"));
        }
        if self.handshake_timeout_ms == 0 {
            return Err(("handshake_timeout_ms", "must be at least 1"));
        }
        if needed && self.cert.is_none() {
            return Err((
                "cert",
                "a TLS listener is on: give a certificate chain (PEM), or --tls-self-signed",
            ));
        }
        if needed && self.key.is_none() {
            return Err(("key", "a TLS listener is on: give its private key (PEM)"));
        }
        Ok(())
    }
}
