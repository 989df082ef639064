//! Which node holds a session.
//!
//! Engine.IO session ids are minted by the server, so each starts with the id of the node
//! that minted it ([`engineio_owner`]): no lookup. SockJS session ids are chosen by the
//! client, so the first receiving request for one claims it in Redis (`P:sj:ENDPOINT:ID` →
//! node, one script: the holder, or this node if there was none); the holder re-asserts
//! its sessions every [`REFRESH`], and the key expires [`OWNER_TTL`] after the last time,
//! so a crashed node's sessions are forgotten.

use redis::aio::ConnectionManager;
use redis::Script;
use std::time::Duration;

/// How long a SockJS owner key lives without being re-asserted.
pub(super) const OWNER_TTL: Duration = Duration::from_secs(60);
/// How often a node re-asserts the SockJS sessions it holds (a third of the TTL: two
/// refreshes may fail before a live session's key expires).
pub(super) const REFRESH: Duration = Duration::from_secs(20);

/// Characters of a node id (`crate::node_id`), the start of every Engine.IO sid.
const NODE_ID_LEN: usize = crate::node_id::NodeId::LEN;

/// The holder if there is one, else this node (`ARGV[1]`) for `ARGV[2]` ms.
const CLAIM_LUA: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// The node an Engine.IO session id names, if it names one.
pub(super) fn engineio_owner(sid: &str) -> Option<&str> {
    let node = sid.get(..NODE_ID_LEN)?;
    (sid.len() > NODE_ID_LEN && node.bytes().all(|b| b.is_ascii_hexdigit())).then_some(node)
}

/// The SockJS owner keys of one cluster (one key prefix).
pub(super) struct Owners {
    conn: ConnectionManager,
    prefix: String,
    claim: Script,
}

impl Owners {
    pub(super) fn new(conn: ConnectionManager, prefix: &str) -> Owners {
        Owners {
            conn,
            prefix: prefix.to_owned(),
            claim: Script::new(CLAIM_LUA),
        }
    }

    pub(super) fn key(&self, endpoint: &str, id: &str) -> String {
        format!("{}:sj:{endpoint}:{id}", self.prefix)
    }

    /// Who holds `key`: its holder, or `me`, who holds it from now on.
    pub(super) async fn claim(&self, key: &str, me: &str) -> redis::RedisResult<String> {
        let mut conn = self.conn.clone();
        self.claim
            .key(key)
            .arg(me)
            .arg(ttl_ms())
            .invoke_async(&mut conn)
            .await
    }

    /// Who holds `key`, if anyone.
    pub(super) async fn holder(&self, key: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        redis::cmd("GET").arg(key).query_async(&mut conn).await
    }

    /// `me` holds these keys (new ones, or a dead holder's taken over) for another TTL.
    pub(super) async fn assert_held(&self, keys: &[String], me: &str) -> redis::RedisResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(key)
                .arg(me)
                .arg("PX")
                .arg(ttl_ms())
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(OWNER_TTL.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engineio_sid_names_the_node_that_minted_it() {
        let node = crate::node_id::NodeId::random();
        let sid = format!("{node}AbCdEfGhIjKlMnOpQrSt");
        assert_eq!(engineio_owner(&sid), Some(node.as_str()));
        assert_eq!(
            engineio_owner(node.as_str()),
            None,
            "a bare node id is no sid"
        );
        assert_eq!(engineio_owner("AbCdEfGhIjKlMnOpQrSt"), None);
        assert_eq!(engineio_owner("short"), None);
    }
}
