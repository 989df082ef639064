//! Identity and permissions: the seam that later authentication plugs into.
//!
//! Every session has an [`Identity`] (anonymous until it authenticates) and every publish and
//! subscribe passes [`Access::can_publish`] / [`Access::can_subscribe`].

use crate::topic::{Pattern, TopicError};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// How an identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// No credentials: the configured anonymous rights.
    Anonymous,
    /// A configured user and its password.
    Password,
    /// A token (e.g. a JWT) whose claims carried the rights.
    Token,
}

/// Who a session is and what it may do, resolved once at authentication so that permission
/// checks read the identity, not a table (a token's claims can carry rights the config does
/// not know). Get one from [`Access::anonymous`] or [`Access::authenticate`] (or build one
/// from a verified token with [`Identity::new`]).
///
/// One pointer wide: every connection's driver and its hub session hold one, so an idle
/// connection pays 8 bytes for it twice; the fields are read through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(Arc<IdentityFields>);

/// What an [`Identity`] holds.
#[derive(Debug, PartialEq, Eq)]
pub struct IdentityFields {
    /// `None` while anonymous.
    pub user: Option<Arc<str>>,
    /// Shared: every session of a user holds the same compiled patterns.
    pub rights: Arc<Rights>,
    pub method: AuthMethod,
    /// When the identity stops being valid, in milliseconds on the hub's clock (a token's
    /// `exp`). `None`: never.
    pub expires_at: Option<u64>,
    /// What the session shows others in presence besides its user: a token's `info` claim,
    /// as JSON text (bounded by the token's size). `None` for most identities.
    pub info: Option<Arc<str>>,
    /// The identity may use the server's admin API (a token's `"tidings": {"admin": true}`).
    /// It grants nothing on topics: the rights above are all of that.
    pub admin: bool,
}

impl std::ops::Deref for Identity {
    type Target = IdentityFields;
    fn deref(&self) -> &IdentityFields {
        &self.0
    }
}

impl Identity {
    pub fn new(
        user: Option<&str>,
        rights: Arc<Rights>,
        method: AuthMethod,
        expires_at: Option<u64>,
    ) -> Identity {
        Identity(Arc::new(IdentityFields {
            user: user.map(Into::into),
            rights,
            method,
            expires_at,
            info: None,
            admin: false,
        }))
    }

    /// The same identity with presence `info` (JSON text, e.g. a token's `info` claim).
    pub fn with_info(self, info: Option<Arc<str>>) -> Identity {
        let f = &*self.0;
        Identity(Arc::new(IdentityFields {
            user: f.user.clone(),
            rights: f.rights.clone(),
            method: f.method,
            expires_at: f.expires_at,
            info,
            admin: f.admin,
        }))
    }

    /// The same identity with (or without) the admin right.
    pub fn with_admin(self, admin: bool) -> Identity {
        let f = &*self.0;
        Identity(Arc::new(IdentityFields {
            user: f.user.clone(),
            rights: f.rights.clone(),
            method: f.method,
            expires_at: f.expires_at,
            info: f.info.clone(),
            admin,
        }))
    }

    pub fn name(&self) -> &str {
        self.user.as_deref().unwrap_or("-")
    }

    /// Refuses an identity whose expiry is at or before `now`.
    pub fn check_expiry(&self, now: u64) -> Result<(), AuthError> {
        match self.expires_at {
            Some(at) if at <= now => Err(AuthError::Expired {
                user: self.name().into(),
            }),
            _ => Ok(()),
        }
    }

    pub fn can_publish(&self, topic: &str) -> Result<(), AuthError> {
        if self.rights.may_publish(topic) {
            return Ok(());
        }
        Err(AuthError::PublishDenied {
            user: self.name().into(),
            topic: topic.into(),
        })
    }

    pub fn can_subscribe(&self, pattern: &Pattern) -> Result<(), AuthError> {
        if self.rights.may_subscribe(pattern) {
            return Ok(());
        }
        Err(AuthError::SubscribeDenied {
            user: self.name().into(),
            pattern: pattern.as_str().into(),
        })
    }
}

