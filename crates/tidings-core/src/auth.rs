//! Identity and permissions: the seam that later authentication plugs into.
//!
//! Every session has an [`Identity`] (anonymous until it authenticates) and every publish and
//! subscribe passes [`Access::can_publish`] / [`Access::can_subscribe`].

use crate::topic::{Pattern, TopicError};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Who a session is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `None` while anonymous.
    pub user: Option<Arc<str>>,
}

impl Identity {
    pub fn anonymous() -> Self {
        Identity { user: None }
    }
    pub fn user(name: &str) -> Self {
        Identity {
            user: Some(name.into()),
        }
    }
    pub fn name(&self) -> &str {
        self.user.as_deref().unwrap_or("-")
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

/// One configured user.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain-text password (config files are the operator's secret; hashing is future work).
    pub password: String,
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
}

#[derive(Debug, Clone, Default)]
struct Rights {
    publish: Vec<Pattern>,
    subscribe: Vec<Pattern>,
}

impl Rights {
    fn compile(cfg: &RightsConfig) -> Result<Self, (String, TopicError)> {
        let parse = |list: &[String]| -> Result<Vec<Pattern>, (String, TopicError)> {
            list.iter()
                .map(|p| Pattern::parse(p).map_err(|e| (p.clone(), e)))
                .collect()
        };
        Ok(Rights {
            publish: parse(&cfg.publish)?,
            subscribe: parse(&cfg.subscribe)?,
        })
    }
}

/// The compiled access policy.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `None`: allow-all (no users configured).
    table: Option<UserTable>,
}

#[derive(Debug, Clone, Default)]
struct UserTable {
    users: HashMap<String, (String, Rights)>,
    anonymous: Rights,
}

impl Access {
    /// Everyone may do everything.
    pub fn allow_all() -> Self {
        Access { table: None }
    }

    /// Compiles the config; the error names the bad pattern.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        if cfg.users.is_empty() {
            return Ok(Access::allow_all());
        }
        let bad =
            |who: &str, (p, e): (String, TopicError)| format!("auth: {who}: pattern {p:?}: {e}");
        let mut users = HashMap::new();
        for u in &cfg.users {
            let rights = Rights::compile(&u.rights).map_err(|e| bad(&u.name, e))?;
            if users
                .insert(u.name.clone(), (u.password.clone(), rights))
                .is_some()
            {
                return Err(format!("auth: user {:?} is listed twice", u.name));
            }
        }
        let anonymous = Rights::compile(&cfg.anonymous).map_err(|e| bad("anonymous", e))?;
        Ok(Access {
            table: Some(UserTable { users, anonymous }),
        })
    }

    pub fn is_allow_all(&self) -> bool {
        self.table.is_none()
    }

    /// Checks a user name and password. With allow-all any credentials are accepted as given.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        match &self.table {
            None => Ok(Identity::user(user)),
            Some(t) => match t.users.get(user) {
                Some((pw, _)) if constant_time_eq(pw.as_bytes(), password.as_bytes()) => {
                    Ok(Identity::user(user))
                }
                _ => Err(AuthError::BadCredentials),
            },
        }
    }

    fn rights(&self, who: &Identity) -> Option<&Rights> {
        let t = self.table.as_ref()?;
        Some(match &who.user {
            Some(u) => t.users.get(&**u).map(|(_, r)| r).unwrap_or(&t.anonymous),
            None => &t.anonymous,
        })
    }

    pub fn can_publish(&self, who: &Identity, topic: &str) -> Result<(), AuthError> {
        match self.rights(who) {
            None => Ok(()),
            Some(r) if r.publish.iter().any(|p| p.matches(topic)) => Ok(()),
            Some(_) => Err(AuthError::PublishDenied {
                user: who.name().into(),
                topic: topic.into(),
            }),
        }
    }

    pub fn can_subscribe(&self, who: &Identity, pattern: &Pattern) -> Result<(), AuthError> {
        match self.rights(who) {
            None => Ok(()),
            Some(r) if r.subscribe.iter().any(|p| p.covers(pattern)) => Ok(()),
            Some(_) => Err(AuthError::SubscribeDenied {
                user: who.name().into(),
                pattern: pattern.as_str().into(),
            }),
        }
    }
}

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
                password: "pw".into(),
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
        assert!(a.can_publish(&Identity::anonymous(), "x").is_ok());
        assert!(a
            .can_subscribe(&Identity::anonymous(), &Pattern::parse(">").unwrap())
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
        let anon = Identity::anonymous();
        assert!(a.can_publish(&anon, "chat.lobby").is_err());
        assert!(a
            .can_subscribe(&anon, &Pattern::parse("public.news").unwrap())
            .is_ok());
        assert!(a
            .can_subscribe(&anon, &Pattern::parse("public.>").unwrap())
            .is_err());
    }
}
