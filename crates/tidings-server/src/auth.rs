//! Who a client is: an [`Authenticator`] turns what a client presents into an [`Identity`]
//! (user, rights resolved once, how it was authenticated, expiry), which the driver attaches
//! to its hub session; permissions, presence and the admin view read it from there.
//!
//! The configured user list (`[hub.auth]`) is the first implementation; tokens (JWT) are
//! the next, behind the same trait.

use std::sync::Arc;
use tidings_core::{Hub, HubError, Identity};

/// Turns credentials into identities. Every driver holds one and asks it, never a user table.
pub(crate) trait Authenticator: Send + Sync + 'static {
    /// The identity of a client that presented nothing: the configured anonymous rights.
    fn anonymous(&self) -> Identity;
    /// A user name and password (STOMP `login`/`passcode`, HTTP Basic, `AUTH`, ...).
    fn password(&self, user: &str, password: &str) -> Result<Identity, HubError>;
}

/// The users of the config file (`[hub.auth]`), checked by the hub's access table.
pub(crate) struct ConfiguredUsers {
    pub(crate) hub: Arc<Hub>,
}

impl Authenticator for ConfiguredUsers {
    fn anonymous(&self) -> Identity {
        self.hub.access().anonymous()
    }

    fn password(&self, user: &str, password: &str) -> Result<Identity, HubError> {
        let who = self.hub.authenticate(user, password);
        match &who {
            Ok(_) => tracing::debug!(user, "authenticated"),
            Err(e) => tracing::info!(user, error = %e, "authentication failed"),
        }
        who
    }
}