/// Rights on topic patterns, as written in config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RightsConfig {
    /// Patterns this principal may publish to. Default: none.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Patterns this principal may subscribe to (a subscription must lie inside one). Default: none.
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// One configured user: a `password` or a `password_hash`, exactly one.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain-text password. Works, but whoever reads the config file has it: `serve` warns.
    /// Default: none (then `password_hash`).
    #[serde(default)]
    pub password: Option<String>,
    /// An argon2id hash in PHC form (`$argon2id$v=19$m=...`), as `tidings hash-password`
    /// prints. Default: none (then `password`).
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(flatten)]
    pub rights: RightsConfig,
}

/// The `[auth]` config section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Configured users. Default: none, and then everyone may do everything (allow-all).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Rights of sessions that did not authenticate, when users are configured. Default: none.
    #[serde(default)]
    pub anonymous: RightsConfig,
}

/// Why authentication or a permission check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("{user} may not publish to {topic}")]
    PublishDenied { user: String, topic: String },
    #[error("{user} may not subscribe to {pattern}")]
    SubscribeDenied { user: String, pattern: String },
    #[error("the credentials of {user} have expired")]
    Expired { user: String },
    #[error("too many failed logins from this address; try again in {retry_after_secs} s")]
    TooManyFailures { retry_after_secs: u64 },
    #[error("token refused: {0}")]
    BadToken(TokenRefusal),
}

/// Why a token was refused: the kind only, never which part of it was wrong (a signature's
/// bytes or a secret's length would help a forger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    #[error("this server accepts no tokens")]
    NotAccepted,
    #[error("malformed")]
    Malformed,
    #[error("missing the {0} claim")]
    MissingClaim(&'static str),
    #[error("bad signature")]
    BadSignature,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("its rights name a bad pattern")]
    BadRights,
    #[error("a refresh must be for the same user")]
    OtherUser,
    #[error("signed by an unknown key (kid)")]
    UnknownKey,
}

impl TokenRefusal {
    /// Every kind, in the order of [`TokenRefusal::index`] (for counters per kind).
    pub const ALL: [TokenRefusal; 12] = [
        TokenRefusal::NotAccepted,
        TokenRefusal::Malformed,
        TokenRefusal::MissingClaim(""),
        TokenRefusal::BadSignature,
        TokenRefusal::AlgorithmNotAllowed,
        TokenRefusal::Expired,
        TokenRefusal::NotYetValid,
        TokenRefusal::WrongIssuer,
        TokenRefusal::WrongAudience,
        TokenRefusal::BadRights,
        TokenRefusal::OtherUser,
        TokenRefusal::UnknownKey,
    ];

    /// A short name for metrics labels and logs (`expired`, `bad_signature`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            TokenRefusal::NotAccepted => "not_accepted",
            TokenRefusal::Malformed => "malformed",
            TokenRefusal::MissingClaim(_) => "missing_claim",
            TokenRefusal::BadSignature => "bad_signature",
            TokenRefusal::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenRefusal::Expired => "expired",
            TokenRefusal::NotYetValid => "not_yet_valid",
            TokenRefusal::WrongIssuer => "wrong_issuer",
            TokenRefusal::WrongAudience => "wrong_audience",
            TokenRefusal::BadRights => "bad_rights",
            TokenRefusal::OtherUser => "other_user",
            TokenRefusal::UnknownKey => "unknown_key",
        }
    }

    /// The kind's place in [`TokenRefusal::ALL`].
    pub fn index(&self) -> usize {
        TokenRefusal::ALL
            .iter()
            .position(|k| k.label() == self.label())
            .unwrap_or(0)
    }
}

/// What an identity may do: topic patterns it may publish to and subscribe within.
/// Bounded by what configured it (the config file, a token's claims).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// Everything (no users configured: allow-all).
    all: bool,
    publish: Vec<Pattern>,
    subscribe: Vec<Pattern>,
}

impl Rights {
    /// May do everything.
    pub fn all() -> Rights {
        Rights {
            all: true,
            ..Rights::default()
        }
    }

    /// May publish to topics matching one of `publish` and subscribe to patterns inside one
    /// of `subscribe`.
    pub fn new(publish: Vec<Pattern>, subscribe: Vec<Pattern>) -> Rights {
        Rights {
            all: false,
            publish,
            subscribe,
        }
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.all || self.publish.iter().any(|p| p.matches(topic))
    }

    pub fn may_subscribe(&self, pattern: &Pattern) -> bool {
        self.all || self.subscribe.iter().any(|p| p.covers(pattern))
    }

