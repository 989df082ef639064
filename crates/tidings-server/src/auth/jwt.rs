//! JWT verification: a token signed by the deployment's backend becomes an [`Identity`]
//! (`sub` the user, the `tidings` claim its rights, `exp` its expiry).
//!
//! Each key allows only its own family's algorithms (an HMAC secret HS*, an RSA key RS*/PS*,
//! an EC key ES*, an Ed25519 key EdDSA), so a public key can never be used as an HMAC secret,
//! and `alg: none` names no family at all. Refusals say which kind of wrong, never more.

use crate::config::{ConfigError, JwtConfig};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use tidings_core::{AuthMethod, Identity, Rights, RightsConfig, TokenRefusal};

/// Longest token looked at: bigger ones are malformed before any decoding (a URL or a
/// STOMP header bounds them anyway; this bounds the work of a refused one).
const MAX_TOKEN: usize = 8192;
/// Largest JWKS file read, and most keys in it: the set is held in memory and a token is
/// checked against every key of its family that has no `kid`.
const MAX_JWKS_BYTES: u64 = 1 << 20;
const MAX_JWKS_KEYS: usize = 100;

/// The keys and rules of `[auth.jwt]`. The keys are read at start and again on SIGHUP
/// ([`JwtVerifier::reload`]); the rules are fixed.
pub(crate) struct JwtVerifier {
    /// Where the keys come from, to read them again.
    cfg: JwtConfig,
    /// Swapped whole on reload; a verification holds its own `Arc`, so a reload never
    /// waits for one nor changes the keys under it.
    keys: RwLock<Arc<Vec<Key>>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
    require_exp: bool,
    /// Rights of a token without a `tidings` claim (`[auth.jwt]` publish/subscribe).
    default_rights: Arc<Rights>,
}

/// One verification key and what may use it.
struct Key {
    /// A JWKS key's `kid`: a token naming a `kid` is checked with that key only.
    kid: Option<String>,
    key: DecodingKey,
    /// The algorithms of the key's family (or the one its JWK `alg` names).
    algs: Vec<Algorithm>,
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];

/// The claims tidings reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    tidings: Option<TidingsClaim>,
    /// Shown with the user in presence (any JSON value, kept as its text).
    info: Option<Box<serde_json::value::RawValue>>,
}

/// The `tidings` claim: the token's rights on topics (`publish`, `subscribe`, each absent =
/// none) and whether it may use the admin API (`admin`, default false).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TidingsClaim {
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    admin: bool,
}

/// The header's `alg` and `kid`, read before verifying so that `none` and unknown
/// algorithms are refused as such (the crate would call them malformed) and the key is
/// chosen by `kid`.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn config_err(field: &str, reason: String) -> ConfigError {
    ConfigError {
        field: format!("auth.jwt.{field}"),
        reason,
    }
}

/// Reads every configured key.
fn load_keys(cfg: &JwtConfig) -> Result<Vec<Key>, ConfigError> {
    let err = config_err;
    let mut keys = Vec::new();
    let plain = |key: DecodingKey, algs: &[Algorithm]| Key {
        kid: None,
        key,
        algs: algs.to_vec(),
    };
    if let Some(secret) = &cfg.hmac_secret {
        keys.push(plain(DecodingKey::from_secret(secret.as_bytes()), HMAC));
    }
    if let Some(path) = &cfg.hmac_secret_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("hmac_secret_file", format!("{}: {e}", path.display())))?;
        let secret = text.trim_end_matches(['\r', '\n']);
        if secret.len() < 32 {
            return Err(err(
                "hmac_secret_file",
                "must hold at least 32 bytes".into(),
            ));
        }
        keys.push(plain(DecodingKey::from_secret(secret.as_bytes()), HMAC));
    }
    for path in &cfg.public_key_files {
        let pem = std::fs::read(path)
            .map_err(|e| err("public_key_files", format!("{}: {e}", path.display())))?;
        let key = DecodingKey::from_rsa_pem(&pem)
            .map(|k| plain(k, RSA))
            .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| plain(k, EC)))
            .or_else(|_| DecodingKey::from_ed_pem(&pem).map(|k| plain(k, ED)))
            .map_err(|_| {
                err(
                    "public_key_files",
                    format!(
                        "{}: not a PEM RSA, EC or Ed25519 public key",
                        path.display()
                    ),
                )
            })?;
        keys.push(key);
    }
    if let Some(path) = &cfg.jwks_file {
        keys.extend(load_jwks(path)?);
    }
    Ok(keys)
}

