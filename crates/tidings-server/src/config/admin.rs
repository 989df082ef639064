//! `[admin]`: who may use the dashboard (`/admin`) and its API (`/api/admin/...`).
//!
//! Off unless configured: with no admin user, no token subject listed and `admin_tokens`
//! off, both answer 404.
//! Admin accounts are separate from the hub's users (`[hub.auth]`): an admin gets no
//! publish/subscribe right on the protocols, and a hub user is no admin.

use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `[[admin.users]]`: name and argon2id `password_hash` (`tidings hash-password`). Default
    /// none. Plain passwords are not accepted here: an admin password in a file must be hashed.
    pub users: Vec<AdminUser>,
    /// Subjects (`sub`) of tokens (`[auth.jwt]`) that may use the admin API with
    /// `Authorization: Bearer`, e.g. `["ops"]`. Default none.
    pub token_users: Vec<String>,
    /// Accept any valid token whose `tidings` claim has `"admin": true` (`tidings token
    /// --admin`). Default false: whoever holds the signing key could mint one, so the operator
    /// says so.
    pub admin_tokens: bool,
    /// Seconds an admin login (its session cookie) lasts. Default 28800 (8 h, a working day).
    pub session_ttl_secs: u64,
    /// Admin logins held at once; the oldest is dropped beyond. Default 16: a few people, a
    /// few browsers each; the map never grows with login attempts.
    pub max_sessions: usize,
}

/// One admin account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    pub name: String,
    /// An argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            users: Vec::new(),
            token_users: Vec::new(),
            admin_tokens: false,
            session_ttl_secs: 28_800,
            max_sessions: 16,
        }
    }
}

impl AdminConfig {
    /// Whether the dashboard and its API are on.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || !self.token_users.is_empty() || self.admin_tokens
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: String, reason: &str| ConfigError {
            field,
            reason: reason.into(),
        };
        for (i, user) in self.users.iter().enumerate() {
            if user.name.is_empty() {
                return Err(err(format!("admin.users[{i}].name"), "must not be empty"));
            }
            if !user.password_hash.starts_with("$argon2") {
                return Err(err(
                    format!("admin.users[{i}].password_hash"),
                    "must be an argon2 PHC string (make one with `tidings hash-password`)",
                ));
            }
        }
        if self.max_sessions == 0 {
            return Err(err("admin.max_sessions".into(), "must be at least 1"));
        }
        if self.session_ttl_secs == 0 {
            return Err(err("admin.session_ttl_secs".into(), "must be at least 1"));
        }
        Ok(())
    }
}