    /// Compiles config rights; the error names the bad pattern.
    pub fn compile(cfg: &RightsConfig) -> Result<Self, (String, TopicError)> {
        let parse = |list: &[String]| -> Result<Vec<Pattern>, (String, TopicError)> {
            list.iter()
                .map(|p| Pattern::parse(p).map_err(|e| (p.clone(), e)))
                .collect()
        };
        Ok(Rights::new(parse(&cfg.publish)?, parse(&cfg.subscribe)?))
    }
}

/// The compiled access policy.
#[derive(Debug, Clone)]
pub struct Access {
    /// `None`: allow-all (no users configured).
    table: Option<UserTable>,
    /// Made once: every connection starts anonymous, and a clone is one reference count.
    anonymous: Identity,
}

impl Default for Access {
    fn default() -> Self {
        Access::allow_all()
    }
}

#[derive(Debug, Clone, Default)]
struct UserTable {
    users: HashMap<String, (Secret, Arc<Rights>)>,
    /// A configured hash checked for unknown users, so that a name that does not exist
    /// takes as long to refuse as a wrong password (no guessing names by timing).
    decoy: Option<String>,
}

/// How a user's password is kept.
#[derive(Debug, Clone)]
enum Secret {
    Plain(String),
    /// A PHC string, checked to parse at load.
    Argon2(String),
}

impl Secret {
    /// Constant-time for plain passwords; argon2's own comparison for hashes.
    fn verify(&self, password: &str) -> bool {
        match self {
            Secret::Plain(pw) => constant_time_eq(pw.as_bytes(), password.as_bytes()),
            Secret::Argon2(phc) => verify_argon2(phc, password),
        }
    }
}

