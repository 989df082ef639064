//! Stateless address-validation cookies, as QUIC's Retry tokens: the server proves that a
//! client receives datagrams at the address it claims before it sends that address more
//! than it received from it.
//!
//! A cookie is `issued (u32, Unix seconds) || HMAC-SHA256(key, address || issued)[..20]`,
//! 24 bytes. The key is random per process, so the server keeps no state per cookie and a
//! restart invalidates every cookie (clients are challenged again).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
use tidings_proto::udp::{Cookie, COOKIE_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Why a cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieError {
    /// Not made by this process for this address.
    Forged,
    /// Made for this address, but longer ago than the cookie lifetime.
    Expired,
}

pub(crate) struct Cookies {
    /// Secret for the MAC; 32 random bytes from the OS at start.
    key: [u8; 32],
    /// How long a cookie is accepted, in seconds.
    lifetime_secs: u64,
}

impl Cookies {
    pub(crate) fn new(lifetime_secs: u64) -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
        Ok(Self { key, lifetime_secs })
    }

    fn mac(&self, addr: SocketAddr, issued: u32) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        match addr.ip() {
            IpAddr::V4(ip) => {
                mac.update(&[4]);
                mac.update(&ip.octets());
            }
            IpAddr::V6(ip) => {
                mac.update(&[6]);
                mac.update(&ip.octets());
            }
        }
        mac.update(&addr.port().to_be_bytes());
        mac.update(&issued.to_be_bytes());
        mac
    }

    /// A cookie for `addr`, issued at `now_ms`.
    pub(crate) fn mint(&self, addr: SocketAddr, now_ms: u64) -> Cookie {
        let issued = (now_ms / 1000) as u32;
        let tag = self.mac(addr, issued).finalize().into_bytes();
        let mut cookie = [0u8; COOKIE_LEN];
        cookie[..4].copy_from_slice(&issued.to_be_bytes());
        cookie[4..].copy_from_slice(&tag[..COOKIE_LEN - 4]);
        cookie
    }

    /// Accepts a cookie this process made for `addr` within the lifetime.
    pub(crate) fn check(
        &self,
        addr: SocketAddr,
        cookie: &Cookie,
        now_ms: u64,
    ) -> Result<(), CookieError> {
        let issued = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        self.mac(addr, issued)
            .verify_truncated_left(&cookie[4..])
            .map_err(|_| CookieError::Forged)?;
        let now = now_ms / 1000;
        let issued = u64::from(issued);
        // One second of slack for a cookie minted just before a clock tick.
        if issued > now + 1 || now - issued.min(now) > self.lifetime_secs {
            return Err(CookieError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_proves_one_address_for_its_lifetime() {
        let cookies = Cookies::new(60).unwrap();
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let now = 1_700_000_000_000;
        let c = cookies.mint(a, now);
        assert_eq!(cookies.check(a, &c, now), Ok(()));
        assert_eq!(cookies.check(a, &c, now + 60_000), Ok(()));
        assert_eq!(
            cookies.check(a, &c, now + 61_000),
            Err(CookieError::Expired)
        );
        assert_eq!(cookies.check(b, &c, now), Err(CookieError::Forged));
        let mut tampered = c;
        tampered[10] ^= 1;
        assert_eq!(cookies.check(a, &tampered, now), Err(CookieError::Forged));
        let mut backdated = c;
        backdated[3] ^= 1;
        assert_eq!(cookies.check(a, &backdated, now), Err(CookieError::Forged));
        let other = Cookies::new(60).unwrap();
        assert_eq!(other.check(a, &c, now), Err(CookieError::Forged));
    }
}
