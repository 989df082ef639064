//! This process's one name in a cluster: the node id.
//!
//! Made once when the server starts and handed to everything that names the node: the
//! admin node directory (`P:node:ID`, the admin API's `this` and `nodes[].id`), presence
//! (`P:pl:ID`, `P:pn:ID`, records' `n`, and the tag in its session ids), forwarding (the
//! channel `P:n:ID`, SockJS holder keys, the prefix of every Engine.IO sid) and queue claims.
//! It is random per process start, never configured: a restarted node is a new node, so its
//! old sessions belong to nobody (forwarding relies on that) and its old keys just expire.

use std::fmt;
use std::sync::Arc;

/// A node id: 12 lowercase hex digits (48 random bits). Two live nodes share one with odds
/// of about k²/2^49 for k nodes: never, in practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeId {
    text: Arc<str>,
    bits: u64,
}

/// Bits of a node id.
const BITS: u32 = 48;
/// Bits of the session-id tag: session ids are `tag << 32 | n`, which stays below 2^53 so
/// JavaScript clients read them exactly.
const TAG_BITS: u32 = 21;

impl NodeId {
    /// Characters of a node id's text.
    pub(crate) const LEN: usize = tidings_proto::tunnel::NODE_LEN;

    /// A fresh random id (the OS random source; the clock and pid if it fails).
    pub(crate) fn random() -> NodeId {
        let mut raw = [0u8; 8];
        if getrandom::getrandom(&mut raw[..6]).is_err() {
            let seed = crate::clock::now_ms() ^ u64::from(std::process::id()).rotate_left(32);
            raw = seed.to_le_bytes();
        }
        NodeId::from_bits(u64::from_le_bytes(raw))
    }

    fn from_bits(bits: u64) -> NodeId {
        let bits = bits & ((1 << BITS) - 1);
        NodeId {
            text: format!("{bits:012x}").into(),
            bits,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The first session id this node gives out: its tag (the id's first 21 bits, at least 1)
    /// above a 32-bit counter. The tag is narrower than the id: with k live nodes two share
    /// one with odds of about k(k-1)/2^22 (10 nodes: 1 in 47,000; 100 nodes: 1 in 420), and only
    /// then can two sessions in the cluster have the same id (a presence member shown once).
    pub(crate) fn first_session(&self) -> u64 {
        let tag = (self.bits >> (BITS - TAG_BITS)).max(1);
        (tag << 32) | 1
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_twelve_hex_digits_and_fresh_each_time() {
        let a = NodeId::random();
        assert_eq!(a.as_str().len(), NodeId::LEN);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, NodeId::random(), "48 random bits twice alike");
    }

    #[test]
    fn session_ids_carry_the_ids_first_bits_and_stay_exact_in_javascript() {
        let id = NodeId::from_bits(0xffff_ffff_ffff);
        assert!(id.first_session() < 1 << 53 && id.first_session() > 1 << 32);
        assert_eq!(id.first_session() >> 32, 0x1f_ffff);
        let id = NodeId::from_bits(0xabcd_e800_0000);
        assert_eq!(id.first_session() >> 32, 0xabcde8 >> 3);
        assert_eq!(
            NodeId::from_bits(0x1234).first_session() >> 32,
            1,
            "tag 0 is not used"
        );
    }
}
