//! Token settings (`[auth.jwt]`): which keys sign the JWTs a deployment's backend hands its
//! clients, which claims must hold, and the rights of a token that names none.
//! The users and their passwords stay in `[hub.auth]`, which the hub checks; tokens are
//! verified by the server (auth/jwt.rs), so their settings live beside the other server ones.

use serde::Deserialize;
use std::path::PathBuf;
use tidings_core::RightsConfig;

/// The `[auth]` section: only `[auth.jwt]` for now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerAuthConfig {
    pub jwt: JwtConfig,
}

/// JWT verification (`[auth.jwt]`). Tokens are accepted when a key is given: a shared secret
/// (HS256/384/512) and/or PEM public keys (RS*/PS*, ES256/384, EdDSA). See docs/security.md.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared secret for HS256/HS384/HS512 (`TIDINGS_JWT_SECRET` sets it too). Default: none.
    pub hmac_secret: Option<String>,
    /// File holding the shared secret (trailing newline ignored), so it stays out of the
    /// config file. Default: none.
    pub hmac_secret_file: Option<PathBuf>,
    /// PEM public keys (RSA, EC P-256/P-384 or Ed25519); a token is accepted when one of the
    /// keys of its algorithm's family verifies it. Default: none.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS file (RFC 7517 `{"keys": [...]}`: RSA, EC and OKP public keys), at most 1 MiB
    /// and 100 keys. A token whose header names a `kid` is checked with that key only, so
    /// keys can rotate: add the new key, reload (SIGHUP), then sign with it. Default: none.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim. Default: none (not checked).
    pub issuer: Option<String>,
    /// Required `aud` claim (one of the token's audiences). Default: none (a token with an
    /// `aud` is then refused: it was meant for someone else).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// Refuse tokens without `exp`. Default true: a token that never expires cannot be
    /// taken back short of changing the key.
    pub require_exp: bool,
    /// Rights of a token without a `tidings` claim. Default: none (the token only says who).
    #[serde(flatten)]
    pub rights: RightsConfig,
}

/// Like the derived one, but the shared secret shows as `****`: a config printed for
/// debugging must not hand out the key that signs tokens.
impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "****"))
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("public_key_files", &self.public_key_files)
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("require_exp", &self.require_exp)
            .field("rights", &self.rights)
            .finish()
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hmac_secret: None,
            hmac_secret_file: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            require_exp: true,
            rights: RightsConfig::default(),
        }
    }
}

impl JwtConfig {
    /// Whether any key is configured (else tokens are refused as not accepted).
    pub fn enabled(&self) -> bool {
        self.hmac_secret.is_some()
            || self.hmac_secret_file.is_some()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some()
    }

    /// Whether keys come from files (then SIGHUP reads them again).
    pub fn has_key_files(&self) -> bool {
        self.hmac_secret_file.is_some()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some()
    }

    /// Checks what can be checked without reading files; `(field, reason)`.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.hmac_secret.is_some() && self.hmac_secret_file.is_some() {
            return Err((
                "hmac_secret",
                "give hmac_secret or hmac_secret_file, not both".into(),
            ));
        }
        if self.hmac_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err((
                "hmac_secret",
                "must be at least 32 bytes (RFC 7518: a key as long as the HS256 hash)".into(),
            ));
        }
        if self.leeway_secs > 3600 {
            return Err(("leeway_secs", "must be at most 3600".into()));
        }
        tidings_core::Rights::compile(&self.rights)
            .map(|_| ())
            .map_err(|(p, e)| ("publish/subscribe", format!("pattern {p:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret_and_short_secrets_are_refused() {
        let cfg = JwtConfig {
            hmac_secret: Some("a-secret-that-is-at-least-32-bytes!!".into()),
            ..JwtConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("a-secret"));
        assert!(cfg.validate().is_ok());
        let short = JwtConfig {
            hmac_secret: Some("short".into()),
            ..JwtConfig::default()
        };
        assert_eq!(short.validate().unwrap_err().0, "hmac_secret");
    }
}