/// The public keys of a JWKS file (RFC 7517), bounded in size and count.
fn load_jwks(path: &std::path::Path) -> Result<Vec<Key>, ConfigError> {
    let err = |reason: String| config_err("jwks_file", format!("{}: {reason}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_JWKS_BYTES + 1),
        &mut text,
    )
    .map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_JWKS_BYTES {
        return Err(err(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    let set: JwkSet = serde_json::from_slice(&text).map_err(|e| err(format!("not a JWKS: {e}")))?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(err(format!("more than {MAX_JWKS_KEYS} keys")));
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(i, jwk)| {
            let family: &[Algorithm] = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => &[Algorithm::ES256],
                    EllipticCurve::P384 => &[Algorithm::ES384],
                    _ => return Err(err(format!("key {i}: unsupported curve"))),
                },
                AlgorithmParameters::OctetKeyPair(_) => ED,
                // A shared secret in a file of public keys is a mistake waiting to leak.
                AlgorithmParameters::OctetKey(_) => {
                    return Err(err(format!(
                        "key {i}: a symmetric (oct) key; put shared secrets in hmac_secret_file"
                    )))
                }
            };
            // A JWK naming its `alg` allows that one only (it must be of the key's family).
            let algs = match jwk.common.key_algorithm {
                None => family.to_vec(),
                Some(ka) => {
                    let alg = format!("{ka:?}")
                        .parse::<Algorithm>()
                        .ok()
                        .filter(|a| family.contains(a))
                        .ok_or_else(|| err(format!("key {i}: alg {ka:?} does not fit the key")))?;
                    vec![alg]
                }
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| err(format!("key {i}: {e}")))?;
            Ok(Key {
                kid: jwk.common.key_id.clone(),
                key,
                algs,
            })
        })
        .collect()
}

impl JwtVerifier {
    /// Loads the configured keys; `None` when no key is configured (tokens not accepted).
    /// `TIDINGS_JWT_SECRET` is read by the binary into `hmac_secret`.
    pub(crate) fn load(cfg: &JwtConfig) -> Result<Option<JwtVerifier>, ConfigError> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let keys = load_keys(cfg)?;
        let default_rights = Rights::compile(&cfg.rights)
            .map_err(|(p, e)| config_err("publish/subscribe", format!("pattern {p:?}: {e}")))?;
        Ok(Some(JwtVerifier {
            cfg: cfg.clone(),
            keys: RwLock::new(Arc::new(keys)),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway_secs: cfg.leeway_secs,
            require_exp: cfg.require_exp,
            default_rights: Arc::new(default_rights),
        }))
    }

    /// Reads the key files again (SIGHUP). On error the old keys stay in use. Returns how
    /// many keys are now loaded.
    pub(crate) fn reload(&self) -> Result<usize, ConfigError> {
        let keys = load_keys(&self.cfg)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Verifies `token` at `now_ms` (the hub's clock) and resolves its identity. The
    /// identity expires at `exp` plus the leeway, the last moment the token was acceptable.
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, TokenRefusal> {
        if token.len() > MAX_TOKEN {
            return Err(TokenRefusal::Malformed);
        }
        let (alg, kid) = header_of(token)?;
        let all = self.keys();
        let family: Vec<&Key> = all.iter().filter(|k| k.algs.contains(&alg)).collect();
        if family.is_empty() {
            return Err(TokenRefusal::AlgorithmNotAllowed);
        }
        // A `kid` picks its key; a token without one is tried with the keys that have none.
        let keys: Vec<&Key> = family
            .into_iter()
            .filter(|k| match (&kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, have) => have.is_none(),
            })
            .collect();
        if keys.is_empty() {
            return Err(match kid {
                Some(_) => TokenRefusal::UnknownKey,
                None => TokenRefusal::BadSignature,
            });
        }
        let validation = self.validation(alg);
        let mut claims = None;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => match refusal_of(e.kind()) {
                    // Another key of the family may have signed it (a key of the other
                    // curve or size answers "wrong key" rather than "bad signature").
                    TokenRefusal::BadSignature | TokenRefusal::AlgorithmNotAllowed => {}
                    // The signature held; what is wrong is the claims: final.
                    other => return Err(other),
                },
            }
        }
        let claims = claims.ok_or(TokenRefusal::BadSignature)?;
        let now = now_ms / 1000;
        if claims.iat.is_some_and(|iat| iat > now + self.leeway_secs) {
            return Err(TokenRefusal::NotYetValid);
        }
        let user = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(TokenRefusal::MissingClaim("sub"))?;
        let rights = match &claims.tidings {
            Some(t) => {
                let r = RightsConfig {
                    publish: t.publish.clone(),
                    subscribe: t.subscribe.clone(),
                };
                Arc::new(Rights::compile(&r).map_err(|_| TokenRefusal::BadRights)?)
            }
            None => self.default_rights.clone(),
        };
        let admin = claims.tidings.as_ref().is_some_and(|t| t.admin);
        let expires_at = claims
            .exp
            .map(|exp| exp.saturating_add(self.leeway_secs).saturating_mul(1000));
        let info = claims.info.map(|raw| Arc::<str>::from(raw.get()));
        Ok(
            Identity::new(Some(&user), rights, AuthMethod::Token, expires_at)
                .with_info(info)
                .with_admin(admin),
        )
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        let mut required = vec!["sub"];
        if self.require_exp {
            required.push("exp");
        } else {
            v.validate_exp = false;
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // A token naming an audience while none is configured is refused (it was meant
            // for another service); the crate does so with `validate_aud` on and no audience.
            None => v.validate_aud = true,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// The algorithm and key id a token's header names, refusing `none` and unknown algorithms
/// by kind.
fn header_of(token: &str) -> Result<(Algorithm, Option<String>), TokenRefusal> {
    let head = token.split('.').next().ok_or(TokenRefusal::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| TokenRefusal::Malformed)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed)?;
    let alg = header
        .alg
        .parse::<Algorithm>()
        .map_err(|_| TokenRefusal::AlgorithmNotAllowed)?;
    Ok((alg, header.kid))
}

fn refusal_of(kind: &ErrorKind) -> TokenRefusal {
    match kind {
        ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRefusal::WrongIssuer,
        ErrorKind::InvalidAudience => TokenRefusal::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => TokenRefusal::MissingClaim(match c.as_str() {
            "exp" => "exp",
            "sub" => "sub",
            "iss" => "iss",
            "aud" => "aud",
            _ => "required",
        }),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRefusal::AlgorithmNotAllowed,
        _ => TokenRefusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header as JwtHeader};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";

    fn verifier(f: impl FnOnce(&mut JwtConfig)) -> JwtVerifier {
        let mut cfg = JwtConfig {
            hmac_secret: Some(SECRET.into()),
            leeway_secs: 0,
            ..JwtConfig::default()
        };
        f(&mut cfg);
        JwtVerifier::load(&cfg).unwrap().unwrap()
    }

    fn now() -> u64 {
        crate::clock::now_ms() / 1000
    }

    fn sign(claims: serde_json::Value) -> String {
        sign_with(Algorithm::HS256, SECRET, claims)
    }

    fn sign_with(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
        encode(
            &JwtHeader::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn the_admin_right_is_read_and_grants_nothing_on_topics() {
        let v = verifier(|c| c.rights.publish = vec![">".into()]);
        let exp = now() + 60;
        let admin = v
            .verify(
                &sign(json!({"sub": "ops", "exp": exp, "tidings": {"admin": true}})),
                crate::clock::now_ms(),
            )
            .unwrap();
        assert!(admin.admin);
        assert!(
            admin.can_publish("a.b").is_err(),
            "a `tidings` claim without lists has no rights"
        );
        let plain = v
            .verify(
                &sign(json!({"sub": "ann", "exp": exp})),
                crate::clock::now_ms(),
            )
            .unwrap();
        assert!(!plain.admin);
        assert!(
            plain.can_publish("a.b").is_ok(),
            "the configured rights apply"
        );
        let odd = sign(json!({"sub": "x", "exp": exp, "tidings": {"admin": true, "root": true}}));
        assert!(
            v.verify(&odd, crate::clock::now_ms()).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn a_good_token_gives_its_user_rights_and_expiry() {
        let v = verifier(|_| {});
        let exp = now() + 60;
        let t = sign(json!({"sub": "ann", "exp": exp,
            "tidings": {"publish": ["chat.*"], "subscribe": ["chat.>"]}}));
        let who = v.verify(&t, crate::clock::now_ms()).unwrap();
        assert_eq!(who.name(), "ann");
        assert_eq!(who.method, AuthMethod::Token);
        assert_eq!(who.expires_at, Some(exp * 1000));
        assert!(who.can_publish("chat.lobby").is_ok());
        assert!(who.can_publish("news.x").is_err());
    }

    #[test]
    fn without_the_tidings_claim_the_configured_rights_apply() {
        let v = verifier(|c| c.rights.subscribe = vec!["public.>".into()]);
        let t = sign(json!({"sub": "ann", "exp": now() + 60}));
        let who = v.verify(&t, crate::clock::now_ms()).unwrap();
        assert!(who.can_publish("public.x").is_err());
        let p = tidings_core::Pattern::parse("public.news").unwrap();
        assert!(who.can_subscribe(&p).is_ok());
    }

    #[test]
    fn each_bad_token_is_refused_by_kind() {
        let v = verifier(|c| c.issuer = Some("backend".into()));
        let ms = crate::clock::now_ms();
        let ok = json!({"sub": "ann", "exp": now() + 60, "iss": "backend"});
        let cases = [
            ("not a token".to_owned(), TokenRefusal::Malformed),
            (
                sign_with(
                    Algorithm::HS256,
                    "another-secret-that-is-32-bytes-long",
                    ok.clone(),
                ),
                TokenRefusal::BadSignature,
            ),
            (
                sign(json!({"sub": "ann", "exp": now() - 5, "iss": "backend"})),
                TokenRefusal::Expired,
            ),
            (
                sign(json!({"sub": "ann", "exp": now() + 60, "nbf": now() + 30, "iss": "backend"})),
                TokenRefusal::NotYetValid,
            ),
            (
                sign(json!({"sub": "ann", "exp": now() + 60, "iss": "someone"})),
                TokenRefusal::WrongIssuer,
            ),
            (
                sign(json!({"sub": "ann", "exp": now() + 60, "iss": "backend", "aud": "other"})),
                TokenRefusal::WrongAudience,
            ),
            (
                sign(json!({"sub": "ann", "iss": "backend"})),
                TokenRefusal::MissingClaim("exp"),
            ),
            (
                sign(json!({"exp": now() + 60, "iss": "backend"})),
                TokenRefusal::MissingClaim("sub"),
            ),
            (
                sign(json!({"sub": "ann", "exp": now() + 60, "iss": "backend",
                    "tidings": {"publish": ["a..b"]}})),
                TokenRefusal::BadRights,
            ),
        ];
        for (token, want) in cases {
            assert_eq!(v.verify(&token, ms).unwrap_err(), want, "{token}");
        }
        // `alg: none`, with or without a signature, names no key's family.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&ok.to_string())
        );
        assert_eq!(v.verify(&none, ms), Err(TokenRefusal::AlgorithmNotAllowed));
        // An RSA algorithm with only an HMAC secret configured.
        let rs = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256","typ":"JWT"}"#),
            b64(&ok.to_string())
        );
        assert_eq!(v.verify(&rs, ms), Err(TokenRefusal::AlgorithmNotAllowed));
    }

    #[test]
    fn exp_may_be_optional_and_leeway_extends_the_identity() {
        let v = verifier(|c| c.require_exp = false);
        let t = sign(json!({"sub": "ann"}));
        assert_eq!(
            v.verify(&t, crate::clock::now_ms()).unwrap().expires_at,
            None
        );
        let v = verifier(|c| c.leeway_secs = 30);
        let exp = now() - 5;
        let t = sign(json!({"sub": "ann", "exp": exp}));
        let who = v.verify(&t, crate::clock::now_ms()).unwrap();
        assert_eq!(who.expires_at, Some((exp + 30) * 1000));
    }

    #[test]
    fn public_keys_verify_their_own_algorithms() {
        // Ed25519 (RFC 8410's example key pair), so no key generation is needed here.
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let dir = std::env::temp_dir().join(format!("tidings-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ed.pem");
        std::fs::write(&path, public).unwrap();
        let v = JwtVerifier::load(&JwtConfig {
            public_key_files: vec![path],
            ..JwtConfig::default()
        })
        .unwrap()
        .unwrap();
        let claims = json!({"sub": "ann", "exp": now() + 60});
        let t = encode(
            &JwtHeader::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(v.verify(&t, crate::clock::now_ms()).unwrap().name(), "ann");
        // The public key is no HMAC secret: an HS256 token signed with it is refused.
        let forged = sign_with(Algorithm::HS256, public, claims);
        assert_eq!(
            v.verify(&forged, crate::clock::now_ms()),
            Err(TokenRefusal::AlgorithmNotAllowed)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An Ed25519 key pair: (PKCS#8 DER of the private key, the public key's 32 bytes).
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

    #[test]
    fn a_jwks_key_is_chosen_by_kid_and_reloaded() {
        // RFC 8032 section 7.1, tests 1 and 2.
        let (a_private, a_public) = ed_pair(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        );
        let (b_private, b_public) = ed_pair(
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        );
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = |kid: &str, public: &[u8]| json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(public)});
        let dir = std::env::temp_dir().join(format!("tidings-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        std::fs::write(&path, json!({"keys": [jwk("a", &a_public)]}).to_string()).unwrap();
        let v = JwtVerifier::load(&JwtConfig {
            jwks_file: Some(path.clone()),
            ..JwtConfig::default()
        })
        .unwrap()
        .unwrap();
        let claims = json!({"sub": "ann", "exp": now() + 60});
        let sign = |kid: &str, private: &[u8]| {
            let mut h = JwtHeader::new(Algorithm::EdDSA);
            h.kid = Some(kid.into());
            encode(&h, &claims, &EncodingKey::from_ed_der(private)).unwrap()
        };
        let ms = crate::clock::now_ms();
        assert_eq!(v.verify(&sign("a", &a_private), ms).unwrap().name(), "ann");
        assert_eq!(
            v.verify(&sign("b", &b_private), ms),
            Err(TokenRefusal::UnknownKey)
        );
        // Rotation: key b joins the file; SIGHUP reads it.
        std::fs::write(
            &path,
            json!({"keys": [jwk("a", &a_public), jwk("b", &b_public)]}).to_string(),
        )
        .unwrap();
        assert_eq!(v.reload().unwrap(), 2);
        assert_eq!(v.verify(&sign("b", &b_private), ms).unwrap().name(), "ann");
        // A kid names its key only: b's signature under a's kid is refused.
        assert_eq!(
            v.verify(&sign("a", &b_private), ms),
            Err(TokenRefusal::BadSignature)
        );
        // A broken file leaves the keys as they were.
        std::fs::write(&path, "{").unwrap();
        assert!(v.reload().is_err());
        assert!(v.verify(&sign("b", &b_private), ms).is_ok());
        // Shared secrets do not belong in a JWKS.
        std::fs::write(&path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        assert!(v.reload().is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rsa_and_ec_pem_keys_verify_rs256_and_es256_only() {
        let dir = std::env::temp_dir().join(format!("tidings-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (rsa, ec) = (dir.join("rsa.pub"), dir.join("ec.pub"));
        std::fs::write(&rsa, include_str!("../../tests/data/jwt/rsa.pub")).unwrap();
        std::fs::write(&ec, include_str!("../../tests/data/jwt/ec.pub")).unwrap();
        let v = JwtVerifier::load(&JwtConfig {
            public_key_files: vec![rsa, ec],
            ..JwtConfig::default()
        })
        .unwrap()
        .unwrap();
        let claims = json!({"sub": "ann", "exp": now() + 60});
        let ms = crate::clock::now_ms();
        let rsa_key =
            EncodingKey::from_rsa_pem(include_bytes!("../../tests/data/jwt/rsa.pem")).unwrap();
        let ec_key =
            EncodingKey::from_ec_pem(include_bytes!("../../tests/data/jwt/ec.pem")).unwrap();
        for (alg, key) in [
            (Algorithm::RS256, &rsa_key),
            (Algorithm::PS256, &rsa_key),
            (Algorithm::ES256, &ec_key),
        ] {
            let t = encode(&JwtHeader::new(alg), &claims, key).unwrap();
            assert_eq!(v.verify(&t, ms).unwrap().name(), "ann", "{alg:?}");
        }
        // No HMAC key is configured: an HS256 token (say, signed with the public key's
        // bytes) names no key's family.
        let forged = sign_with(
            Algorithm::HS256,
            include_str!("../../tests/data/jwt/rsa.pub"),
            claims.clone(),
        );
        assert_eq!(
            v.verify(&forged, ms),
            Err(TokenRefusal::AlgorithmNotAllowed)
        );
        // A token signed by another RSA key is a bad signature.
        let t = encode(&JwtHeader::new(Algorithm::RS256), &claims, &rsa_key).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = encode(&JwtHeader::new(Algorithm::ES256), &claims, &ec_key).unwrap();
        parts[2] = other.rsplit('.').next().unwrap();
        assert_eq!(
            v.verify(&parts.join("."), ms),
            Err(TokenRefusal::BadSignature)
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