/// Checks `password` against an argon2 PHC string (argon2id, argon2i or argon2d; the
/// parameters are the hash's own). False for a string that does not parse.
pub fn verify_argon2(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Hashes `password` with argon2id and its default parameters (19 MiB, 2 passes: OWASP's
/// recommendation) under `salt` (at least 16 random bytes), as a PHC string.
pub fn hash_argon2(password: &str, salt: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

impl Access {
    /// Everyone may do everything.
    pub fn allow_all() -> Self {
        Access {
            table: None,
            anonymous: Identity::new(None, Arc::new(Rights::all()), AuthMethod::Anonymous, None),
        }
    }

    /// Compiles the config; the error names the bad pattern.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        if cfg.users.is_empty() {
            return Ok(Access::allow_all());
        }
        let bad =
            |who: &str, (p, e): (String, TopicError)| format!("auth: {who}: pattern {p:?}: {e}");
        let mut users = HashMap::new();
        let mut decoy = None;
        for u in &cfg.users {
            let rights = Rights::compile(&u.rights).map_err(|e| bad(&u.name, e))?;
            let secret = match (&u.password, &u.password_hash) {
                (Some(pw), None) => Secret::Plain(pw.clone()),
                (None, Some(phc)) => {
                    argon2::password_hash::PasswordHash::new(phc).map_err(|e| {
                        format!(
                            "auth: user {:?}: password_hash is not a PHC string ({e}); make one with `tidings hash-password`",
                            u.name
                        )
                    })?;
                    decoy.get_or_insert_with(|| phc.clone());
                    Secret::Argon2(phc.clone())
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "auth: user {:?}: give password or password_hash, not both",
                        u.name
                    ))
                }
                (None, None) => {
                    return Err(format!(
                        "auth: user {:?}: needs a password_hash (or a password)",
                        u.name
                    ))
                }
            };
            if users
                .insert(u.name.clone(), (secret, Arc::new(rights)))
                .is_some()
            {
                return Err(format!("auth: user {:?} is listed twice", u.name));
            }
        }
        let anonymous = Arc::new(Rights::compile(&cfg.anonymous).map_err(|e| bad("anonymous", e))?);
        Ok(Access {
            anonymous: Identity::new(None, anonymous, AuthMethod::Anonymous, None),
            table: Some(UserTable { users, decoy }),
        })
    }

    pub fn is_allow_all(&self) -> bool {
        self.table.is_none()
    }

    /// The identity of a session that did not authenticate: the configured anonymous
    /// rights (everything under allow-all).
    pub fn anonymous(&self) -> Identity {
        self.anonymous.clone()
    }

    /// Checks a user name and password and resolves the user's rights. With allow-all any
    /// credentials are accepted as given, with every right.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        let rights = match &self.table {
            // Allow-all: the anonymous identity already holds every right.
            None => self.anonymous.rights.clone(),
            Some(t) => match t.users.get(user) {
                Some((secret, rights)) if secret.verify(password) => rights.clone(),
                Some(_) => return Err(AuthError::BadCredentials),
                None => {
                    if let Some(decoy) = &t.decoy {
                        verify_argon2(decoy, password); // as long as a known name takes
                    }
                    return Err(AuthError::BadCredentials);
                }
            },
        };
        Ok(Identity::new(
            Some(user),
            rights,
            AuthMethod::Password,
            None,
        ))
    }

    /// Users whose password is written in plain text (the binary warns about them).
    pub fn plain_password_users(cfg: &AuthConfig) -> Vec<&str> {
        cfg.users
            .iter()
            .filter(|u| u.password.is_some())
            .map(|u| u.name.as_str())
            .collect()
    }

    /// Same as [`Identity::can_publish`] (kept here for callers holding the hub's access).
    pub fn can_publish(&self, who: &Identity, topic: &str) -> Result<(), AuthError> {
        who.can_publish(topic)
    }

    /// Same as [`Identity::can_subscribe`].
    pub fn can_subscribe(&self, who: &Identity, pattern: &Pattern) -> Result<(), AuthError> {
        who.can_subscribe(pattern)
    }
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::from_config(&AuthConfig {
            users: vec![UserConfig {
                name: "alice".into(),
                password: Some("pw".into()),
                password_hash: None,
                rights: RightsConfig {
                    publish: vec!["chat.>".into()],
                    subscribe: vec![">".into()],
                },
            }],
            anonymous: RightsConfig {
                publish: vec![],
                subscribe: vec!["public.*".into()],
            },
        })
        .unwrap()
    }

    #[test]
    fn allow_all_allows() {
        let a = Access::allow_all();
        assert!(a.can_publish(&a.anonymous(), "x").is_ok());
        assert!(a
            .can_subscribe(&a.anonymous(), &Pattern::parse(">").unwrap())
            .is_ok());
    }

    #[test]
    fn users_get_their_rights_and_anonymous_theirs() {
        let a = access();
        let alice = a.authenticate("alice", "pw").unwrap();
        assert_eq!(
            a.authenticate("alice", "nope"),
            Err(AuthError::BadCredentials)
        );
        assert!(a.can_publish(&alice, "chat.lobby").is_ok());
        assert!(a.can_publish(&alice, "admin.x").is_err());
        let anon = a.anonymous();
        assert_eq!(anon.method, AuthMethod::Anonymous);
        assert_eq!(alice.method, AuthMethod::Password);
        let expiring = Identity::new(Some("t"), alice.rights.clone(), AuthMethod::Token, Some(10));
        assert!(expiring.check_expiry(9).is_ok());
        assert!(expiring.check_expiry(10).is_err());
        assert!(a.can_publish(&anon, "chat.lobby").is_err());
        assert!(a
            .can_subscribe(&anon, &Pattern::parse("public.news").unwrap())
            .is_ok());
        assert!(a
            .can_subscribe(&anon, &Pattern::parse("public.>").unwrap())
            .is_err());
    }

    #[test]
    fn argon2_hashes_verify_and_bad_ones_are_refused_at_load() {
        let phc = hash_argon2("s3cret", b"sixteen-byte-slt").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let user = |password: Option<&str>, password_hash: Option<&str>| AuthConfig {
            users: vec![UserConfig {
                name: "ann".into(),
                password: password.map(Into::into),
                password_hash: password_hash.map(Into::into),
                rights: RightsConfig::default(),
            }],
            ..AuthConfig::default()
        };
        let a = Access::from_config(&user(None, Some(&phc))).unwrap();
        assert_eq!(a.authenticate("ann", "s3cret").unwrap().name(), "ann");
        assert_eq!(
            a.authenticate("ann", "wrong"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            a.authenticate("nobody", "s3cret"),
            Err(AuthError::BadCredentials)
        );
        let e = Access::from_config(&user(None, Some("plain"))).unwrap_err();
        assert!(e.contains("not a PHC string"), "{e}");
        assert!(Access::from_config(&user(Some("x"), Some(&phc))).is_err());
        assert!(Access::from_config(&user(None, None)).is_err());
        assert_eq!(
            Access::plain_password_users(&user(Some("x"), None)),
            ["ann"]
        );
    }
}
