//! What a `/ws` upgrade request asks for, decided one way whether hyper read the request
//! (`router`) or `direct_ws` did: the token on the URL (a refused one is a `401`, no
//! upgrade) and the topics on the URL (`drivers::url_subscribe`: a query that cannot be a
//! subscribe request is a `400`).

use super::Shared;
use crate::listen::Peer;
use bytes::Bytes;
use hyper::{Request, StatusCode};
use tidings_core::Identity;

/// A plain-text answer instead of an upgrade.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) text: String,
}

/// The identity of the URL's token (if any) and the `subscribe` requests of its topics, or
/// the refusal to answer instead of upgrading.
pub(super) fn native<B>(
    req: &Request<B>,
    shared: &Shared,
) -> Result<(Option<Identity>, Vec<Bytes>), Refusal> {
    let refusal = |status, why: String| Refusal {
        status,
        text: format!("{why}\n"),
    };
    let subscribe = crate::drivers::url_subscribe::requests(req.uri().query())
        .map_err(|e| refusal(StatusCode::BAD_REQUEST, e))?;
    let Some(token) = crate::drivers::credentials::of_request(req) else {
        return Ok((None, subscribe));
    };
    let from = req.extensions().get::<Peer>().map(|p| p.addr.ip());
    match shared.native.auth.token(&token, from) {
        Ok(who) => Ok((Some(who), subscribe)),
        Err(e) => Err(refusal(StatusCode::UNAUTHORIZED, e.to_string())),
    }
}
