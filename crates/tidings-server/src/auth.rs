//! Who a client is: an [`Authenticator`] turns what a client presents into an [`Identity`]
//! (user, rights resolved once, how it was authenticated, expiry), which the driver attaches
//! to its hub session; permissions, presence and the admin view read it from there.
//!
//! One implementation, [`ConfiguredUsers`], holds both ways in: the configured user list
//! (`[hub.auth]`, checked by the hub) and signed tokens (`[auth.jwt]`, [`jwt`]). Password guessing is limited here, once for every
//! protocol: each failure is logged (user, and the connection's span gives protocol and
//! peer; never the password) and counted, and an address with too many recent failures is
//! refused without its password being checked until its window passes ([`LoginGuard`]).
//! Drivers of long-lived connections also close a connection after a few failures
//! ([`FAILURES_PER_CONNECTION`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tidings_core::{AuthError, Hub, HubError, Identity, TokenRefusal};

pub(crate) mod jwt;

/// Failed logins after which a line or WebSocket connection is closed (it can reconnect;
/// the address's budget in [`LoginGuard`] is what bounds the rate).
pub(crate) const FAILURES_PER_CONNECTION: u32 = 3;

/// Turns credentials into identities. Every driver holds one and asks it, never a user table.
pub(crate) trait Authenticator: Send + Sync + 'static {
    /// The identity of a client that presented nothing: the configured anonymous rights.
    fn anonymous(&self) -> Identity;
    /// A user name and password (STOMP `login`/`passcode`, HTTP Basic, `AUTH`, ...) from
    /// `from` (the client's address, when the transport knows it).
    fn password(
        &self,
        user: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Identity, HubError>;
    /// A signed token (JWT) from `from`: its user, rights and expiry. Failures count against
    /// the address like wrong passwords.
    fn token(&self, jwt: &str, from: Option<IpAddr>) -> Result<Identity, HubError>;
    /// Failed logins, and logins refused because their address failed too often.
    fn failures(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Tokens refused, per kind of refusal (`/metrics`).
    fn token_refusals(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Asks the login guard whether `from` may try a login of `user` now (logins checked
    /// elsewhere, such as the admin's, are throttled with everyone else's).
    fn admit(&self, _from: Option<IpAddr>, _user: &str) -> Result<(), HubError> {
        Ok(())
    }
    /// Counts a failed login checked elsewhere (the admin's) against `from`.
    fn login_failed(&self, _from: Option<IpAddr>, _user: &str, _why: &str) {}
    /// The most recent failed logins, oldest first (the admin view).
    fn recent_failures(&self) -> Vec<AuthFailure> {
        Vec::new()
    }
    /// Reads the token keys' files again (SIGHUP); `Ok(None)` without tokens configured.
    fn reload_keys(&self) -> Result<Option<usize>, crate::config::ConfigError> {
        Ok(None)
    }
}

/// One failed login, as the admin view lists it (never the secret that was tried).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct AuthFailure {
    /// Unix time, ms.
    pub(crate) at_ms: u64,
    pub(crate) user: String,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) reason: String,
}

/// Failed logins the admin view remembers: a ring, the oldest forgotten first.
const RECENT_FAILURES: usize = 64;

/// The users of the config file (`[hub.auth]`), checked by the hub's access table.
pub(crate) struct ConfiguredUsers {
    pub(crate) hub: Arc<Hub>,
    pub(crate) guard: LoginGuard,
    /// `None`: no `[auth.jwt]` key, tokens are refused.
    pub(crate) jwt: Option<jwt::JwtVerifier>,
    /// Tokens refused, by [`TokenRefusal::index`].
    token_refusals: [AtomicU64; TokenRefusal::ALL.len()],
    /// The last [`RECENT_FAILURES`] failed logins.
    recent: Mutex<std::collections::VecDeque<AuthFailure>>,
}

impl ConfiguredUsers {
    /// `failures_per_ip`: failed logins an address may make per [`GUARD_WINDOW`]
    /// (`limits.login_failures_per_ip`; 0 = no per-address budget).
    pub(crate) fn new(hub: Arc<Hub>, failures_per_ip: u32) -> ConfiguredUsers {
        ConfiguredUsers {
            hub,
            guard: LoginGuard::new(failures_per_ip, GUARD_WINDOW, GUARD_ADDRESSES),
            jwt: None,
            token_refusals: Default::default(),
            recent: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Accepts tokens verified by `jwt`.
    pub(crate) fn with_jwt(mut self, jwt: Option<jwt::JwtVerifier>) -> ConfiguredUsers {
        self.jwt = jwt;
        self
    }

    fn remember(&self, from: Option<IpAddr>, user: &str, reason: String) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_FAILURES {
            recent.pop_front();
        }
        recent.push_back(AuthFailure {
            at_ms: crate::clock::now_ms(),
            user: user.chars().take(64).collect(),
            peer: from,
            reason,
        });
    }

    /// Refuses `from` without checking anything if it failed too often.
    fn check_guard(&self, from: Option<IpAddr>, user: &str) -> Result<(), HubError> {
        if let Some((wait, first)) = from.and_then(|ip| self.guard.blocked(ip)) {
            // Once per address and window: a guesser must not flood the log either.
            if first {
                tracing::warn!(
                    user,
                    "login refused: too many failures from this address (said once per window)"
                );
            }
            return Err(HubError::Denied(AuthError::TooManyFailures {
                retry_after_secs: wait.as_secs().max(1),
            }));
        }
        Ok(())
    }
}

/// The window of `limits.login_failures_per_ip` (default 10: fail2ban's default `maxretry`
/// is 5 per 10 minutes; a person mistyping does not reach 10 in a minute).
const GUARD_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past it the stalest entry is forgotten.
const GUARD_ADDRESSES: usize = 65_536;

impl Authenticator for ConfiguredUsers {
    fn anonymous(&self) -> Identity {
        self.hub.access().anonymous()
    }

    fn password(
        &self,
        user: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Identity, HubError> {
        self.check_guard(from, user)?;
        // An argon2id check takes tens of ms: on the multi-threaded runtime the worker hands
        // its other tasks to the rest first, so a login does not stall their connections.
        let check = || self.hub.authenticate(user, password);
        let who = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(check),
            _ => check(),
        };
        match &who {
            Ok(_) => tracing::debug!(user, "authenticated"),
            Err(e) => {
                tracing::warn!(user, error = %e, "authentication failed");
                self.guard.failed(from);
                self.remember(from, user, e.to_string());
            }
        }
        who
    }

    fn token(&self, jwt: &str, from: Option<IpAddr>) -> Result<Identity, HubError> {
        self.check_guard(from, "(token)")?;
        let verified = match &self.jwt {
            Some(v) => v.verify(jwt, crate::clock::now_ms()),
            None => Err(TokenRefusal::NotAccepted),
        };
        match verified {
            Ok(who) => {
                tracing::debug!(user = who.name(), "authenticated by token");
                Ok(who)
            }
            Err(reason) => {
                // The reason's kind only: the token itself is a credential, never logged.
                tracing::warn!(%reason, "token refused");
                self.token_refusals[reason.index()].fetch_add(1, Ordering::Relaxed);
                self.guard.failed(from);
                self.remember(from, "(token)", reason.to_string());
                Err(HubError::Denied(AuthError::BadToken(reason)))
            }
        }
    }

    fn failures(&self) -> (u64, u64) {
        (
            self.guard.failed.load(Ordering::Relaxed),
            self.guard.refused.load(Ordering::Relaxed),
        )
    }

    fn token_refusals(&self) -> Vec<(&'static str, u64)> {
        TokenRefusal::ALL
            .iter()
            .zip(&self.token_refusals)
            .map(|(kind, n)| (kind.label(), n.load(Ordering::Relaxed)))
            .collect()
    }

    fn admit(&self, from: Option<IpAddr>, user: &str) -> Result<(), HubError> {
        self.check_guard(from, user)
    }

    fn login_failed(&self, from: Option<IpAddr>, user: &str, why: &str) {
        tracing::warn!(user, error = why, "authentication failed");
        self.guard.failed(from);
        self.remember(from, user, why.to_owned());
    }

    fn recent_failures(&self) -> Vec<AuthFailure> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    fn reload_keys(&self) -> Result<Option<usize>, crate::config::ConfigError> {
        self.jwt.as_ref().map(|v| v.reload()).transpose()
    }
}

/// Failed logins per client address in a fixed window. Bounded: at most `max_addresses`
/// entries (IPv6 counted per /64 like connections are).
pub(crate) struct LoginGuard {
    max_failures: u32,
    window: Duration,
    max_addresses: usize,
    recent: Mutex<HashMap<IpAddr, Failures>>,
    failed: AtomicU64,
    refused: AtomicU64,
}

/// One address's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
    /// Its refusal was logged in this window.
    logged: bool,
}

impl LoginGuard {
    pub(crate) fn new(max_failures: u32, window: Duration, max_addresses: usize) -> LoginGuard {
        LoginGuard {
            max_failures,
            window,
            max_addresses,
            recent: Mutex::new(HashMap::new()),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `ip` must wait before trying again, if it has used up its window, and
    /// whether this is the window's first refusal.
    pub(crate) fn blocked(&self, ip: IpAddr) -> Option<(Duration, bool)> {
        let key = crate::listen::address_key(ip);
        let mut map = self.map();
        let entry = map.get_mut(&key)?;
        let left = self.window.checked_sub(entry.since.elapsed())?;
        if self.max_failures > 0 && entry.count >= self.max_failures {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let first = !std::mem::replace(&mut entry.logged, true);
            return Some((left, first));
        }
        None
    }

    /// Counts a failed login from `from`.
    pub(crate) fn failed(&self, from: Option<IpAddr>) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let Some(ip) = from.filter(|_| self.max_failures > 0) else {
            return;
        };
        let key = crate::listen::address_key(ip);
        let mut map = self.map();
        if map.len() >= self.max_addresses && !map.contains_key(&key) {
            let window = self.window;
            map.retain(|_, f| f.since.elapsed() < window);
            if map.len() >= self.max_addresses {
                if let Some(stalest) = map.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k) {
                    map.remove(&stalest);
                }
            }
        }
        let fresh = Failures {
            since: Instant::now(),
            count: 0,
            logged: false,
        };
        let entry = map.entry(key).or_insert(fresh);
        if entry.since.elapsed() >= self.window {
            *entry = fresh;
        }
        entry.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_until_the_window_passes() {
        let guard = LoginGuard::new(3, Duration::from_millis(200), 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(guard.blocked(a).is_none());
            guard.failed(Some(a));
        }
        assert_eq!(guard.blocked(a).map(|(_, first)| first), Some(true));
        assert_eq!(
            guard.blocked(a).map(|(_, first)| first),
            Some(false),
            "the refusal is logged once per window"
        );
        assert!(guard.blocked(b).is_none(), "others are not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(guard.blocked(a).is_none());
        // Bounded: a third address pushes out the stalest.
        guard.failed(Some(b));
        guard.failed(Some("10.0.0.3".parse().unwrap()));
        assert!(guard.map().len() <= 2);
        assert_eq!(guard.failed.load(Ordering::Relaxed), 5);
    }
}
